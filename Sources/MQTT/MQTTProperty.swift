import NIOCore

/// One MQTT 5 property (MQTT 5, section 2.2.2.2).
public enum MQTTProperty: Sendable, Hashable {
    case payloadFormatIndicator(UInt8)
    case messageExpiryInterval(UInt32)
    case contentType(String)
    case responseTopic(String)
    case correlationData(ByteBuffer)
    case subscriptionIdentifier(Int)
    case sessionExpiryInterval(UInt32)
    case assignedClientIdentifier(String)
    case serverKeepAlive(UInt16)
    case authenticationMethod(String)
    case authenticationData(ByteBuffer)
    case requestProblemInformation(UInt8)
    case willDelayInterval(UInt32)
    case requestResponseInformation(UInt8)
    case responseInformation(String)
    case serverReference(String)
    case reasonString(String)
    case receiveMaximum(UInt16)
    case topicAliasMaximum(UInt16)
    case topicAlias(UInt16)
    case maximumQoS(UInt8)
    case retainAvailable(UInt8)
    case userProperty(String, String)
    case maximumPacketSize(UInt32)
    case wildcardSubscriptionAvailable(UInt8)
    case subscriptionIdentifierAvailable(UInt8)
    case sharedSubscriptionAvailable(UInt8)

    /// A property's name: its identifier byte on the wire [MQTT-2.2.2.2].
    public enum Name: UInt8, Sendable, CaseIterable {
        case payloadFormatIndicator = 0x01
        case messageExpiryInterval = 0x02
        case contentType = 0x03
        case responseTopic = 0x08
        case correlationData = 0x09
        case subscriptionIdentifier = 0x0B
        case sessionExpiryInterval = 0x11
        case assignedClientIdentifier = 0x12
        case serverKeepAlive = 0x13
        case authenticationMethod = 0x15
        case authenticationData = 0x16
        case requestProblemInformation = 0x17
        case willDelayInterval = 0x18
        case requestResponseInformation = 0x19
        case responseInformation = 0x1A
        case serverReference = 0x1C
        case reasonString = 0x1F
        case receiveMaximum = 0x21
        case topicAliasMaximum = 0x22
        case topicAlias = 0x23
        case maximumQoS = 0x24
        case retainAvailable = 0x25
        case userProperty = 0x26
        case maximumPacketSize = 0x27
        case wildcardSubscriptionAvailable = 0x28
        case subscriptionIdentifierAvailable = 0x29
        case sharedSubscriptionAvailable = 0x2A
    }

    /// The property's name.
    public var name: Name {
        switch self {
        case .payloadFormatIndicator: .payloadFormatIndicator
        case .messageExpiryInterval: .messageExpiryInterval
        case .contentType: .contentType
        case .responseTopic: .responseTopic
        case .correlationData: .correlationData
        case .subscriptionIdentifier: .subscriptionIdentifier
        case .sessionExpiryInterval: .sessionExpiryInterval
        case .assignedClientIdentifier: .assignedClientIdentifier
        case .serverKeepAlive: .serverKeepAlive
        case .authenticationMethod: .authenticationMethod
        case .authenticationData: .authenticationData
        case .requestProblemInformation: .requestProblemInformation
        case .willDelayInterval: .willDelayInterval
        case .requestResponseInformation: .requestResponseInformation
        case .responseInformation: .responseInformation
        case .serverReference: .serverReference
        case .reasonString: .reasonString
        case .receiveMaximum: .receiveMaximum
        case .topicAliasMaximum: .topicAliasMaximum
        case .topicAlias: .topicAlias
        case .maximumQoS: .maximumQoS
        case .retainAvailable: .retainAvailable
        case .userProperty: .userProperty
        case .maximumPacketSize: .maximumPacketSize
        case .wildcardSubscriptionAvailable: .wildcardSubscriptionAvailable
        case .subscriptionIdentifierAvailable: .subscriptionIdentifierAvailable
        case .sharedSubscriptionAvailable: .sharedSubscriptionAvailable
        }
    }

    /// The property's identifier byte.
    public var identifier: UInt8 { self.name.rawValue }

