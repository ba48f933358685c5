import NIOCore

// The MQTT data representations (MQTT 5, section 1.5), on NIO's ByteBuffer. Every `readMQTT…`
// throws MQTTProtocolError(.malformedPacket) on short or invalid input: callers hand them a
// slice that holds exactly one packet, so running out of bytes means the packet lied.

extension ByteBuffer {
    /// The largest value of a Variable Byte Integer (four bytes).
    static let maxVariableByteInteger = 268_435_455

    /// Writes a Variable Byte Integer: 7 bits a byte, least significant first, high bit = more.
    @discardableResult
    mutating func writeMQTTVariableByteInteger(_ value: Int) -> Int {
        precondition(value >= 0 && value <= Self.maxVariableByteInteger, "variable byte integer out of range")
        var value = value
        var written = 0
        repeat {
            var byte = UInt8(value & 0x7F)
            value >>= 7
            if value > 0 { byte |= 0x80 }
            written += self.writeInteger(byte)
        } while value > 0
        return written
    }

    /// Reads a Variable Byte Integer at `index` without moving the reader.
    ///
    /// - Returns: the value and its length in bytes, or nil when the buffer ends before it does.
    func getMQTTVariableByteInteger(at index: Int) throws -> (value: Int, length: Int)? {
        var value = 0
        var multiplier = 1
        for offset in 0..<4 {
            guard let byte = self.getInteger(at: index + offset, as: UInt8.self) else { return nil }
            value += Int(byte & 0x7F) * multiplier
            if byte & 0x80 == 0 {
                // A multi-byte encoding must be the shortest one [MQTT-1.5.5-1].
                if offset > 0 && byte == 0 { throw MQTTProtocolError.malformed("variable byte integer is not minimally encoded") }
                return (value, offset + 1)
            }
            multiplier *= 128
        }
        throw MQTTProtocolError.malformed("variable byte integer longer than four bytes")
    }

    mutating func readMQTTVariableByteInteger() throws -> Int {
        guard let (value, length) = try self.getMQTTVariableByteInteger(at: self.readerIndex) else {
            throw MQTTProtocolError.malformed("packet ends inside a variable byte integer")
        }
        self.moveReaderIndex(forwardBy: length)
        return value
    }

    static func mqttVariableByteIntegerLength(_ value: Int) -> Int {
        switch value {
        case ..<128: 1
        case ..<16_384: 2
        case ..<2_097_152: 3
        default: 4
        }
    }

    mutating func readMQTTByte() throws -> UInt8 {
        guard let value = self.readInteger(as: UInt8.self) else { throw MQTTProtocolError.malformed("packet too short") }
        return value
    }

    mutating func readMQTTUInt16() throws -> UInt16 {
        guard let value = self.readInteger(endianness: .big, as: UInt16.self) else {
            throw MQTTProtocolError.malformed("packet too short")
        }
        return value
    }

    mutating func readMQTTUInt32() throws -> UInt32 {
        guard let value = self.readInteger(endianness: .big, as: UInt32.self) else {
            throw MQTTProtocolError.malformed("packet too short")
        }
        return value
    }

    /// Writes Binary Data: a two-byte length, then the bytes.
    mutating func writeMQTTBinary(_ bytes: ByteBuffer) {
        precondition(bytes.readableBytes <= Int(UInt16.max), "binary data longer than 65535 bytes")
        self.writeInteger(UInt16(bytes.readableBytes), endianness: .big)
        var bytes = bytes
        self.writeBuffer(&bytes)
    }

    mutating func readMQTTBinary() throws -> ByteBuffer {
        let length = Int(try self.readMQTTUInt16())
        guard let slice = self.readSlice(length: length) else { throw MQTTProtocolError.malformed("binary data runs past the packet") }
        return slice
    }

    /// Writes a UTF-8 Encoded String: a two-byte length, then the bytes.
    mutating func writeMQTTString(_ string: String) {
        let length = string.utf8.count
        precondition(length <= Int(UInt16.max), "string longer than 65535 bytes")
        self.writeInteger(UInt16(length), endianness: .big)
        self.writeString(string)
    }

    /// Reads a UTF-8 Encoded String, refusing ill-formed UTF-8 and U+0000 [MQTT-1.5.4-1, -2].
    mutating func readMQTTString() throws -> String {
        let length = Int(try self.readMQTTUInt16())
        guard let view = self.readSlice(length: length)?.readableBytesView else {
            throw MQTTProtocolError.malformed("string runs past the packet")
        }
        guard let string = String(validating: view, as: UTF8.self) else {
            throw MQTTProtocolError.malformed("string is not well-formed UTF-8")
        }
        if view.contains(0) { throw MQTTProtocolError.malformed("string contains U+0000") }
        return string
    }
}

/// MQTT's Variable Byte Integer as a length prefix for NIO's `writeLengthPrefixed`: the body is
/// written in place after room for the length, and moved only when the length takes more (or
/// fewer) bytes than the hint. The length is always written in its shortest form [MQTT-1.5.5-1].
public struct MQTTVariableByteIntegerStrategy: NIOBinaryIntegerEncodingStrategy {
    public let requiredBytesHint: Int

    /// `expectedLength`: about how long the body will be; it sets how many bytes are kept for
    /// the length.
    public init(expectedLength: Int = 0) {
        self.requiredBytesHint = ByteBuffer.mqttVariableByteIntegerLength(expectedLength)
    }

    public func readInteger<IntegerType: FixedWidthInteger>(as: IntegerType.Type, from buffer: inout ByteBuffer) -> IntegerType? {
        guard let (value, length) = try? buffer.getMQTTVariableByteInteger(at: buffer.readerIndex) else { return nil }
        buffer.moveReaderIndex(forwardBy: length)
        return IntegerType(exactly: value)
    }

    public func writeInteger<IntegerType: FixedWidthInteger>(_ integer: IntegerType, to buffer: inout ByteBuffer) -> Int {
        buffer.writeMQTTVariableByteInteger(Int(integer))
    }

    public func writeInteger(_ integer: Int, reservedCapacity: Int, to buffer: inout ByteBuffer) -> Int {
        buffer.writeMQTTVariableByteInteger(integer)
    }
}
