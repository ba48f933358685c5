import NIOCore

/// The properties of an MQTT 5 packet, in the order they were read or set. Empty on 3.1.1.
public struct MQTTProperties: Sendable, Hashable, ExpressibleByArrayLiteral, Sequence {
    public var items: [MQTTProperty]

    public init(_ items: [MQTTProperty] = []) { self.items = items }
    public init(arrayLiteral elements: MQTTProperty...) { self.items = elements }

    public static let none = MQTTProperties()

    public var isEmpty: Bool { self.items.isEmpty }
    public func makeIterator() -> IndexingIterator<[MQTTProperty]> { self.items.makeIterator() }

    /// Sets a property, replacing one of the same identifier unless it may repeat.
    public mutating func set(_ property: MQTTProperty) {
        if !property.mayRepeat { self.items.removeAll { $0.identifier == property.identifier } }
        self.items.append(property)
    }

    /// Removes every property of these names.
    public mutating func remove(_ names: MQTTProperty.Name...) {
        self.items.removeAll { names.contains($0.name) }
    }

    private func first<T>(_ extract: (MQTTProperty) -> T?) -> T? {
        for item in self.items { if let value = extract(item) { return value } }
        return nil
    }

    public var payloadFormatIndicator: UInt8? { self.first { if case .payloadFormatIndicator(let v) = $0 { v } else { nil } } }
    public var messageExpiryInterval: UInt32? { self.first { if case .messageExpiryInterval(let v) = $0 { v } else { nil } } }
    public var contentType: String? { self.first { if case .contentType(let v) = $0 { v } else { nil } } }
    public var responseTopic: String? { self.first { if case .responseTopic(let v) = $0 { v } else { nil } } }
    public var correlationData: ByteBuffer? { self.first { if case .correlationData(let v) = $0 { v } else { nil } } }
    public var subscriptionIdentifiers: [Int] { self.items.compactMap { if case .subscriptionIdentifier(let v) = $0 { v } else { nil } } }
    public var sessionExpiryInterval: UInt32? { self.first { if case .sessionExpiryInterval(let v) = $0 { v } else { nil } } }
    public var assignedClientIdentifier: String? { self.first { if case .assignedClientIdentifier(let v) = $0 { v } else { nil } } }
    public var serverKeepAlive: UInt16? { self.first { if case .serverKeepAlive(let v) = $0 { v } else { nil } } }
    public var authenticationMethod: String? { self.first { if case .authenticationMethod(let v) = $0 { v } else { nil } } }
    public var authenticationData: ByteBuffer? { self.first { if case .authenticationData(let v) = $0 { v } else { nil } } }
    public var requestProblemInformation: UInt8? { self.first { if case .requestProblemInformation(let v) = $0 { v } else { nil } } }
    public var willDelayInterval: UInt32? { self.first { if case .willDelayInterval(let v) = $0 { v } else { nil } } }
    public var requestResponseInformation: UInt8? { self.first { if case .requestResponseInformation(let v) = $0 { v } else { nil } } }
    public var reasonString: String? { self.first { if case .reasonString(let v) = $0 { v } else { nil } } }
    public var receiveMaximum: UInt16? { self.first { if case .receiveMaximum(let v) = $0 { v } else { nil } } }
    public var topicAliasMaximum: UInt16? { self.first { if case .topicAliasMaximum(let v) = $0 { v } else { nil } } }
    public var topicAlias: UInt16? { self.first { if case .topicAlias(let v) = $0 { v } else { nil } } }
    public var maximumQoS: UInt8? { self.first { if case .maximumQoS(let v) = $0 { v } else { nil } } }
    public var maximumPacketSize: UInt32? { self.first { if case .maximumPacketSize(let v) = $0 { v } else { nil } } }
    public var userProperties: [(String, String)] {
        self.items.compactMap { if case .userProperty(let k, let v) = $0 { (k, v) } else { nil } }
    }

    /// Writes the Property Length and then every property.
    func write(to buffer: inout ByteBuffer) {
        buffer.writeLengthPrefixed(strategy: MQTTVariableByteIntegerStrategy()) { body in
            let start = body.writerIndex
            for item in self.items { item.write(to: &body) }
            return body.writerIndex - start
        }
    }

    /// Reads a Property Length and the properties it covers, checking that each is allowed in
    /// `packet` and that none but user properties and subscription identifiers repeats.
    static func read(from buffer: inout ByteBuffer, allowed: Set<UInt8>, packet: String) throws -> MQTTProperties {
        let length = try buffer.readMQTTVariableByteInteger()
        guard var slice = buffer.readSlice(length: length) else {
            throw MQTTProtocolError.malformed("\(packet) properties run past the packet")
        }
        var properties = MQTTProperties()
        var seen: Set<UInt8> = []
        while slice.readableBytes > 0 {
            let property = try MQTTProperty.read(from: &slice)
            guard allowed.contains(property.identifier) else {
                throw MQTTProtocolError.protocolError(
                    "property 0x\(String(property.identifier, radix: 16)) is not allowed in \(packet)"
                )
            }
            if !property.mayRepeat {
                guard seen.insert(property.identifier).inserted else {
                    throw MQTTProtocolError.protocolError("property 0x\(String(property.identifier, radix: 16)) repeated in \(packet)")
                }
            }
            properties.items.append(property)
        }
        return properties
    }
}

/// Which properties each packet may carry (MQTT 5, table 2-4 and each packet's section).
enum AllowedProperties {
    static let connect: Set<UInt8> = [0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16]
    static let will: Set<UInt8> = [0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26]
    static let connack: Set<UInt8> = [
        0x11, 0x21, 0x24, 0x25, 0x27, 0x12, 0x22, 0x1F, 0x26, 0x28, 0x29, 0x2A, 0x13, 0x1A, 0x1C, 0x15, 0x16,
    ]
    static let publish: Set<UInt8> = [0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0B, 0x03]
    static let ack: Set<UInt8> = [0x1F, 0x26]
    static let subscribe: Set<UInt8> = [0x0B, 0x26]
    static let unsubscribe: Set<UInt8> = [0x26]
    static let disconnect: Set<UInt8> = [0x11, 0x1F, 0x26, 0x1C]
    static let auth: Set<UInt8> = [0x15, 0x16, 0x1F, 0x26]
}

extension MQTTProperties {
    /// A PUBLISH's properties as they go on the wire, for keeping a message outside a packet.
    public var publishEncoded: [UInt8] {
        var buffer = ByteBuffer()
        self.write(to: &buffer)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Reads properties written by ``publishEncoded``; throws when they are not a PUBLISH's.
    public init(publishEncoded bytes: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: bytes)
        self = try Self.read(from: &buffer, allowed: AllowedProperties.publish, packet: "PUBLISH")
    }
}
