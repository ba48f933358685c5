import NIOCore

/// CONNECT: the first packet a client sends.
///
/// ```
/// +--------+-----------+--------------------------------------------+
/// | 0x10   | remaining | "MQTT" level flags keepalive [properties]  |
/// |        | length    | clientId [will props, topic, payload]      |
/// |        |           | [username] [password]                      |
/// +--------+-----------+--------------------------------------------+
/// ```
public struct MQTTConnectPacket: Sendable, Hashable {
    /// A will: published by the broker when the connection ends without DISCONNECT.
    public struct Will: Sendable, Hashable {
        public var topic: String
        public var payload: ByteBuffer
        public var qos: MQTTQoS
        public var retain: Bool
        public var properties: MQTTProperties

        public init(topic: String, payload: ByteBuffer, qos: MQTTQoS = .atMostOnce, retain: Bool = false, properties: MQTTProperties = .none) {
            self.topic = topic
            self.payload = payload
            self.qos = qos
            self.retain = retain
            self.properties = properties
        }
    }

    public var version: MQTTProtocolVersion
    public var clientIdentifier: String
    /// Clean Session (3.1.1) or Clean Start (5.0).
    public var cleanStart: Bool
    public var keepAlive: UInt16
    public var username: String?
    public var password: ByteBuffer?
    public var will: Will?
    public var properties: MQTTProperties

    public init(
        version: MQTTProtocolVersion = .v5, clientIdentifier: String, cleanStart: Bool = true, keepAlive: UInt16 = 60,
        username: String? = nil, password: ByteBuffer? = nil, will: Will? = nil, properties: MQTTProperties = .none
    ) {
        self.version = version
        self.clientIdentifier = clientIdentifier
        self.cleanStart = cleanStart
        self.keepAlive = keepAlive
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer) {
        buffer.writeMQTTString(self.version.protocolName)
        buffer.writeInteger(self.version.rawValue)
        var flags: UInt8 = 0
        if self.username != nil { flags |= 0x80 }
        if self.password != nil { flags |= 0x40 }
        if let will = self.will {
            flags |= 0x04 | (will.qos.rawValue << 3)
            if will.retain { flags |= 0x20 }
        }
        if self.cleanStart { flags |= 0x02 }
        buffer.writeInteger(flags)
        buffer.writeInteger(self.keepAlive, endianness: .big)
        if self.version.hasProperties { self.properties.write(to: &buffer) }
        buffer.writeMQTTString(self.clientIdentifier)
        if let will = self.will {
            if self.version.hasProperties { will.properties.write(to: &buffer) }
            buffer.writeMQTTString(will.topic)
            buffer.writeMQTTBinary(will.payload)
        }
        if let username = self.username { buffer.writeMQTTString(username) }
        if let password = self.password { buffer.writeMQTTBinary(password) }
    }

    static func read(from buffer: inout ByteBuffer) throws -> MQTTConnectPacket {
        let name = try buffer.readMQTTString()
        let level = try buffer.readMQTTByte()
        guard let version = MQTTProtocolVersion(rawValue: level), name == version.protocolName else {
            guard name == "MQTT" || name == "MQIsdp" else {
                throw MQTTProtocolError.protocolError("protocol name '\(name)' is not MQTT")
            }
            throw MQTTProtocolError(.unsupportedProtocolVersion, "protocol level \(level) is not supported")
        }
        let flags = try buffer.readMQTTByte()
        guard flags & 0x01 == 0 else { throw MQTTProtocolError.malformed("CONNECT reserved flag is set") }
        let keepAlive = try buffer.readMQTTUInt16()
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.connect, packet: "CONNECT") : .none
        if properties.authenticationData != nil && properties.authenticationMethod == nil {
            throw MQTTProtocolError.protocolError("authentication data without an authentication method")
        }
        let clientIdentifier = try buffer.readMQTTString()
        var will: Will?
        let willQoSBits = (flags >> 3) & 0x03
        if flags & 0x04 != 0 {
            guard let qos = MQTTQoS(rawValue: willQoSBits) else { throw MQTTProtocolError.malformed("will QoS 3") }
            let willProperties =
                version.hasProperties
                ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.will, packet: "will") : .none
            let topic = try buffer.readMQTTString()
            try MQTTTopic.validateName(topic)
            will = Will(
                topic: topic, payload: try buffer.readMQTTBinary(), qos: qos, retain: flags & 0x20 != 0,
                properties: willProperties
            )
        } else if willQoSBits != 0 || flags & 0x20 != 0 {
            throw MQTTProtocolError.malformed("will QoS or retain set without a will")
        }
        var username: String?
        if flags & 0x80 != 0 { username = try buffer.readMQTTString() }
        var password: ByteBuffer?
        if flags & 0x40 != 0 {
            if !version.hasProperties && username == nil {
                throw MQTTProtocolError.malformed("password without a user name")
            }
            password = try buffer.readMQTTBinary()
        }
        return MQTTConnectPacket(
            version: version, clientIdentifier: clientIdentifier, cleanStart: flags & 0x02 != 0, keepAlive: keepAlive,
            username: username, password: password, will: will, properties: properties
        )
    }
}

/// CONNACK: the broker's answer to CONNECT.
public struct MQTTConnAckPacket: Sendable, Hashable {
    public var sessionPresent: Bool
    /// On 3.1.1 written as the closest return code (``MQTTReasonCode/connectReturnCodeV3``).
    public var reasonCode: MQTTReasonCode
    public var properties: MQTTProperties

    public init(sessionPresent: Bool = false, reasonCode: MQTTReasonCode = .success, properties: MQTTProperties = .none) {
        self.sessionPresent = sessionPresent
        self.reasonCode = reasonCode
        self.properties = properties
    }

    func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeInteger(UInt8(self.sessionPresent ? 1 : 0))
        if version.hasProperties {
            buffer.writeInteger(self.reasonCode.rawValue)
            self.properties.write(to: &buffer)
        } else {
            buffer.writeInteger(self.reasonCode.connectReturnCodeV3)
        }
    }

    static func read(from buffer: inout ByteBuffer, version: MQTTProtocolVersion) throws -> MQTTConnAckPacket {
        let flags = try buffer.readMQTTByte()
        guard flags & 0xFE == 0 else { throw MQTTProtocolError.malformed("CONNACK reserved flags set") }
        let code = try buffer.readMQTTByte()
        let properties =
            version.hasProperties
            ? try MQTTProperties.read(from: &buffer, allowed: AllowedProperties.connack, packet: "CONNACK") : .none
        let reason: MQTTReasonCode
        if version.hasProperties {
            reason = MQTTReasonCode(rawValue: code)
        } else {
            let v3: [UInt8: MQTTReasonCode] = [
                0: .success, 1: .unsupportedProtocolVersion, 2: .clientIdentifierNotValid, 3: .serverUnavailable,
                4: .badUserNameOrPassword, 5: .notAuthorized,
            ]
            guard let mapped = v3[code] else { throw MQTTProtocolError.malformed("CONNACK return code \(code)") }
            reason = mapped
        }
        return MQTTConnAckPacket(sessionPresent: flags & 1 == 1, reasonCode: reason, properties: properties)
    }
}
