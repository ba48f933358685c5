import Foundation

/// A token bucket: `rate` requests a second on average, up to `burst` at once. Pure arithmetic
/// on the times it is given, so its behaviour is tested without a clock.
public struct TokenBucket: Sendable, Equatable {
    public private(set) var rate: Double
    public let burst: Double
    private var tokens: Double
    private var updated: Double

    public init(rate: Double, burst: Double? = nil, now: Double) {
        self.rate = rate
        self.burst = max(1, burst ?? rate)
        self.tokens = self.burst
        self.updated = now
    }

    /// Takes a token and returns how long to wait before using it (0 when one is there now).
    /// Tokens may go negative: each caller is given its own place in the line.
    public mutating func reserve(now: Double) -> Double {
        self.refill(now: now)
        self.tokens -= 1
        return self.tokens >= 0 ? 0 : -self.tokens / self.rate
    }

    /// How long a caller would wait for a token now, without taking one.
    public mutating func peekWait(now: Double) -> Double {
        self.refill(now: now)
        return self.tokens >= 1 ? 0 : (1 - self.tokens) / self.rate
    }

    /// Changes the rate (throttling lowers it, success raises it back).
    public mutating func setRate(_ rate: Double, now: Double) {
        self.refill(now: now)
        self.rate = max(0.1, rate)
    }

    private mutating func refill(now: Double) {
        if now > self.updated {
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        }
    }
}

/// Holds each AWS operation to its quota, and slows an operation further while AWS throttles it.
///
/// Calls are spaced evenly at the quota with a tenth of a second of burst, not a whole second: a
/// caller that bursts a full second's worth meets AWS's bucket empty and rides its edge from
/// then on, where any jitter in the network is a throttling answer. Spaced out, the calls keep
/// AWS's bucket nearly full and still use all of the quota.
public actor AWSRateLimiter {
    /// Requests a second per operation: AWS IoT Core's published per-account quotas.
    public static let awsIoTQuotas: [String: Double] = [
        "CreateThing": 15, "DescribeThing": 350, "UpdateThing": 15, "DeleteThing": 15, "ListThings": 10,
        "CreateThingGroup": 25, "DescribeThingGroup": 100, "DeleteThingGroup": 25, "AddThingToThingGroup": 60,
        "RemoveThingFromThingGroup": 60, "ListThingsInThingGroup": 10, "CreateKeysAndCertificate": 10,
        "CreateCertificateFromCsr": 15, "DescribeCertificate": 10, "UpdateCertificate": 10, "DeleteCertificate": 10,
        "CreatePolicy": 10, "GetPolicy": 15, "DeletePolicy": 10, "AttachPolicy": 15, "DetachPolicy": 15,
        "ListAttachedPolicies": 15, "AttachThingPrincipal": 15, "DetachThingPrincipal": 15, "ListThingPrincipals": 10,
        "DescribeEndpoint": 10,
        "ListCertificates": 10, "ListThingGroupsForThing": 10, "CreatePolicyVersion": 10, "ListPolicyVersions": 10,
        "DeletePolicyVersion": 10, "Publish": 20_000, "GetThingShadow": 4_000, "UpdateThingShadow": 4_000,
        "DeleteThingShadow": 4_000, "ListNamedShadowsForThing": 10, "AssumeRole": 50,
    ]

    private var buckets: [String: TokenBucket] = [:]
    private let quotas: [String: Double]
    private let defaultRate: Double
    private let start = ContinuousClock.now

    public init(quotas: [String: Double] = AWSRateLimiter.awsIoTQuotas, defaultRate: Double = 10) {
        self.quotas = quotas
        self.defaultRate = defaultRate
    }

    private var now: Double {
        let elapsed = ContinuousClock.now - self.start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func quota(_ operation: String) -> Double { self.quotas[operation] ?? self.defaultRate }

    /// Waits until the operation may be called.
    public func acquire(_ operation: String) async throws {
        let now = self.now
        var bucket = self.buckets[operation] ?? self.makeBucket(operation, now: now)
        let wait = bucket.reserve(now: now)
        self.buckets[operation] = bucket
        if wait > 0 { try await Task.sleep(for: .seconds(wait)) }
    }

    private func makeBucket(_ operation: String, now: Double) -> TokenBucket {
        let quota = self.quota(operation)
        return TokenBucket(rate: quota, burst: max(1, quota / 10), now: now)
    }

    /// AWS throttled the operation: slow it to three quarters for a while.
    public func throttled(_ operation: String) {
        let now = self.now
        var bucket = self.buckets[operation] ?? self.makeBucket(operation, now: now)
        bucket.setRate(bucket.rate * 0.75, now: now)
        self.buckets[operation] = bucket
    }

    /// A call succeeded: win back a little of the rate, up to the quota.
    public func succeeded(_ operation: String) {
        guard var bucket = self.buckets[operation] else { return }
        let quota = self.quota(operation)
        guard bucket.rate < quota else { return }
        bucket.setRate(min(quota, bucket.rate * 1.1), now: self.now)
        self.buckets[operation] = bucket
    }

    /// The operation's current rate, for metrics and tests.
    public func rate(of operation: String) -> Double {
        self.buckets[operation]?.rate ?? self.quota(operation)
    }
}
