import ArgumentParser
import Dispatch
import MQTT
import NIOCore
import NIOPosix

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Benchmarks (not tests): measure Conduit, or any peer, on this machine.",
        subcommands: [MQTTBench.self, ProvisionBench.self, UplinkBench.self, ConsoleBench.self, ClusterBench.self]
    )
}

/// `conduit bench mqtt`: C publishers each send N messages of S bytes to their own topic, which C
/// subscribers receive through the broker; prints messages per second and end-to-end latency.
struct MQTTBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mqtt",
        abstract: "Publish through any MQTT broker to subscribers; print throughput and latency.",
        discussion: """
            Run it against `conduit serve --mqtt-anonymous --mqtt-max-connections-per-address 0
            --mqtt-connect-rate 0` (every client comes from one address) and against mosquitto on the
            same machine to compare them. The latency is from the publisher's write to the subscriber's read, both
            in this process; throughput counts delivered messages over the time from the first
            publish to the last delivery.
            """
    )

    @Option(help: "Broker address.") var host = "127.0.0.1"
    @Option(help: "Broker port.") var port = 1883
    @Option(help: "Publisher/subscriber pairs.") var connections = 10
    @Option(help: "Messages each publisher sends.") var messages = 1000
    @Option(help: "Payload size in bytes (at least 8: the timestamp).") var size = 64
    @Option(help: "QoS of publishes and subscriptions: 0, 1 or 2.") var qos = 1
    @Option(help: "Give up waiting for deliveries after this many seconds.") var timeout = 60.0
    @Option(help: "Instead of messages: hold this many idle connections and print the broker's memory per connection (needs --broker-pid).")
    var idle: Int?
    @Option(help: "The broker's process id, whose resident memory --idle reads from /proc.") var brokerPid: Int32?

    func validate() throws {
        guard (1...10_000).contains(self.connections) else { throw ValidationError("--connections: 1 to 10000") }
        guard self.messages >= 1 else { throw ValidationError("--messages: at least 1") }
        guard (8...(1 << 20)).contains(self.size) else { throw ValidationError("--size: 8 to 1048576 bytes") }
        guard MQTTQoS(rawValue: UInt8(clamping: self.qos)) != nil, self.qos >= 0 else { throw ValidationError("--qos: 0, 1 or 2") }
    }

    func run() async throws {
        if let idle = self.idle {
            guard let pid = self.brokerPid else { throw ValidationError("--idle: needs --broker-pid, the broker's process id") }
            return try await IdleConnections.measure(host: self.host, port: self.port, count: idle, brokerPID: pid)
        }
        let qos = MQTTQoS(rawValue: UInt8(self.qos))!
        let group = MultiThreadedEventLoopGroup.singleton
        let run = UInt64.random(in: 1...UInt64.max)
        var subscribers: [(any Channel, MQTTBenchClient)] = []
        var publishers: [(any Channel, MQTTBenchClient)] = []
        for index in 0..<self.connections {
            let topic = "bench/\(run)/\(index)"
            subscribers.append(
                try await self.connect(group, role: .subscriber(topic: topic, expected: self.messages), qos: qos, id: "bench-sub-\(run)-\(index)")
            )
            publishers.append(
                try await self.connect(group, role: .publisher(topic: topic, count: self.messages, size: self.size), qos: qos, id: "bench-pub-\(run)-\(index)")
            )
        }
        for (_, client) in subscribers { try await client.subscribed.futureResult.get() }
        for (_, client) in publishers { try await client.connected.futureResult.get() }

        let started = DispatchTime.now().uptimeNanoseconds
        for (channel, client) in publishers {
            channel.eventLoop.execute { client.startPublishing() }
        }
        let deadline = NIODeadline.now() + .milliseconds(Int64(self.timeout * 1000))
        var timedOut = false
        for (channel, client) in subscribers {
            let wait = channel.eventLoop.scheduleTask(deadline: deadline) { client.finished.fail(BenchError("timeout")) }
            do { try await client.finished.futureResult.get() } catch { timedOut = true }
            wait.cancel()
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9

        var latencies: [UInt64] = []
        var delivered = 0
        for (channel, client) in subscribers {
            let (received, samples) = try await channel.eventLoop.submit { (client.received, client.latencies) }.get()
            delivered += received
            latencies += samples
        }
        for (channel, _) in subscribers + publishers { try? await channel.close() }
        latencies.sort()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            let index = min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1)
            return Double(latencies[max(0, index)]) / 1e6
        }
        let total = self.connections * self.messages
        print("broker \(self.host):\(self.port)  pairs \(self.connections)  messages \(self.messages) each (\(total) total)  size \(self.size) B  qos \(self.qos)")
        print(String(format: "delivered %d/%d in %.3f s: %.0f msg/s%@", delivered, total, elapsed, Double(delivered) / elapsed, timedOut ? "  (timed out)" : ""))
        print(String(format: "latency ms: p50 %.2f  p99 %.2f  max %.2f", percentile(0.50), percentile(0.99), percentile(1.0)))
    }

    private func connect(_ group: any EventLoopGroup, role: MQTTBenchClient.Role, qos: MQTTQoS, id: String) async throws -> (any Channel, MQTTBenchClient) {
        try await MQTTBenchClient.connect(group, host: self.host, port: self.port, role: role, qos: qos, id: id)
    }
}

extension MQTTBenchClient {
    /// A bench client connected to `host:port` (CONNACK received).
    static func connect(
        _ group: any EventLoopGroup, host: String, port: Int, role: Role, qos: MQTTQoS, id: String, password: String? = nil,
        rate: Double? = nil, json: Bool = false, cleanStart: Bool = true
    ) async throws -> (any Channel, MQTTBenchClient) {
        let eventLoop = group.next()
        let client = MQTTBenchClient(
            role: role, qos: qos, clientIdentifier: id, password: password, rate: rate, json: json, cleanStart: cleanStart, eventLoop: eventLoop
        )
        let channel = try await ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MQTTPacketDecoder(version: .v3_1_1)))
                    try channel.pipeline.syncOperations.addHandler(client)
                }
            }
            .connect(host: host, port: port).get()
        try await client.connected.futureResult.get()
        return (channel, client)
    }
}
