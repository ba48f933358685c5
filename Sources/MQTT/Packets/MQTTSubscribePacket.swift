import NIOCore

/// SUBSCRIBE: topic filters with their options.
public struct MQTTSubscribePacket: Sendable, Hashable {
    /// When a subscription is made, whether the broker sends the retained messages that match it.
    public enum RetainHandling: UInt8, Sendable, Hashable {
        /// Send retained messages at the time of the subscribe.
        case sendOnSubscribe = 0
        /// Send them only if the subscription did not exist before.
        case sendOnNewSubscribe = 1
        /// Do not send them.
        case doNotSend = 2
    }

    /// One filter and its options.
    public struct Subscription: Sendable, Hashable {
        public var topicFilter: String
        public var qos: MQTTQoS
        public var noLocal: Bool
        public var retainAsPublished: Bool
        public var retainHandling: RetainHandling

        public init(
            topicFilter: String, qos: MQTTQoS = .atMostOnce, noLocal: Bool = false, retainAsPublished: Bool = false,
            retainHandling: RetainHandling = .sendOnSubscribe
        ) {
            self.topicFilter = topicFilter
            self.qos = qos
            self.noLocal = noLocal
            self.retainAsPublished = retainAsPublished
            self.retainHandling = retainHandling
        }
    }

    public var packetIdentifier: UInt16
    public var subscriptions: [Subscription]
    public var properties: MQTTProperties

    public init(packetIdentifier: UInt16, subscriptions: [Subscription], properties: MQTTProperties = .none) {
        self.packetIdentifier = packetIdentifier
        self.subscriptions = subscriptions
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeInteger(self.packetIdentifier, endianness: .big)
        if version.hasProperties { self.properties.write(to: &buffer) }
        for subscription in self.subscriptions {
            buffer.writeMQTTString(subscription.topicFilter)
            var options = subscription.qos.rawValue
            if version.hasProperties {
                if subscription.noLocal { options |= 0x04 }
                if subscription.retainAsPublished { options |= 0x08 }
                options |= subscription.retainHandling.rawValue << 4
            }
            buffer.writeInteger(options)
        }
    }

    static func read(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> MQTTSubscribePacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTProtocolError.malformed("SUBSCRIBE with packet identifier 0") }
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.subscribe, packet: "SUBSCRIBE") : .none
        if properties.subscriptionIdentifiers.count > 1 {
            throw MQTTProtocolError.protocolError("SUBSCRIBE with more than one subscription identifier")
        }
        var subscriptions: [Subscription] = []
        while buffer.readableBytes > 0 {
            let filter = try buffer.readMQTTString()
            let options = try buffer.readMQTTByte()
            guard let qos = MQTTQoS(rawValue: options & 0x03) else { throw MQTTProtocolError.malformed("subscription QoS 3") }
            if version.hasProperties {
                guard options & 0xC0 == 0 else { throw MQTTProtocolError.malformed("subscription options reserved bits set") }
                guard let handling = RetainHandling(rawValue: (options >> 4) & 0x03) else {
                    throw MQTTProtocolError.protocolError("retain handling 3")
                }
                subscriptions.append(
                    Subscription(
                        topicFilter: filter, qos: qos, noLocal: options & 0x04 != 0, retainAsPublished: options & 0x08 != 0,
                        retainHandling: handling
                    )
                )
            } else {
                guard options & 0xFC == 0 else { throw MQTTProtocolError.malformed("subscription options reserved bits set") }
                subscriptions.append(Subscription(topicFilter: filter, qos: qos))
            }
        }
        guard !subscriptions.isEmpty else { throw MQTTProtocolError.protocolError("SUBSCRIBE without a topic filter") }
        return MQTTSubscribePacket(packetIdentifier: id, subscriptions: subscriptions, properties: properties)
    }
}

/// SUBACK (one reason code a filter) or UNSUBACK (3.1.1: none; 5.0: one a filter).
public struct MQTTSubAckPacket: Sendable, Hashable {
    public var packetIdentifier: UInt16
    public var reasonCodes: [MQTTReasonCode]
    public var properties: MQTTProperties

    public init(packetIdentifier: UInt16, reasonCodes: [MQTTReasonCode], properties: MQTTProperties = .none) {
        self.packetIdentifier = packetIdentifier
        self.reasonCodes = reasonCodes
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion, isUnsubAck: Bool) {
        buffer.writeInteger(self.packetIdentifier, endianness: .big)
        if version.hasProperties {
            self.properties.write(to: &buffer)
        } else if isUnsubAck {
            return
        }
        for code in self.reasonCodes {
            // 3.1.1 SUBACK knows only granted QoS 0-2 and failure 0x80.
            buffer.writeInteger(version.hasProperties || code.rawValue <= 2 ? code.rawValue : 0x80)
        }
    }

