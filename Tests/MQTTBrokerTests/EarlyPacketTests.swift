import MQTT
import MQTTBroker
import NIOCore
import NIOPosix
import Testing

/// An authenticator that takes its time, as one that asks a database does under load: packets a
/// client sends right after its CONNECT arrive while it decides.
struct SlowAuthenticator: MQTTAuthenticator {
    func authenticate(_ request: MQTTConnectRequest) async -> MQTTAuthenticationResult {
        try? await Task.sleep(for: .milliseconds(300))
        return .accept(principal: request.clientIdentifier)
    }
}

@Suite("Packets a client sends before its CONNACK")
struct EarlyPacketTests {
    @Test("CONNECT and 5,000 QoS 0 PUBLISHes in one write, before reading anything: all 5,000 arrive, in order", .serialized, arguments: ["mqttv311", "mqttv5"])
    func burstBeforeConnack(version: String) async throws {
        let protocolVersion: MQTTProtocolVersion = version == "mqttv5" ? .v5 : .v3_1_1
        let count = 5000
        // A loop of its own: a read's worth of 5,000 packets is handled in one go, which would
        // hold up the other tests' connections on the shared loops meanwhile.
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try await Self.burst(version: version, protocolVersion: protocolVersion, count: count, group: group)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        try await group.shutdownGracefully()
    }

    static func burst(version: String, protocolVersion: MQTTProtocolVersion, count: Int, group: MultiThreadedEventLoopGroup) async throws {
        try await withBroker(authenticator: SlowAuthenticator(), eventLoopGroup: group) { _, port in
            // Generous: on a machine busy with every other suite, 5,000 messages take a while.
            let subscriber = try await Subscriber.start(port: port, version: version, topic: "burst/#", count: count, timeout: 120)
            var bytes = ByteBuffer()
            MQTTPacket.connect(MQTTConnectPacket(version: protocolVersion, clientIdentifier: "burst")).write(to: &bytes, version: protocolVersion)
            for index in 0..<count {
                MQTTPacket.publish(MQTTPublishPacket(topic: "burst/\(index % 7)", payload: ByteBuffer(string: "m\(index)")))
                    .write(to: &bytes, version: protocolVersion)
            }
            let channel = try await ClientBootstrap(group: group)
                .connect(host: "127.0.0.1", port: port).get()
            // One write, and nothing read: the client never waits for its CONNACK.
            try await channel.writeAndFlush(bytes).get()
            let lines = await subscriber.lines()
            try? await channel.close()
            #expect(lines.count == count, "\(lines.count) of \(count) arrived")
            #expect(lines == (0..<count).map { "burst/\($0 % 7) m\($0)" }, "out of order")
        }
    }
}
