import MQTT
import NIOCore
import NIOTestUtils
import Testing

/// One packet of each type, with the fields each version can carry.
enum Samples {
    static func buffer(_ text: String) -> ByteBuffer { ByteBuffer(string: text) }

    static let v5Properties: MQTTProperties = [.userProperty("k", "v"), .userProperty("k", "w"), .reasonString("because")]

    static func packets(_ version: MQTTProtocolVersion) -> [MQTTPacket] {
        let v5 = version.hasProperties
        let ackReason: MQTTReasonCode = v5 ? .noMatchingSubscribers : .success
        let ackProperties: MQTTProperties = v5 ? v5Properties : .none
        return [
            .connack(MQTTConnAckPacket(sessionPresent: true, reasonCode: .success, properties: v5 ? [
                .sessionExpiryInterval(3600), .receiveMaximum(20), .maximumQoS(1), .retainAvailable(1),
                .maximumPacketSize(65536), .assignedClientIdentifier("auto-1"), .topicAliasMaximum(10),
                .wildcardSubscriptionAvailable(1), .subscriptionIdentifierAvailable(1), .sharedSubscriptionAvailable(1),
                .serverKeepAlive(30), .responseInformation("resp/"), .serverReference("other"),
                .authenticationMethod("SCRAM"), .authenticationData(buffer("abc")), .userProperty("a", "b"),
                .reasonString("ok"),
            ] : .none)),
            .connack(MQTTConnAckPacket(sessionPresent: false, reasonCode: .notAuthorized)),
            .connack(MQTTConnAckPacket(sessionPresent: false, reasonCode: .badUserNameOrPassword)),
            .publish(MQTTPublishPacket(topic: "devices/d1/up", payload: buffer("hello"))),
            .publish(MQTTPublishPacket(topic: "a/b", payload: ByteBuffer(), qos: .atLeastOnce, retain: true, packetIdentifier: 1)),
            .publish(MQTTPublishPacket(
                topic: "a/b", payload: buffer(String(repeating: "x", count: 300)), qos: .exactlyOnce, duplicate: true,
                packetIdentifier: 65535,
                properties: v5 ? [
                    .payloadFormatIndicator(1), .messageExpiryInterval(60), .topicAlias(3), .responseTopic("reply/to"),
                    .correlationData(buffer("corr")), .userProperty("x", "y"), .subscriptionIdentifier(268_435_455),
                    .subscriptionIdentifier(7), .contentType("text/plain"),
                ] : .none
            )),
            .puback(MQTTAckPacket(packetIdentifier: 7)),
            .puback(MQTTAckPacket(packetIdentifier: 8, reasonCode: ackReason, properties: ackProperties)),
            .pubrec(MQTTAckPacket(packetIdentifier: 9, reasonCode: ackReason)),
            .pubrel(MQTTAckPacket(packetIdentifier: 10)),
            .pubrel(MQTTAckPacket(packetIdentifier: 11, reasonCode: v5 ? .packetIdentifierNotFound : .success)),
            .pubcomp(MQTTAckPacket(packetIdentifier: 12, reasonCode: .success, properties: ackProperties)),
            .subscribe(MQTTSubscribePacket(
                packetIdentifier: 13,
                subscriptions: [
                    .init(topicFilter: "a/+", qos: .exactlyOnce),
                    .init(topicFilter: "$share/g/b/#", qos: .atLeastOnce, noLocal: v5, retainAsPublished: v5,
                          retainHandling: v5 ? .doNotSend : .sendOnSubscribe),
                ],
                properties: v5 ? [.subscriptionIdentifier(42), .userProperty("s", "t")] : .none
            )),
            .suback(MQTTSubAckPacket(packetIdentifier: 13, reasonCodes: [.grantedQoS2, .grantedQoS1, .unspecifiedError], properties: ackProperties)),
            .unsubscribe(MQTTUnsubscribePacket(packetIdentifier: 14, topicFilters: ["a/+", "b/#"], properties: v5 ? [.userProperty("u", "v")] : .none)),
            .unsuback(MQTTSubAckPacket(packetIdentifier: 14, reasonCodes: v5 ? [.success, .noSubscriptionExisted] : [], properties: ackProperties)),
            .pingreq,
            .pingresp,
            .disconnect(MQTTReasonPacket()),
        ] + (v5 ? [
            .disconnect(MQTTReasonPacket(reasonCode: .disconnectWithWillMessage)),
            .disconnect(MQTTReasonPacket(reasonCode: .serverShuttingDown, properties: [.sessionExpiryInterval(0), .reasonString("bye"), .serverReference("x")])),
            .auth(MQTTReasonPacket()),
            .auth(MQTTReasonPacket(reasonCode: .continueAuthentication, properties: [.authenticationMethod("SCRAM"), .authenticationData(buffer("d"))])),
        ] : [])
    }

