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
    private let addresses = NIOLockedValueBox<(entries: [String: Address], pruneAt: Int)>(([:], 10_000))

    /// What the bounds count by: an IPv4 address, or an IPv6 address's /64 (one host may hold
    /// a whole /64, so counting single IPv6 addresses would bound nothing).
    static func key(for address: SocketAddress?) -> String {
        switch address {
        case .v6(let v6)?:
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0.prefix(8)) }
            if bytes.prefix(6).allSatisfy({ $0 == 0 }) || bytes == [0, 0, 0, 0, 0, 0, 0, 0] { return address?.ipAddress ?? "unknown" }
            return stride(from: 0, to: 8, by: 2).map { String(format: "%02x%02x", bytes[$0], bytes[$0 + 1]) }.joined(separator: ":") + "::/64"
        case let other?:
            return other.ipAddress ?? "unknown"
        case nil:
            return "unknown"
        }
    }

    init(limits: Limits) {
        self.limits = limits
    }

    private var burst: Double { (self.limits.connectsPerSecond ?? 0) * 2 }

    private func withAddress<R>(_ address: String, now: NIODeadline, _ body: (inout Address) -> R) -> R {
        self.addresses.withLockedValue { state in
            if state.entries.count > state.pruneAt {
                // Forget idle addresses rather than grow without bound; the next pass waits until
                // as many again have come, so a large fleet does not pay for it on every connect.
                state.entries = state.entries.filter { $0.value.connections > 0 || ($0.value.pausedUntil.map { $0 > now } ?? false) }
                state.pruneAt = max(10_000, state.entries.count * 2)
            }
            var entry = state.entries[address] ?? Address(tokens: self.burst, refilledAt: now, failuresSince: now)
            let result = body(&entry)
            state.entries[address] = entry
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