    static func read(from buffer: inout ByteBuffer, version: MQTTProtocolVersion, isUnsubAck: Bool) throws -> MQTTSubAckPacket {
        let id = try buffer.readMQTTUInt16()
        if isUnsubAck && !version.hasProperties {
            // A 3.1.1 UNSUBACK is the packet identifier and nothing else.
            guard buffer.readableBytes == 0 else { throw MQTTProtocolError.malformed("3.1.1 UNSUBACK with a payload") }
            return MQTTSubAckPacket(packetIdentifier: id, reasonCodes: [])
        }
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.ack, packet: isUnsubAck ? "UNSUBACK" : "SUBACK")
            : .none
        var codes: [MQTTReasonCode] = []
        while buffer.readableBytes > 0 {
            let code = try buffer.readMQTTByte()
            // 3.1.1 SUBACK return codes are 0x00, 0x01, 0x02 and 0x80 only [MQTT-3.9.3-2].
            if !version.hasProperties && !isUnsubAck && code > 2 && code != 0x80 {
                throw MQTTProtocolError.malformed("SUBACK return code \(code)")
            }
            codes.append(MQTTReasonCode(rawValue: code))
        }
        if !isUnsubAck || version.hasProperties {
            guard !codes.isEmpty else { throw MQTTProtocolError.protocolError("acknowledgement without reason codes") }
        }
        return MQTTSubAckPacket(packetIdentifier: id, reasonCodes: codes, properties: properties)
    }
}

/// UNSUBSCRIBE: topic filters to remove.
public struct MQTTUnsubscribePacket: Sendable, Hashable {
    public var packetIdentifier: UInt16
    public var topicFilters: [String]
    public var properties: MQTTProperties

    public init(packetIdentifier: UInt16, topicFilters: [String], properties: MQTTProperties = .none) {
        self.packetIdentifier = packetIdentifier
        self.topicFilters = topicFilters
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeInteger(self.packetIdentifier, endianness: .big)
        if version.hasProperties { self.properties.write(to: &buffer) }
        for filter in self.topicFilters { buffer.writeMQTTString(filter) }
    }

    static func read(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> MQTTUnsubscribePacket {
        let id = try buffer.readMQTTUInt16()
        guard id != 0 else { throw MQTTProtocolError.malformed("UNSUBSCRIBE with packet identifier 0") }
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.unsubscribe, packet: "UNSUBSCRIBE") : .none
        var filters: [String] = []
        while buffer.readableBytes > 0 { filters.append(try buffer.readMQTTString()) }
        guard !filters.isEmpty else { throw MQTTProtocolError.protocolError("UNSUBSCRIBE without a topic filter") }
        return MQTTUnsubscribePacket(packetIdentifier: id, topicFilters: filters, properties: properties)
    }
}

/// DISCONNECT (5.0: with a reason) or AUTH (5.0 only): a reason code and properties, both optional on the wire.
public struct MQTTReasonPacket: Sendable, Hashable {
    public var reasonCode: MQTTReasonCode
    public var properties: MQTTProperties

    public init(reasonCode: MQTTReasonCode = .success, properties: MQTTProperties = .none) {
        self.reasonCode = reasonCode
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        guard version.hasProperties else { return }
        if self.reasonCode == .success && self.properties.isEmpty { return }
        buffer.writeInteger(self.reasonCode.rawValue)
        if !self.properties.isEmpty { self.properties.write(to: &buffer) }
    }

    static func read(
        from buffer: inout ByteBuffer, version: MQTTProtocolVersion, allowed: Set<UInt8>, packet: String
    ) throws -> MQTTReasonPacket {
        guard version.hasProperties else {
            guard buffer.readableBytes == 0 else { throw MQTTProtocolError.malformed("\(packet) with a body") }
            return MQTTReasonPacket()
        }
        guard buffer.readableBytes > 0 else { return MQTTReasonPacket() }
        let reason = MQTTReasonCode(rawValue: try buffer.readMQTTByte())
        let properties =
            buffer.readableBytes > 0 ? try MQTTProperties.read(from: &buffer, allowed: allowed, packet: packet) : .none
        return MQTTReasonPacket(reasonCode: reason, properties: properties)
    }
}
