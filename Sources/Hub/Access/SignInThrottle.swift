import Foundation
import Synchronization

/// Failed console sign-ins, counted per client address and per email from that address over a
/// sliding window: past the limit, that address (or that email from it) is refused until its
/// oldest failure leaves the window. Keyed by address too, so that nobody can lock a known
/// admin out from elsewhere by failing on purpose.
///
/// Kept in memory: each node counts its own, which bounds guessing per node; a restart forgives.
public final class SignInThrottle: Sendable {
    public struct Limits: Sendable {
        /// Failures an email may have from one address within ``window`` before it is refused there.
        public var perEmail: Int
        /// Failures one client address may have within ``window`` (it may try many emails).
        public var perAddress: Int
        public var window: TimeInterval

        public init(perEmail: Int = 10, perAddress: Int = 30, window: TimeInterval = 15 * 60) {
            self.perEmail = perEmail
            self.perAddress = perAddress
            self.window = window
        }
    }

    private struct State {
        var failures: [String: [Date]] = [:]
    }

    public let limits: Limits
    private let state = Mutex(State())

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Counts an attempt for this address and email before its password is checked, so that
    /// attempts made at once cannot all pass the limit; returns when the next may be made if this
    /// one may not (and counts nothing then). A successful attempt is forgiven by ``succeeded(address:email:at:)``.
    public func reserve(address: String, email: String, now: Date) -> Date? {
        self.state.withLock { state in
            let keys = [("address:" + address, self.limits.perAddress), ("email:" + email + "|" + address, self.limits.perEmail)]
            var until: Date?
            for (key, limit) in keys {
                let recent = (state.failures[key] ?? []).filter { now.timeIntervalSince($0) < self.limits.window }
                state.failures[key] = recent.isEmpty ? nil : recent
                if recent.count >= limit, let oldest = recent.first {
                    let free = oldest.addingTimeInterval(self.limits.window)
                    until = max(until ?? free, free)
                }
            }
            guard until == nil else { return until }
            for (key, _) in keys { state.failures[key, default: []].append(now) }
            // Bounded: a flood of made-up emails must not grow this without end.
            if state.failures.count > 100_000 {
                state.failures = state.failures.filter { now.timeIntervalSince($0.value.last ?? .distantPast) < self.limits.window }
            }
            return nil
        }
    }

    /// A successful sign-in: its own reservation is taken back, and the email's failures from
    /// that address are forgiven.
    public func succeeded(address: String, email: String, at date: Date) {
        self.state.withLock { state in
            state.failures.removeValue(forKey: "email:" + email + "|" + address)
            if var attempts = state.failures["address:" + address], let index = attempts.lastIndex(of: date) {
                attempts.remove(at: index)
                state.failures["address:" + address] = attempts.isEmpty ? nil : attempts
            }
        }
    }
}
