import Backoff
import Foundation
import Metrics
import Synchronization

/// One integration's share of the forwarder: its in-flight publish slots and its circuit
/// breaker. Integrations do not share slots, so one whose endpoint hangs holds only its own, and
/// the breaker stops it from hammering an endpoint that fails, then lets one queue probe it back.
final class IntegrationLane: Sendable {
    /// The breaker's states, as Nygard's Release It! names them.
    enum BreakerState: Equatable {
        /// Publishes go.
        case closed
        /// Nothing goes until then.
        case open(until: ContinuousClock.Instant)
        /// One queue's publish tries; its outcome closes or opens the breaker again.
        case halfOpen(probing: Bool)
    }

    /// Consecutive failed publishes that open the breaker.
    static let failuresToOpen = 5
    /// How long the breaker stays open: 1 s, doubling to 30 s while probes fail (so an endpoint
    /// that comes back is used again within 30 s).
    static let openFor = Backoff(first: 1, maximum: 30, jitter: 1...1)

    private struct State {
        var slots: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
        var breaker = BreakerState.closed
        var consecutiveFailures = 0
        var opened = 0
    }

    let integrationID: String
    let capacity: Int
    private let state: Mutex<State>
    private let inflight: Gauge
    private let breakerGauge: Gauge

    init(integrationID: String, slots: Int) {
        self.integrationID = integrationID
        self.capacity = slots
        self.state = Mutex(State(slots: slots))
        self.inflight = Gauge(label: "conduit_uplink_inflight_publishes", dimensions: [("integration", integrationID)])
        self.breakerGauge = Gauge(label: "conduit_uplink_breaker_open", dimensions: [("integration", integrationID)])
    }

    /// Waits for a free publish slot.
    func acquire() async {
        let granted = self.state.withLock { state -> Bool in
            guard state.slots > 0 else { return false }
            state.slots -= 1
            return true
        }
        if !granted {
            await withCheckedContinuation { continuation in
                let now = self.state.withLock { state -> Bool in
                    if state.slots > 0 {
                        state.slots -= 1
                        return true
                    }
                    state.waiters.append(continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        }
        self.inflight.record(self.capacity - self.state.withLock { $0.slots })
    }

    func release() {
        let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.slots += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
        self.inflight.record(self.capacity - self.state.withLock { $0.slots })
    }

    /// Whether a queue of this integration may start now; a half-open breaker lets one through.
    func mayStart(now: ContinuousClock.Instant) -> Bool {
        self.state.withLock { state in
            switch state.breaker {
            case .closed:
                return true
            case .open(let until):
                guard now >= until else { return false }
                state.breaker = .halfOpen(probing: true)
                return true
            case .halfOpen(let probing):
                guard !probing else { return false }
                state.breaker = .halfOpen(probing: true)
                return true
            }
        }
    }

    /// When the breaker lets a queue start again; nil when it is not open.
    var openUntil: ContinuousClock.Instant? {
        self.state.withLock { state in
            if case .open(let until) = state.breaker { return until }
            return nil
        }
    }

    var breaker: BreakerState { self.state.withLock { $0.breaker } }

    /// A publish went through; true when that closed the breaker.
    @discardableResult
    func succeeded() -> Bool {
        let closed = self.state.withLock { state -> Bool in
            state.consecutiveFailures = 0
            guard state.breaker != .closed else { return false }
            state.breaker = .closed
            state.opened = 0
            return true
        }
        if closed { self.breakerGauge.record(0) }
        return closed
    }

    /// A publish failed (not one AWS refused for good): enough in a row, or a failed probe, opens the breaker.
    func failed(now: ContinuousClock.Instant) {
        let opened = self.state.withLock { state -> Bool in
            state.consecutiveFailures += 1
            let probing: Bool
            switch state.breaker {
            case .closed: probing = false
            case .halfOpen: probing = true
            case .open: return false
            }
            guard probing || state.consecutiveFailures >= Self.failuresToOpen else { return false }
            state.opened += 1
            state.breaker = .open(until: now + .milliseconds(Int(Self.openFor.seconds(afterFailures: state.opened) * 1000)))
            return true
        }
        if opened { self.breakerGauge.record(1) }
    }

    /// A probe ended without a publish going either way (its queue emptied): another may probe.
    func probeEnded() {
        self.state.withLock { state in
            if state.breaker == .halfOpen(probing: true) { state.breaker = .halfOpen(probing: false) }
        }
    }
}
