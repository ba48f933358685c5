import Foundation
import Synchronization

/// Failed console sign-ins, counted per client address and per email over a sliding window:
/// past the limit, that address or email is refused until its oldest failure leaves the window.
///
/// Kept in memory: each node counts its own, which bounds guessing per node; a restart forgives.
public final class SignInThrottle: Sendable {
    public struct Limits: Sendable {
        /// Failures an email may have within ``window`` before it is refused.
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

    /// When the next attempt for this address and email may be made, if it must wait.
    public func retryAfter(address: String, email: String, now: Date) -> Date? {
        self.state.withLock { state in
            let keys = [("address:" + address, self.limits.perAddress), ("email:" + email, self.limits.perEmail)]
            var until: Date?
            for (key, limit) in keys {
                let recent = (state.failures[key] ?? []).filter { now.timeIntervalSince($0) < self.limits.window }
                state.failures[key] = recent.isEmpty ? nil : recent
                if recent.count >= limit, let oldest = recent.first {
                    let free = oldest.addingTimeInterval(self.limits.window)
                    until = max(until ?? free, free)
                }
            }
            return until
        }
    }

    public func failed(address: String, email: String, at date: Date) {
        self.state.withLock { state in
            state.failures["address:" + address, default: []].append(date)
            state.failures["email:" + email, default: []].append(date)
            // Bounded: a flood of made-up emails must not grow this without end.
            if state.failures.count > 100_000 {
                state.failures = state.failures.filter { date.timeIntervalSince($0.value.last ?? .distantPast) < self.limits.window }
            }
        }
    }

    /// A successful sign-in forgives the email's failures (not the address's).
    public func succeeded(email: String) {
        _ = self.state.withLock { $0.failures.removeValue(forKey: "email:" + email) }
    }
}
