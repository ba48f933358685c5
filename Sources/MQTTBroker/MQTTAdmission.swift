import Metrics
import NIOConcurrencyHelpers
import NIOCore

/// What one source address may make the broker do: hold connections, open them at a rate, and
/// fail to log in. Counted in memory (a refused login costs no read of the store), per address.
final class MQTTAdmission: Sendable {
    struct Limits: Sendable {
        var connectionsPerAddress: Int?
        var connectsPerSecond: Double?
        var loginFailuresPerMinute: Int?
    }

    enum Verdict: Equatable {
        case allow
        /// Over the CONNECT rate.
        case rateExceeded
        /// Too many failed logins: paused until then, without asking the authenticator.
        case paused(until: NIODeadline)
    }

    private struct Address {
        var connections = 0
        var tokens: Double
        var refilledAt: NIODeadline
        var failures = 0
        var failuresSince: NIODeadline
        var pausedUntil: NIODeadline?
        /// Pauses in a row: each one twice as long as the last, up to 15 minutes.
        var pauses = 0
    }

    let limits: Limits
    private let addresses = NIOLockedValueBox<[String: Address]>([:])

    init(limits: Limits) {
        self.limits = limits
    }

    private var burst: Double { (self.limits.connectsPerSecond ?? 0) * 2 }

    private func withAddress<R>(_ address: String, now: NIODeadline, _ body: (inout Address) -> R) -> R {
        self.addresses.withLockedValue { addresses in
            if addresses.count > 50_000 {
                // Forget idle addresses rather than grow without bound.
                addresses = addresses.filter { $0.value.connections > 0 || ($0.value.pausedUntil.map { $0 > now } ?? false) }
            }
            var entry = addresses[address] ?? Address(tokens: self.burst, refilledAt: now, failuresSince: now)
            let result = body(&entry)
            addresses[address] = entry
            return result
        }
    }

    /// A connection opened from `address`; false when the address holds as many as it may (the
    /// connection still counts until ``closed(_:)``).
    func opened(_ address: String, now: NIODeadline) -> Bool {
        self.withAddress(address, now: now) { entry in
            entry.connections += 1
            guard let limit = self.limits.connectionsPerAddress else { return true }
            return entry.connections <= limit
        }
    }

    func closed(_ address: String, now: NIODeadline) {
        self.withAddress(address, now: now) { entry in entry.connections = max(0, entry.connections - 1) }
    }

    /// A CONNECT from `address`: allowed, over the rate, or paused after failed logins.
    func connectAttempt(_ address: String, now: NIODeadline) -> Verdict {
        self.withAddress(address, now: now) { entry in
            if let until = entry.pausedUntil, until > now { return .paused(until: until) }
            guard let rate = self.limits.connectsPerSecond else { return .allow }
            let elapsed = Double((now - entry.refilledAt).nanoseconds) / 1e9
            entry.tokens = min(self.burst, entry.tokens + elapsed * rate)
            entry.refilledAt = now
            guard entry.tokens >= 1 else { return .rateExceeded }
            entry.tokens -= 1
            return .allow
        }
    }

    /// A login from `address` failed (wrong credentials, unknown device, certificate not enrolled).
    func loginFailed(_ address: String, now: NIODeadline) {
        guard let limit = self.limits.loginFailuresPerMinute else { return }
        self.withAddress(address, now: now) { entry in
            if now - entry.failuresSince > .minutes(1) {
                entry.failures = 0
                entry.failuresSince = now
                if entry.pausedUntil.map({ now - $0 > .minutes(15) }) ?? false { entry.pauses = 0 }
            }
            entry.failures += 1
            guard entry.failures >= limit else { return }
            let seconds = min(60 << min(entry.pauses, 4), 900)
            entry.pausedUntil = now + .seconds(Int64(seconds))
            entry.pauses += 1
            entry.failures = 0
            entry.failuresSince = now
        }
    }
}

/// Refusals of what a bound does not allow, by bound, for `/metrics`.
enum MQTTRefusals {
    static func count(_ bound: String) {
        Counter(label: "conduit_mqtt_bound_refusals_total", dimensions: [("bound", bound)]).increment()
    }
}