    /// Properties that may appear more than once in a packet.
    var mayRepeat: Bool {
        switch self {
        case .userProperty, .subscriptionIdentifier: true
        default: false
        }
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeMQTTVariableByteInteger(Int(self.identifier))
        switch self {
        case .payloadFormatIndicator(let v), .requestProblemInformation(let v), .requestResponseInformation(let v),
            .maximumQoS(let v), .retainAvailable(let v), .wildcardSubscriptionAvailable(let v),
            .subscriptionIdentifierAvailable(let v), .sharedSubscriptionAvailable(let v):
            buffer.writeInteger(v)
        case .messageExpiryInterval(let v), .sessionExpiryInterval(let v), .willDelayInterval(let v),
            .maximumPacketSize(let v):
            buffer.writeInteger(v, endianness: .big)
        case .serverKeepAlive(let v), .receiveMaximum(let v), .topicAliasMaximum(let v), .topicAlias(let v):
            buffer.writeInteger(v, endianness: .big)
        case .contentType(let s), .responseTopic(let s), .assignedClientIdentifier(let s), .authenticationMethod(let s),
            .responseInformation(let s), .serverReference(let s), .reasonString(let s):
            buffer.writeMQTTString(s)
        case .correlationData(let b), .authenticationData(let b):
            buffer.writeMQTTBinary(b)
        case .subscriptionIdentifier(let v):
            buffer.writeMQTTVariableByteInteger(v)
        case .userProperty(let key, let value):
            buffer.writeMQTTString(key)
            buffer.writeMQTTString(value)
        }
    }

    static func read(from buffer: inout ByteBuffer) throws -> MQTTProperty {
        let identifier = try buffer.readMQTTVariableByteInteger()
        func flag(_ make: (UInt8) -> MQTTProperty, _ name: String) throws -> MQTTProperty {
            let value = try buffer.readMQTTByte()
            guard value <= 1 else { throw MQTTProtocolError.protocolError("\(name) must be 0 or 1") }
            return make(value)
        }
        func nonZero16(_ make: (UInt16) -> MQTTProperty, _ name: String) throws -> MQTTProperty {
            let value = try buffer.readMQTTUInt16()
            guard value > 0 else { throw MQTTProtocolError.protocolError("\(name) must not be 0") }
            return make(value)
        }
        switch identifier {
        case 0x01: return try flag(MQTTProperty.payloadFormatIndicator, "payload format indicator")
        case 0x02: return .messageExpiryInterval(try buffer.readMQTTUInt32())
        case 0x03: return .contentType(try buffer.readMQTTString())
        case 0x08: return .responseTopic(try buffer.readMQTTString())
        case 0x09: return .correlationData(try buffer.readMQTTBinary())
        case 0x0B:
            let value = try buffer.readMQTTVariableByteInteger()
            guard value > 0 else { throw MQTTProtocolError.protocolError("subscription identifier must not be 0") }
            return .subscriptionIdentifier(value)
        case 0x11: return .sessionExpiryInterval(try buffer.readMQTTUInt32())
        case 0x12: return .assignedClientIdentifier(try buffer.readMQTTString())
        case 0x13: return .serverKeepAlive(try buffer.readMQTTUInt16())
        case 0x15: return .authenticationMethod(try buffer.readMQTTString())
        case 0x16: return .authenticationData(try buffer.readMQTTBinary())
        case 0x17: return try flag(MQTTProperty.requestProblemInformation, "request problem information")
        case 0x18: return .willDelayInterval(try buffer.readMQTTUInt32())
        case 0x19: return try flag(MQTTProperty.requestResponseInformation, "request response information")
        case 0x1A: return .responseInformation(try buffer.readMQTTString())
        case 0x1C: return .serverReference(try buffer.readMQTTString())
        case 0x1F: return .reasonString(try buffer.readMQTTString())
        case 0x21: return try nonZero16(MQTTProperty.receiveMaximum, "receive maximum")
        case 0x22: return .topicAliasMaximum(try buffer.readMQTTUInt16())
        case 0x23: return try nonZero16(MQTTProperty.topicAlias, "topic alias")
        case 0x24: return try flag(MQTTProperty.maximumQoS, "maximum QoS")
        case 0x25: return try flag(MQTTProperty.retainAvailable, "retain available")
        case 0x26: return .userProperty(try buffer.readMQTTString(), try buffer.readMQTTString())
        case 0x27:
            let value = try buffer.readMQTTUInt32()
            guard value > 0 else { throw MQTTProtocolError.protocolError("maximum packet size must not be 0") }
            return .maximumPacketSize(value)
        case 0x28: return try flag(MQTTProperty.wildcardSubscriptionAvailable, "wildcard subscription available")
        case 0x29: return try flag(MQTTProperty.subscriptionIdentifierAvailable, "subscription identifier available")
        case 0x2A: return try flag(MQTTProperty.sharedSubscriptionAvailable, "shared subscription available")
        default: throw MQTTProtocolError.malformed("unknown property identifier 0x\(String(identifier, radix: 16))")
        }
    }
}
