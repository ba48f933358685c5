import Backoff
import Testing

@Suite("Backoff")
struct BackoffTests {
    @Test("waits double from the first to the maximum, and jitter stays within its range")
    func doublingAndJitter() {
        let exact = Backoff(first: 0.5, maximum: 60, jitter: 1...1)
        #expect((1...9).map { exact.seconds(afterFailures: $0) } == [0.5, 1, 2, 4, 8, 16, 32, 60, 60])
        #expect(exact.seconds(afterFailures: 1_000) == 60)
        #expect(exact.delay(afterFailures: 2) == .seconds(1))

        let spread = Backoff(first: 2, maximum: 300)
        for failures in 1...12 {
            let ceiling = min(300, 2 * Double(1 << (failures - 1)))
            for _ in 0..<50 {
                #expect((ceiling * 0.8...ceiling * 1.2).contains(spread.seconds(afterFailures: failures)))
            }
        }
        let full = Backoff(first: 0.2, maximum: 20, jitter: 0...1)
        let waits = (0..<200).map { _ in full.seconds(afterFailures: 3) }
        #expect(waits.allSatisfy { (0...0.8).contains($0) })
        #expect(Set(waits).count > 100, "full jitter spreads the waits out")
    }
}
