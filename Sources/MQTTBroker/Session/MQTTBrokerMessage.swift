import MQTT
import NIOCore

/// An application message as the broker routes it: the publisher's topic, payload, QoS and
/// retain flag, and the properties that travel with it (5.0).
public struct MQTTBrokerMessage: Sendable, Hashable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: MQTTQoS
    public var retain: Bool
    /// Forwarded properties: payload format, content type, response topic, correlation data,
    /// user properties. Message expiry is kept in ``expiresAt``.
    public var properties: MQTTProperties
    /// When the message expires (from its Message Expiry Interval); nil for never.
    public var expiresAt: NIODeadline?
    /// The client that published it, for No Local; nil when the hub published it.
    public var publisherClientIdentifier: String?
    /// Set by the hub on a message it must hear was delivered (a downlink): the delivery
    /// observer is told when a client acknowledges it.
    public var deliveryID: Int?

    public init(
        topic: String, payload: ByteBuffer, qos: MQTTQoS = .atMostOnce, retain: Bool = false,
        properties: MQTTProperties = .none, expiresAt: NIODeadline? = nil, publisherClientIdentifier: String? = nil,
        deliveryID: Int? = nil
    ) {
        self.deliveryID = deliveryID
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.expiresAt = expiresAt
        self.publisherClientIdentifier = publisherClientIdentifier
    }

    /// The message with a payload of its own when it shares a much larger buffer (a slice of
    /// the read that brought it, up to 64 KiB): a message that is kept (queued, retained) must
    /// not keep a whole read alive, or a queue's byte bound would not bound its memory.
    func compacted() -> MQTTBrokerMessage {
        guard self.payload.storageCapacity > 2 * self.payload.readableBytes + 512 else { return self }
        var message = self
        var payload = ByteBufferAllocator().buffer(capacity: self.payload.readableBytes)
        payload.writeImmutableBuffer(self.payload)
        message.payload = payload
        return message
    }

    /// True when its expiry has passed.
    func isExpired(at now: NIODeadline) -> Bool {
        guard let expiresAt else { return false }
        return expiresAt <= now
    }

    /// The PUBLISH for a subscriber: `qos` and `retain` as granted, the remaining expiry, and the
    /// matching subscription identifiers.
    func publishPacket(
        qos: MQTTQoS, retain: Bool, packetIdentifier: UInt16?, subscriptionIdentifiers: [Int], duplicate: Bool = false,
        now: NIODeadline
    ) -> MQTTPublishPacket {
        var properties = self.properties
        if let expiresAt {
            let remaining = max(1, (expiresAt - now).nanoseconds / 1_000_000_000)
            properties.set(.messageExpiryInterval(UInt32(clamping: remaining)))
        }
        for identifier in subscriptionIdentifiers { properties.items.append(.subscriptionIdentifier(identifier)) }
        return MQTTPublishPacket(
            topic: self.topic, payload: self.payload, qos: qos, retain: retain, duplicate: duplicate,
            packetIdentifier: packetIdentifier, properties: properties
        )
    }
}