    static func connects(_ version: MQTTProtocolVersion) -> [MQTTConnectPacket] {
        let v5 = version.hasProperties
        return [
            MQTTConnectPacket(version: version, clientIdentifier: "c1"),
            MQTTConnectPacket(version: version, clientIdentifier: "", cleanStart: true, keepAlive: 0),
            MQTTConnectPacket(
                version: version, clientIdentifier: "device-7", cleanStart: false, keepAlive: 65535, username: "device-7",
                password: buffer("s3cret"),
                will: .init(topic: "devices/device-7/status", payload: buffer("gone"), qos: .atLeastOnce, retain: true,
                            properties: v5 ? [.willDelayInterval(5), .messageExpiryInterval(10), .contentType("text"),
                                              .responseTopic("r"), .correlationData(buffer("c")), .payloadFormatIndicator(1), .userProperty("w", "p")] : .none),
                properties: v5 ? [.sessionExpiryInterval(120), .receiveMaximum(10), .maximumPacketSize(1024), .topicAliasMaximum(5),
                                  .requestResponseInformation(1), .requestProblemInformation(0), .userProperty("a", "b"),
                                  .authenticationMethod("m"), .authenticationData(buffer("d"))] : .none
            ),
        ] + (v5 ? [MQTTConnectPacket(version: version, clientIdentifier: "p", password: buffer("no-user"))] : [])
    }
}

@Suite("MQTT codec")
struct CodecTests {
    static let versions: [MQTTProtocolVersion] = [.v3_1_1, .v5]

    static func encode(_ packet: MQTTPacket, _ version: MQTTProtocolVersion) -> ByteBuffer {
        var buffer = ByteBuffer()
        packet.write(to: &buffer, version: version)
        return buffer
    }

    @Test("every packet type round-trips", arguments: versions)
    func roundTrip(version: MQTTProtocolVersion) throws {
        for packet in Samples.packets(version) {
            var buffer = Self.encode(packet, version)
            var decoder = MQTTPacketDecoder(version: version)
            let decoded = try decoder.decode(buffer: &buffer)
            #expect(decoded == packet, "\(packet.name)")
            #expect(buffer.readableBytes == 0)
        }
    }

    @Test("lengths written in place: bodies and property lists on each side of a length-byte boundary round-trip, each length in its shortest form")
    func lengthBoundaries() throws {
        for size in [0, 1, 100, 118, 119, 127, 128, 16_370, 16_383, 16_384, 2_097_151, 2_097_152] {
            for userValue in ["", String(repeating: "u", count: 200)] {
                let properties: MQTTProperties = userValue.isEmpty ? .none : [.userProperty("k", userValue), .contentType("text/plain")]
                let packet = MQTTPacket.publish(
                    MQTTPublishPacket(
                        topic: "t/\(size)", payload: ByteBuffer(repeating: 0x5A, count: size), qos: .atLeastOnce, packetIdentifier: 7,
                        properties: properties
                    )
                )
                var buffer = Self.encode(packet, .v5)
                // The decoder refuses a length that is not in its shortest form.
                var decoder = MQTTPacketDecoder(version: .v5)
                #expect(try decoder.decode(buffer: &buffer) == packet, "\(size) bytes")
                #expect(buffer.readableBytes == 0)
            }
        }
    }

    @Test("CONNECT round-trips and sets the decoder's version", arguments: [MQTTProtocolVersion.v3_1, .v3_1_1, .v5])
    func connectRoundTrip(version: MQTTProtocolVersion) throws {
        for connect in Samples.connects(version) {
            var buffer = Self.encode(.connect(connect), version)
            var decoder = MQTTPacketDecoder()
            #expect(try decoder.decode(buffer: &buffer) == .connect(connect))
            #expect(decoder.version == version)
        }
    }

