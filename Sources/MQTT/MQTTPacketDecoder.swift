import NIOCore

/// Frames and parses MQTT packets.
///
/// ```
/// +--------+------------------+---------------------------+
/// | type   | remaining length | variable header + payload |
/// | flags  | 1-4 bytes (VBI)  | remaining length bytes    |
/// +--------+------------------+---------------------------+
/// ```
///
/// Incomplete input returns nil and leaves the reader index where it was; malformed input, or a
/// packet over ``maximumPacketSize``, throws ``MQTTProtocolError``.
public struct MQTTPacketDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = MQTTPacket

    /// The connection's protocol version; nil until a CONNECT sets it (server side).
    public var version: MQTTProtocolVersion?
    /// The largest whole packet accepted, in bytes.
    public var maximumPacketSize: Int

    public init(version: MQTTProtocolVersion? = nil, maximumPacketSize: Int = 268_435_460) {
        self.version = version
        self.maximumPacketSize = maximumPacketSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> MQTTPacket? {
        guard let firstByte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let (remaining, lengthBytes) = try buffer.getMQTTVariableByteInteger(at: buffer.readerIndex + 1)
        else { return nil }
        let total = 1 + lengthBytes + remaining
        guard total <= self.maximumPacketSize else {
            throw MQTTProtocolError(.packetTooLarge, "packet of \(total) bytes is over the maximum of \(self.maximumPacketSize)")
        }
        guard buffer.readableBytes >= total else { return nil }
        buffer.moveReaderIndex(forwardBy: 1 + lengthBytes)
        var body = buffer.readSlice(length: remaining)!
        let packet = try MQTTPacket.read(firstByte: firstByte, body: &body, version: self.version)
        if case .connect(let connect) = packet { self.version = connect.version }
        return packet
    }

    /// The whole length of the first packet in `buffer` (fixed header included), once its
    /// fixed header is there; nil before. Throws on a malformed length.
    public static func packetLength(in buffer: ByteBuffer) throws -> Int? {
        guard buffer.readableBytes >= 2, let (remaining, lengthBytes) = try buffer.getMQTTVariableByteInteger(at: buffer.readerIndex + 1)
        else { return nil }
        return 1 + lengthBytes + remaining
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> MQTTPacket? {
        try self.decode(buffer: &buffer)
    }
}

/// Writes MQTT packets in the connection's protocol version.
public struct MQTTPacketEncoder: MessageToByteEncoder {
    public typealias OutboundIn = MQTTPacket

    public var version: MQTTProtocolVersion

    public init(version: MQTTProtocolVersion) {
        self.version = version
    }

    public func encode(data: MQTTPacket, out: inout ByteBuffer) {
        data.write(to: &out, version: self.version)
    }
}
