/// Exponential backoff with jitter: the one pace at which Conduit's clients and workers try
/// again (the MQTT client's reconnects, the provisioner's jobs, the uplink forwarder, AWS
/// requests).
///
/// The wait after `n` failures in a row is `min(maximum, first * 2^(n-1))`, times a random
/// factor drawn from `jitter`, so that many clients that failed together spread out.
public struct Backoff: Sendable, Equatable {
    /// The wait after the first failure, in seconds (before jitter).
    public var first: Double
    /// The longest wait, in seconds (before jitter).
    public var maximum: Double
    /// The factor each wait is multiplied by: `0.8...1.2` spreads waits by a fifth either way,
    /// `0...1` is AWS's "full jitter", `1...1` none.
    public var jitter: ClosedRange<Double>

    public init(first: Double, maximum: Double, jitter: ClosedRange<Double> = 0.8...1.2) {
        precondition(first > 0 && maximum >= first, "a backoff starts above zero and grows to its maximum")
        self.first = first
        self.maximum = maximum
        self.jitter = jitter
    }

    /// Seconds to wait after `failures` failures in a row (1 for the first).
    public func seconds(afterFailures failures: Int) -> Double {
        var random = SystemRandomNumberGenerator()
        return self.seconds(afterFailures: failures, using: &random)
    }

    /// Seconds to wait after `failures` failures in a row, with the caller's random numbers.
    public func seconds(afterFailures failures: Int, using random: inout some RandomNumberGenerator) -> Double {
        let doublings = max(0, min(failures - 1, 40))
        let ceiling = min(self.maximum, self.first * Double(1 << doublings))
        let factor = self.jitter.lowerBound == self.jitter.upperBound
            ? self.jitter.lowerBound : Double.random(in: self.jitter, using: &random)
        return ceiling * factor
    }

    /// The wait after `failures` failures in a row, as a duration.
    public func delay(afterFailures failures: Int) -> Duration {
        .milliseconds(Int64((self.seconds(afterFailures: failures) * 1000).rounded()))
    }
}
