import Backoff

/// When and how long to wait before trying a failed request again: exponential backoff with
/// full jitter, as AWS's architecture blog and SDKs do it.
public struct AWSRetryPolicy: Sendable {
    /// Attempts in all, the first included.
    public var maximumAttempts: Int
    /// The first backoff's upper bound, in seconds.
    public var baseDelay: Double
    /// The longest backoff, in seconds.
    public var maximumDelay: Double

    public init(maximumAttempts: Int = 8, baseDelay: Double = 0.1, maximumDelay: Double = 20) {
        self.maximumAttempts = maximumAttempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// The delay before attempt `attempt + 1` (attempt counts from 1): a random time between zero
    /// and `min(maximumDelay, baseDelay * 2^attempt)`, so that many clients spread out.
    public func delay(afterAttempt attempt: Int, using random: inout some RandomNumberGenerator) -> Double {
        guard self.baseDelay > 0 else { return 0 }
        let backoff = Backoff(first: 2 * self.baseDelay, maximum: max(2 * self.baseDelay, self.maximumDelay), jitter: 0...1)
        return backoff.seconds(afterFailures: attempt, using: &random)
    }
}
