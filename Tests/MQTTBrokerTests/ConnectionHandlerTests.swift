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
    final class Connection {
        let channel: NIOAsyncTestingChannel
        let loop: NIOAsyncTestingEventLoop
        let broker: MQTTBroker
        let version: MQTTProtocolVersion
        /// Bytes written by the handler not decoded yet: one write may carry several packets.
        private var written = ByteBuffer()
        private lazy var decoder = MQTTPacketDecoder(version: self.version)

        init(_ version: MQTTProtocolVersion, on loop: NIOAsyncTestingEventLoop? = nil, broker: MQTTBroker? = nil) async throws {
            self.version = version
            self.loop = loop ?? NIOAsyncTestingEventLoop()
            self.channel = NIOAsyncTestingChannel(loop: self.loop)
            self.broker = broker ?? MQTTBroker(configuration: .init(port: 0), logger: .quiet, eventLoopGroup: self.loop)
            try await self.loop.executeInContext { [broker = self.broker, channel] in try broker.configure(channel, tls: false) }
            try await self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1883)).get()
        }

        /// Writes these packets to the handler as one read.
        func send(_ packets: [MQTTPacket]) async throws {
            var buffer = ByteBuffer()
            for packet in packets { packet.write(to: &buffer, version: self.version) }
            try await self.channel.writeInbound(buffer)
        }

        /// The next packet the handler wrote; throws when none comes within 10 s.
        func receive() async throws -> MQTTPacket {
            let deadline = ContinuousClock.now + .seconds(10)
            while true {
                if let packet = try self.decoder.decode(buffer: &self.written) { return packet }
                if var more = try await self.channel.readOutbound(as: ByteBuffer.self) {
                    self.written.writeBuffer(&more)
                    continue
                }
                guard ContinuousClock.now < deadline else { throw TestSetupError("the handler wrote nothing more in 10 s") }
                try await Task.sleep(for: .milliseconds(2))
            }
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
        _ = try? await connection.channel.writeInbound(bytes)
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

    @Test("packets split across reads at every few bytes (headers, lengths and payloads cut anywhere) arrive whole and in order", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func splitReads(version: MQTTProtocolVersion) async throws {
        let connection = try await Connection(version)
        let payloads = [10, 300, 20_000].map { ByteBuffer(repeating: UInt8($0 % 251), count: $0) }
        var stream = ByteBuffer()
        let packets: [MQTTPacket] =
            [Self.connect(version), .subscribe(MQTTSubscribePacket(packetIdentifier: 1, subscriptions: [.init(topicFilter: "dev/#", qos: .atLeastOnce)]))]
            + payloads.enumerated().map { .publish(MQTTPublishPacket(topic: "dev/\($0.offset)", payload: $0.element, qos: .atLeastOnce, packetIdentifier: UInt16(10 + $0.offset))) }
        for packet in packets { packet.write(to: &stream, version: version) }
        var size = 0
        while stream.readableBytes > 0 {
            size = size % 7 + 1
            try await connection.channel.writeInbound(stream.readSlice(length: min(size, stream.readableBytes))!)
        }
        guard case .connack = try await connection.receive() else { Issue.record("no CONNACK first"); return }
        #expect(try await connection.receive() == .suback(MQTTSubAckPacket(packetIdentifier: 1, reasonCodes: [.grantedQoS1])))
        var acknowledged: [UInt16] = []
        var delivered: [ByteBuffer] = []
        while acknowledged.count + delivered.count < 6 {
            switch try await connection.receive() {
            case .puback(let ack): acknowledged.append(ack.packetIdentifier)
            case .publish(let publish): delivered.append(publish.payload)
            case let other: Issue.record("unexpected \(other.name)")
            }
        }
        #expect(acknowledged == [10, 11, 12])
        #expect(delivered == payloads)
        try await connection.channel.close()
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

    @Test("a connection that sends no CONNECT is closed once the CONNECT deadline has passed, and not before")
    func connectDeadline() async throws {
        let connection = try await Connection(.v5)
        // The broker's default: 10 s to send CONNECT.
        await connection.loop.advanceTime(by: .seconds(9))
        #expect(connection.channel.isActive)
        await connection.loop.advanceTime(by: .seconds(2))
        #expect(!connection.channel.isActive)
    }

    @Test("clients on one event loop keep their own keep-alives: the silent one is closed, the one that pings stays")
    func keepAlivesOnOneLoop() async throws {
        let quiet = try await Connection(.v5)
        let busy = try await Connection(.v5, on: quiet.loop, broker: quiet.broker)
        try await quiet.send([.connect(MQTTConnectPacket(version: .v5, clientIdentifier: "quiet", keepAlive: 10))])
        try await busy.send([.connect(MQTTConnectPacket(version: .v5, clientIdentifier: "busy", keepAlive: 10))])
        guard case .connack = try await quiet.receive(), case .connack = try await busy.receive() else { Issue.record("no CONNACK"); return }
        for _ in 0..<4 {
            await quiet.loop.advanceTime(by: .seconds(5))
            try await busy.send([.pingreq])
            #expect(try await busy.receive() == .pingresp)
        }
        // 20 s without a packet from `quiet`, 15 s past its keep-alive and a half.
        #expect(!quiet.channel.isActive)
        #expect(try await quiet.receive() == .disconnect(MQTTReasonPacket(reasonCode: .keepAliveTimeout)))
        #expect(busy.channel.isActive)
        #expect(quiet.broker.isConnected(clientIdentifier: "busy"))
        #expect(!quiet.broker.isConnected(clientIdentifier: "quiet"))
        try await busy.channel.close()
    }
}
