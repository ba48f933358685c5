import NIOCore

/// PUBLISH: an application message, either way.
///
/// ```
/// +-----------------+-----------+------------------------------------------+
/// | 0x3 | D QQ R    | remaining | topic [packetId] [properties] payload    |
/// +-----------------+-----------+------------------------------------------+
/// ```
public struct MQTTPublishPacket: Sendable, Hashable {
    /// The topic name; empty when a v5 topic alias stands for it.
    public var topic: String
    public var payload: ByteBuffer
    public var qos: MQTTQoS
    public var retain: Bool
    public var duplicate: Bool
    /// Present exactly when `qos` is 1 or 2.
    public var packetIdentifier: UInt16?
    public var properties: MQTTProperties

    public init(
        topic: String, payload: ByteBuffer, qos: MQTTQoS = .atMostOnce, retain: Bool = false, duplicate: Bool = false,
        packetIdentifier: UInt16? = nil, properties: MQTTProperties = .none
    ) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.duplicate = duplicate
        self.packetIdentifier = packetIdentifier
        self.properties = properties
    }

    var flags: UInt8 {
        (self.duplicate ? 0x08 : 0) | (self.qos.rawValue << 1) | (self.retain ? 0x01 : 0)
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeMQTTString(self.topic)
        if self.qos != .atMostOnce { buffer.writeInteger(self.packetIdentifier ?? 0, endianness: .big) }
        if version.hasProperties { self.properties.write(to: &buffer) }
        var payload = self.payload
        buffer.writeBuffer(&payload)
    }

    static func read(from buffer: inout ByteBuffer, flags: UInt8, version: MQTTProtocolVersion) throws -> MQTTPublishPacket {
        guard let qos = MQTTQoS(rawValue: (flags >> 1) & 0x03) else { throw MQTTProtocolError.malformed("PUBLISH with QoS 3") }
        let duplicate = flags & 0x08 != 0
        if qos == .atMostOnce && duplicate { throw MQTTProtocolError.malformed("PUBLISH QoS 0 with DUP set") }
        let topic = try buffer.readMQTTString()
        var packetIdentifier: UInt16?
        if qos != .atMostOnce {
            let id = try buffer.readMQTTUInt16()
            guard id != 0 else { throw MQTTProtocolError.malformed("packet identifier 0") }
            packetIdentifier = id
        }
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.publish, packet: "PUBLISH") : .none
        if topic.isEmpty {
            guard properties.topicAlias != nil else { throw MQTTProtocolError.protocolError("PUBLISH without a topic name") }
        } else {
            try MQTTTopic.validateName(topic)
        }
        let payload = buffer.readSlice(length: buffer.readableBytes) ?? ByteBuffer()
        return MQTTPublishPacket(
            topic: topic, payload: payload, qos: qos, retain: flags & 0x01 != 0, duplicate: duplicate,
            packetIdentifier: packetIdentifier, properties: properties
        )
    }
}

/// PUBACK, PUBREC, PUBREL or PUBCOMP: the steps of QoS 1 and 2, each a packet id and (v5) a reason.
public struct MQTTAckPacket: Sendable, Hashable {
    public var packetIdentifier: UInt16
    public var reasonCode: MQTTReasonCode
    public var properties: MQTTProperties

    public init(packetIdentifier: UInt16, reasonCode: MQTTReasonCode = .success, properties: MQTTProperties = .none) {
        self.packetIdentifier = packetIdentifier
        self.reasonCode = reasonCode
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeInteger(self.packetIdentifier, endianness: .big)
        guard version.hasProperties else { return }
        // The reason and properties may be left out when they are success and none [MQTT-3.4.2.1].
        if self.reasonCode == .success && self.properties.isEmpty { return }
        buffer.writeInteger(self.reasonCode.rawValue)
        if !self.properties.isEmpty { self.properties.write(to: &buffer) }
    }

    static func read(from buffer: inout ByteBuffer, version: MQTTProtocolVersion, packet: String) throws -> MQTTAckPacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTProtocolError.malformed("\(packet) with packet identifier 0") }
        guard version.hasProperties, buffer.readableBytes > 0 else {
            return MQTTAckPacket(packetIdentifier: id)
        }
        let reason = MQTTReasonCode(rawValue: try buffer.readMQTTByte())
        let properties =
            buffer.readableBytes > 0
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.ack, packet: packet) : .none
        return MQTTAckPacket(packetIdentifier: id, reasonCode: reason, properties: properties)
    }
}
