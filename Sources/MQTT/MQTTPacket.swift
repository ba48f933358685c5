import NIOCore

/// Any MQTT control packet, of 3.1.1 or 5.0.
public enum MQTTPacket: Sendable, Hashable {
    case connect(MQTTConnectPacket)
    case connack(MQTTConnAckPacket)
    case publish(MQTTPublishPacket)
    case puback(MQTTAckPacket)
    case pubrec(MQTTAckPacket)
    case pubrel(MQTTAckPacket)
    case pubcomp(MQTTAckPacket)
    case subscribe(MQTTSubscribePacket)
    case suback(MQTTSubAckPacket)
    case unsubscribe(MQTTUnsubscribePacket)
    case unsuback(MQTTSubAckPacket)
    case pingreq
    case pingresp
    case disconnect(MQTTReasonPacket)
    /// MQTT 5.0 only.
    case auth(MQTTReasonPacket)

    /// The packet type, the high nibble of the first byte.
    public var typeCode: UInt8 {
        switch self {
        case .connect: 1
        case .connack: 2
        case .publish: 3
        case .puback: 4
        case .pubrec: 5
        case .pubrel: 6
        case .pubcomp: 7
        case .subscribe: 8
        case .suback: 9
        case .unsubscribe: 10
        case .unsuback: 11
        case .pingreq: 12
        case .pingresp: 13
        case .disconnect: 14
        case .auth: 15
        }
    }

    /// The packet's name as the specification spells it.
    public var name: String {
        ["", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK",
         "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"][Int(self.typeCode)]
    }

    private var flags: UInt8 {
        switch self {
        case .publish(let publish): publish.flags
        case .pubrel, .subscribe, .unsubscribe: 0x02
        default: 0
        }
    }

    /// Writes the whole packet, fixed header included, as `version` encodes it: the body in
    /// place behind its Remaining Length, with no buffer in between.
    public func write(to buffer: inout ByteBuffer, version: MQTTProtocolVersion) {
        buffer.writeInteger((self.typeCode << 4) | self.flags)
        buffer.writeLengthPrefixed(strategy: MQTTVariableByteIntegerStrategy(expectedLength: self.bodySizeHint)) { body in
            let start = body.writerIndex
            switch self {
            case .connect(let packet): packet.write(to: &body)
            case .connack(let packet): packet.write(to: &body, version: version)
            case .publish(let packet): packet.write(to: &body, version: version)
            case .puback(let packet), .pubrec(let packet), .pubrel(let packet), .pubcomp(let packet):
                packet.write(to: &body, version: version)
            case .subscribe(let packet): packet.write(to: &body, version: version)
            case .suback(let packet): packet.write(to: &body, version: version, isUnsubAck: false)
            case .unsubscribe(let packet): packet.write(to: &body, version: version)
            case .unsuback(let packet): packet.write(to: &body, version: version, isUnsubAck: true)
            case .pingreq, .pingresp: break
            case .disconnect(let packet), .auth(let packet): packet.write(to: &body, version: version)
            }
            return body.writerIndex - start
        }
    }

    /// About how many bytes the body takes: enough to reserve the right room for its length,
    /// and to size a buffer that needs no growing.
    public var bodySizeHint: Int {
        switch self {
        case .publish(let packet): packet.topic.utf8.count + packet.payload.readableBytes + 4 + (packet.properties.isEmpty ? 1 : 16)
        case .pingreq, .pingresp: 0
        case .puback, .pubrec, .pubrel, .pubcomp: 4
        default: 64
        }
    }

    /// The encoded size of the packet, fixed header included.
    public func encodedSize(version: MQTTProtocolVersion) -> Int {
        var buffer = ByteBuffer()
        self.write(to: &buffer, version: version)
        return buffer.readableBytes
    }

    /// Parses one packet from its first byte and its body (exactly the remaining length).
    ///
    /// - Parameter version: the connection's version; nil before CONNECT, when only CONNECT is accepted.
    static func read(firstByte: UInt8, body: inout ByteBuffer, version: MQTTProtocolVersion?) throws -> MQTTPacket {
        let type = firstByte >> 4
        let flags = firstByte & 0x0F
        func requireFlags(_ expected: UInt8, _ name: String) throws {
            guard flags == expected else { throw MQTTProtocolError.malformed("\(name) with fixed header flags \(flags)") }
        }
        guard let version else {
            guard type == 1 else { throw MQTTProtocolError.protocolError("the first packet must be CONNECT") }
            try requireFlags(0, "CONNECT")
            let packet = try MQTTConnectPacket.read(from: &body)
            try Self.requireEnd(body, "CONNECT")
            return .connect(packet)
        }
        let packet: MQTTPacket
        switch type {
        case 1: throw MQTTProtocolError.protocolError("a second CONNECT")
        case 2:
            try requireFlags(0, "CONNACK")
            packet = .connack(try MQTTConnAckPacket.read(from: &body, version: version))
        case 3: packet = .publish(try MQTTPublishPacket.read(from: &body, flags: flags, version: version))
        case 4:
            try requireFlags(0, "PUBACK")
            packet = .puback(try MQTTAckPacket.read(from: &body, version: version, packet: "PUBACK"))
        case 5:
            try requireFlags(0, "PUBREC")
            packet = .pubrec(try MQTTAckPacket.read(from: &body, version: version, packet: "PUBREC"))
        case 6:
            try requireFlags(2, "PUBREL")
            packet = .pubrel(try MQTTAckPacket.read(from: &body, version: version, packet: "PUBREL"))
        case 7:
            try requireFlags(0, "PUBCOMP")
            packet = .pubcomp(try MQTTAckPacket.read(from: &body, version: version, packet: "PUBCOMP"))
        case 8:
            try requireFlags(2, "SUBSCRIBE")
            packet = .subscribe(try MQTTSubscribePacket.read(from: &body, version: version))
        case 9:
            try requireFlags(0, "SUBACK")
            packet = .suback(try MQTTSubAckPacket.read(from: &body, version: version, isUnsubAck: false))
        case 10:
            try requireFlags(2, "UNSUBSCRIBE")
            packet = .unsubscribe(try MQTTUnsubscribePacket.read(from: &body, version: version))
        case 11:
            try requireFlags(0, "UNSUBACK")
            packet = .unsuback(try MQTTSubAckPacket.read(from: &body, version: version, isUnsubAck: true))
        case 12:
            try requireFlags(0, "PINGREQ")
            packet = .pingreq
        case 13:
            try requireFlags(0, "PINGRESP")
            packet = .pingresp
        case 14:
            try requireFlags(0, "DISCONNECT")
            packet = .disconnect(
                try MQTTReasonPacket.read(from: &body, version: version, allowed: AllowedProperties.disconnect, packet: "DISCONNECT")
            )
        case 15:
            guard version.hasProperties else { throw MQTTProtocolError.malformed("AUTH is not a 3.1.1 packet") }
            try requireFlags(0, "AUTH")
            packet = .auth(try MQTTReasonPacket.read(from: &body, version: version, allowed: AllowedProperties.auth, packet: "AUTH"))
        default:
            throw MQTTProtocolError.malformed("packet type 0 is reserved")
        }
        try Self.requireEnd(body, packet.name)
        return packet
    }

    private static func requireEnd(_ body: ByteBuffer, _ name: String) throws {
        guard body.readableBytes == 0 else {
            throw MQTTProtocolError.malformed("\(name) has \(body.readableBytes) bytes past its end")
        }
    }
}
