import ConduitTesting
import MQTT
import NIOCore
import NIOEmbedded
import Testing

@testable import MQTTBroker

/// The connection handler on an `NIOAsyncTestingChannel`: the bytes a client would send, the
/// bytes the handler writes back, and time that moves only when the test moves it.
@Suite("Connection handler")
struct ConnectionHandlerTests {
    /// A broker's pipeline on a testing channel, with a client-side codec for the test.
    struct Connection {
        let channel: NIOAsyncTestingChannel
        let loop: NIOAsyncTestingEventLoop
        let broker: MQTTBroker
        let version: MQTTProtocolVersion

        init(_ version: MQTTProtocolVersion) async throws {
            self.version = version
            self.loop = NIOAsyncTestingEventLoop()
            self.channel = NIOAsyncTestingChannel(loop: self.loop)
            self.broker = MQTTBroker(configuration: .init(port: 0), logger: .quiet, eventLoopGroup: self.loop)
            try await self.loop.executeInContext { [broker, channel] in try broker.configure(channel, tls: false) }
            try await self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).get()
        }

        /// Writes these packets to the handler as one read.
        func send(_ packets: [MQTTPacket]) async throws {
            var buffer = ByteBuffer()
            for packet in packets { packet.write(to: &buffer, version: self.version) }
            try await self.channel.writeInbound(buffer)
        }

        /// The next packet the handler wrote.
        func receive() async throws -> MQTTPacket {
            var buffer = try await self.channel.waitForOutboundWrite(as: ByteBuffer.self)
            var decoder = MQTTPacketDecoder(version: self.version)
            return try #require(try decoder.decode(buffer: &buffer))
        }
    }

    static func connect(_ version: MQTTProtocolVersion, keepAlive: UInt16 = 60) -> MQTTPacket {
        .connect(MQTTConnectPacket(version: version, clientIdentifier: "dev", keepAlive: keepAlive))
    }

    @Test("CONNECT, SUBSCRIBE and a QoS 1 PUBLISH in one read: CONNACK, SUBACK, PUBACK, and the message back to its subscriber", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func oneRead(version: MQTTProtocolVersion) async throws {
        let connection = try await Connection(version)
        let payload = ByteBuffer(string: "21.5")
        try await connection.send([
            Self.connect(version),
            .subscribe(MQTTSubscribePacket(packetIdentifier: 1, subscriptions: [.init(topicFilter: "dev/#", qos: .atLeastOnce)])),
            .publish(MQTTPublishPacket(topic: "dev/temp", payload: payload, qos: .atLeastOnce, packetIdentifier: 9)),
        ])
        guard case .connack(let connack) = try await connection.receive() else { Issue.record("no CONNACK first"); return }
        #expect(connack.reasonCode == .success)
        #expect(try await connection.receive() == .suback(MQTTSubAckPacket(packetIdentifier: 1, reasonCodes: [.grantedQoS1])))
        var rest: [MQTTPacket] = []
        for _ in 0..<2 { rest.append(try await connection.receive()) }
        #expect(rest.contains(.puback(MQTTAckPacket(packetIdentifier: 9))))
        let delivered = rest.compactMap { packet -> MQTTPublishPacket? in
            if case .publish(let publish) = packet { return publish }
            return nil
        }
        #expect(delivered.map(\.payload) == [payload])
        #expect(delivered.first?.qos == .atLeastOnce)
        #expect(connection.broker.isConnected(clientIdentifier: "dev"))
        try await connection.channel.close()
    }

    @Test("a malformed packet ends the connection (DISCONNECT 0x81 on 5.0), and what came after it in the same read is not handled", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func malformed(version: MQTTProtocolVersion) async throws {
        let connection = try await Connection(version)
        try await connection.send([Self.connect(version)])
        guard case .connack = try await connection.receive() else { Issue.record("no CONNACK"); return }
        // A PUBLISH whose remaining length runs past four bytes, then a PINGREQ, in one read.
        var bytes = ByteBuffer(bytes: [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        MQTTPacket.pingreq.write(to: &bytes, version: version)
        // The handler closes the channel while it takes the read.
        try? await connection.channel.writeInbound(bytes)
        if version == .v5 {
            #expect(try await connection.receive() == .disconnect(MQTTReasonPacket(reasonCode: .malformedPacket)))
        }
        try await connection.channel.closeFuture.get()
        // No PINGRESP was written for the PINGREQ behind the malformed packet.
        #expect(try await connection.channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test("a well-formed packet that breaks the rules (topic alias 99 of 16) closes with 0x94, and the packets behind it in the same read are not handled")
    func violationStopsTheRead() async throws {
        let connection = try await Connection(.v5)
        try await connection.send([Self.connect(.v5)])
        guard case .connack = try await connection.receive() else { Issue.record("no CONNACK"); return }
        try? await connection.send([
            .publish(MQTTPublishPacket(topic: "a", payload: ByteBuffer(string: "x"), properties: [.topicAlias(99)])), .pingreq,
        ])
        #expect(try await connection.receive() == .disconnect(MQTTReasonPacket(reasonCode: .topicAliasInvalid)))
        try await connection.channel.closeFuture.get()
        #expect(try await connection.channel.readOutbound(as: ByteBuffer.self) == nil)
    }

    @Test("a silent client is closed once one and a half keep-alives have passed, told why on 5.0", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func keepAlive(version: MQTTProtocolVersion) async throws {
        let connection = try await Connection(version)
        try await connection.send([Self.connect(version, keepAlive: 10)])
        guard case .connack = try await connection.receive() else { Issue.record("no CONNACK"); return }
        await connection.loop.advanceTime(by: .seconds(10))
        try await connection.send([.pingreq])
        #expect(try await connection.receive() == .pingresp)
        // 14 s after the PINGREQ: still within 15 s.
        await connection.loop.advanceTime(by: .seconds(14))
        #expect(connection.channel.isActive)
        await connection.loop.advanceTime(by: .seconds(2))
        if version == .v5 {
            #expect(try await connection.receive() == .disconnect(MQTTReasonPacket(reasonCode: .keepAliveTimeout)))
        }
        try await connection.channel.closeFuture.get()
        #expect(!connection.broker.isConnected(clientIdentifier: "dev"))
    }
}
