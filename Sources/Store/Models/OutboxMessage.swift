import Foundation

/// A device's message waiting to be published to one integration's AWS IoT topic. It is
/// written with the message's history row and removed only after AWS accepted it.
public struct OutboxMessage: Sendable, Equatable {
    /// The outbox's own order: per device, the order the device published in.
    public var sequence: Int
    public var tenantID: String
    public var integrationID: String
    public var deviceID: String
    /// The message's sequence in the device's history (the envelope's `sequence`).
    public var messageSequence: Int
    /// The MQTT topic the device published on.
    public var topic: String
    public var payload: Data
    public var qos: Int
    public var receivedAt: Date
    /// Failed tries so far.
    public var attempts: Int
    /// A rule's publish: the AWS topic it goes to, its payload as it is (no uplink template, no
    /// envelope); nil for a device's message.
    public var awsTopic: String?

    public init(
        sequence: Int = 0, tenantID: String, integrationID: String, deviceID: String, messageSequence: Int, topic: String,
        payload: Data, qos: Int, receivedAt: Date, attempts: Int = 0, awsTopic: String? = nil
    ) {
        self.awsTopic = awsTopic
        self.sequence = sequence
        self.tenantID = tenantID
        self.integrationID = integrationID
        self.deviceID = deviceID
        self.messageSequence = messageSequence
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.receivedAt = receivedAt
        self.attempts = attempts
    }
}
