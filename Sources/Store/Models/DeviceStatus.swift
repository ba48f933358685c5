/// Where a device is in its lifecycle.
public enum DeviceStatus: String, Sendable, Codable, CaseIterable {
    /// Registered, not yet allowed in.
    case pending
    /// Allowed to connect, and mirrored into AWS IoT Core by its integrations.
    case accepted
    /// Refused; may be accepted again.
    case rejected
    /// Retired for good.
    case decommissioned
}