    @Test("every packet survives every split of its input", arguments: versions)
    func everySplit(version: MQTTProtocolVersion) throws {
        var pairs = Samples.packets(version).map { (Self.encode($0, version), [$0]) }
        // Several packets in one read, too.
        var joined = ByteBuffer()
        for pair in pairs { joined.writeImmutableBuffer(pair.0) }
        pairs.append((joined, pairs.flatMap(\.1)))
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            MQTTPacketDecoder(version: version)
        }
        // A decoder takes one CONNECT in its life, which the verifier's reuse of one decoder
        // would break; so every split of each CONNECT goes to a fresh decoder here.
        for connect in Samples.connects(version) {
            let bytes = Self.encode(.connect(connect), version)
            for split in 0...bytes.readableBytes {
                var decoder = MQTTPacketDecoder()
                var buffer = bytes.getSlice(at: 0, length: split)!
                let early = try decoder.decode(buffer: &buffer)
                var rest = bytes.getSlice(at: split, length: bytes.readableBytes - split)!
                buffer.writeBuffer(&rest)
                let packet = try early ?? decoder.decode(buffer: &buffer)
                #expect(packet == .connect(connect), "split at \(split)")
                #expect(early == nil || split == bytes.readableBytes)
            }
        }
    }

    @Test("known wire bytes: a 3.1.1 CONNECT and CONNACK as mosquitto writes them")
    func knownBytes() throws {
        // mosquitto_pub -i c1 -k 60 -V mqttv311 sends this CONNECT.
        let connect: [UInt8] = [0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31]
        var buffer = ByteBuffer(bytes: connect)
        var decoder = MQTTPacketDecoder()
        #expect(try decoder.decode(buffer: &buffer) == .connect(MQTTConnectPacket(version: .v3_1_1, clientIdentifier: "c1")))
        #expect(Array(Self.encode(.connack(MQTTConnAckPacket()), .v3_1_1).readableBytesView) == [0x20, 0x02, 0x00, 0x00])
        #expect(Array(Self.encode(.connack(MQTTConnAckPacket(reasonCode: .notAuthorized)), .v3_1_1).readableBytesView) == [0x20, 0x02, 0x00, 0x05])
        #expect(Array(Self.encode(.connack(MQTTConnAckPacket(reasonCode: .notAuthorized)), .v5).readableBytesView) == [0x20, 0x03, 0x00, 0x87, 0x00])
        #expect(Array(Self.encode(.puback(MQTTAckPacket(packetIdentifier: 1)), .v5).readableBytesView) == [0x40, 0x02, 0x00, 0x01])
        #expect(Array(Self.encode(.pingreq, .v5).readableBytesView) == [0xC0, 0x00])
    }

    @Test("remaining lengths at the variable byte integer boundaries", arguments: [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
    func lengthBoundaries(payloadTarget: Int) throws {
        // A QoS 0 PUBLISH to "t" has 3 bytes before the payload.
        let payload = ByteBuffer(repeating: 0x61, count: max(0, payloadTarget - 3))
        let packet = MQTTPacket.publish(MQTTPublishPacket(topic: "t", payload: payload))
        var buffer = Self.encode(packet, .v3_1_1)
        var decoder = MQTTPacketDecoder(version: .v3_1_1)
        #expect(try decoder.decode(buffer: &buffer) == packet)
    }

    /// Packets that break the specification, and the reason code each must be refused with.
    static let malformed: [(name: String, bytes: [UInt8], version: MQTTProtocolVersion?, reason: MQTTReasonCode)] = [
        ("first packet not CONNECT", [0xC0, 0x00], nil, .protocolError),
        ("second CONNECT", [0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31], .v3_1_1, .protocolError),
        ("protocol level 6", [0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x06, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31], nil, .unsupportedProtocolVersion),
        ("protocol name HTTP", [0x10, 0x0E, 0x00, 0x04, 0x48, 0x54, 0x54, 0x50, 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31], nil, .protocolError),
        ("CONNECT reserved flag", [0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x03, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31], nil, .malformedPacket),
        ("will QoS without will", [0x10, 0x0E, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x0A, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31], nil, .malformedPacket),
        ("3.1.1 password without user name", [0x10, 0x12, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x42, 0x00, 0x3C, 0x00, 0x02, 0x63, 0x31, 0x00, 0x02, 0x70, 0x77], nil, .malformedPacket),
        ("PUBLISH QoS 3", [0x36, 0x05, 0x00, 0x01, 0x74, 0x00, 0x01], .v3_1_1, .malformedPacket),
        ("PUBLISH QoS 0 with DUP", [0x38, 0x03, 0x00, 0x01, 0x74], .v3_1_1, .malformedPacket),
        ("PUBLISH packet id 0", [0x32, 0x05, 0x00, 0x01, 0x74, 0x00, 0x00], .v3_1_1, .malformedPacket),
        ("PUBLISH wildcard topic", [0x30, 0x03, 0x00, 0x01, 0x23], .v3_1_1, .topicNameInvalid),
        ("PUBLISH empty topic without alias", [0x30, 0x03, 0x00, 0x00, 0x00], .v5, .protocolError),
        ("PUBLISH invalid UTF-8", [0x30, 0x04, 0x00, 0x02, 0xC3, 0x28], .v3_1_1, .malformedPacket),
        ("PUBLISH NUL in topic", [0x30, 0x04, 0x00, 0x02, 0x61, 0x00], .v3_1_1, .malformedPacket),
        ("topic length past the end", [0x30, 0x03, 0x00, 0x09, 0x61], .v3_1_1, .malformedPacket),
        ("PUBLISH with a session expiry property", [0x30, 0x09, 0x00, 0x01, 0x74, 0x05, 0x11, 0x00, 0x00, 0x00, 0x01], .v5, .protocolError),
        ("PUBLISH repeated content type", [0x30, 0x0B, 0x00, 0x01, 0x74, 0x07, 0x03, 0x00, 0x01, 0x61, 0x03, 0x00, 0x00], .v5, .protocolError),
        ("unknown property", [0x30, 0x06, 0x00, 0x01, 0x74, 0x02, 0x7F, 0x00], .v5, .malformedPacket),
        ("topic alias 0", [0x30, 0x07, 0x00, 0x01, 0x74, 0x03, 0x23, 0x00, 0x00], .v5, .protocolError),
        ("PUBREL wrong flags", [0x60, 0x02, 0x00, 0x01], .v3_1_1, .malformedPacket),
        ("SUBSCRIBE wrong flags", [0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x00], .v3_1_1, .malformedPacket),
        ("SUBSCRIBE without filters", [0x82, 0x02, 0x00, 0x01], .v3_1_1, .protocolError),
        ("SUBSCRIBE reserved option bits (3.1.1)", [0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 0x61, 0x04], .v3_1_1, .malformedPacket),
        ("SUBSCRIBE retain handling 3", [0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 0x61, 0x30], .v5, .protocolError),
        ("SUBSCRIBE two subscription identifiers", [0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 0x61, 0x00], .v5, .protocolError),
        ("UNSUBSCRIBE without filters", [0xA2, 0x02, 0x00, 0x01], .v3_1_1, .protocolError),
        ("PINGREQ with flags", [0xC1, 0x00], .v3_1_1, .malformedPacket),
        ("PINGREQ with a body", [0xC0, 0x01, 0x00], .v3_1_1, .malformedPacket),
        ("3.1.1 DISCONNECT with a body", [0xE0, 0x01, 0x00], .v3_1_1, .malformedPacket),
        ("AUTH on 3.1.1", [0xF0, 0x00], .v3_1_1, .malformedPacket),
        ("reserved type 0", [0x00, 0x00], .v3_1_1, .malformedPacket),
        ("five-byte remaining length", [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], .v3_1_1, .malformedPacket),
        ("non-minimal remaining length", [0xC0, 0x80, 0x00], .v3_1_1, .malformedPacket),
        ("receive maximum 0", [0x10, 0x10, 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x05, 0x02, 0x00, 0x3C, 0x03, 0x21, 0x00, 0x00, 0x00, 0x00], nil, .protocolError),
    ]

    @Test("malformed and protocol-violating input is refused with the right reason code")
    func malformedInput() throws {
        for sample in Self.malformed {
            var buffer = ByteBuffer(bytes: sample.bytes)
            var decoder = MQTTPacketDecoder(version: sample.version)
            #expect(throws: MQTTProtocolError.self, "\(sample.name)") { _ = try decoder.decode(buffer: &buffer) }
            do {
                var buffer = ByteBuffer(bytes: sample.bytes)
                var decoder = MQTTPacketDecoder(version: sample.version)
                _ = try decoder.decode(buffer: &buffer)
            } catch let error as MQTTProtocolError {
                #expect(error.reasonCode == sample.reason, "\(sample.name): \(error)")
            }
        }
    }

    @Test("a packet over the maximum size is refused from its header alone")
    func tooLarge() throws {
        var decoder = MQTTPacketDecoder(version: .v5, maximumPacketSize: 1024)
        // Only the fixed header of a 1 MB PUBLISH has arrived.
        var buffer = ByteBuffer(bytes: [0x30, 0x80, 0x80, 0x40])
        #expect(throws: MQTTProtocolError(.packetTooLarge, "packet of 1048580 bytes is over the maximum of 1024")) {
            _ = try decoder.decode(buffer: &buffer)
        }
    }

    @Test("incomplete input waits for more and leaves the reader index alone")
    func incomplete() throws {
        var buffer = Self.encode(.publish(MQTTPublishPacket(topic: "a/b", payload: ByteBuffer(string: "xyz"))), .v5)
        let full = buffer
        var decoder = MQTTPacketDecoder(version: .v5)
        for length in 0..<full.readableBytes {
            var partial = full.getSlice(at: full.readerIndex, length: length)!
            #expect(try decoder.decode(buffer: &partial) == nil)
            #expect(partial.readerIndex == 0)
        }
        #expect(try decoder.decode(buffer: &buffer) != nil)
    }
}
