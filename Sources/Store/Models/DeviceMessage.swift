import Foundation

/// A message a device published, as kept in its history.
public struct DeviceMessage: Sendable, Equatable {
    public var sequence: Int
    public var tenantID: String
    public var deviceID: String
    public var topic: String
    public var payload: Data
    public var qos: Int
    public var retain: Bool
    public var receivedAt: Date
    /// Where it came from: nil for the device itself, `aws` for a message taken from AWS IoT on
    /// one of an integration's ingest topics.
    public var source: String?

    public init(
        sequence: Int = 0, tenantID: String, deviceID: String, topic: String, payload: Data, qos: Int, retain: Bool, receivedAt: Date,
        source: String? = nil
    ) {
        self.source = source
        self.sequence = sequence
        self.tenantID = tenantID
        self.deviceID = deviceID
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.receivedAt = receivedAt
    }
}
