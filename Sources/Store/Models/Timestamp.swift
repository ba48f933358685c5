import Foundation

/// Times are stored as milliseconds since 1970 in a BIGINT: the same on both engines, and ordered.
extension Date {
    var storeMilliseconds: Int { Int((self.timeIntervalSince1970 * 1000).rounded(.down)) }

    init(storeMilliseconds: Int) {
        self.init(timeIntervalSince1970: Double(storeMilliseconds) / 1000)
    }

    /// This time truncated to what the store keeps, so values compare equal after a round trip.
    public var truncatedToStorePrecision: Date { Date(storeMilliseconds: self.storeMilliseconds) }
}
