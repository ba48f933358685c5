import AWS
import ArgumentParser
import Dispatch
import Foundation
import Hub
import Logging
import MQTT
import MQTTBroker
import NIOCore
import NIOPosix
import Store

/// `conduit bench cluster`: N nodes of Conduit on one PostgreSQL, in this process, each with its
/// own store connections, broker, forwarder and place in the cluster; devices spread over their
/// brokers publish to the local stand-in of iot-data Publish, then downlinks queued through node
/// 1 reach devices on every node. Prints forwarded msg/s and the downlink latency.
struct ClusterBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "N nodes on one PostgreSQL: forwarded msg/s, and downlink latency through node 1 to devices on all nodes.",
        discussion: """
            Everything runs in this process on loopback, against --database-url's PostgreSQL (a schema of its own,
            dropped at the end): N hubs, each with its own connection pool, broker, forwarder and cluster membership
            (heartbeats every second, leases of 3 s), as N processes would run. Device i connects to node i mod N.
            First every device publishes --messages uplinks, forwarded to a local stand-in of iot-data Publish; then
            --downlinks downlinks per device are queued through node 1 one after another, each timed from its queueing
            to the device's read of it. On one machine the nodes share its cores: the figures show the cost of
            coordination (shards, mail between nodes), not what N machines would add.
            """
    )

    @Option(help: "Nodes.") var nodes = 3
    @Option(help: "Devices, spread over the nodes.") var devices = 30
    @Option(help: "Uplinks each device publishes.") var messages = 1000
    @Option(help: "Payload size in bytes (at least 8: the timestamp).") var size = 64
    @Option(help: "Downlinks queued per device, through node 1.") var downlinks = 10
    @Option(help: "postgres://… (required: nodes share a PostgreSQL).") var databaseURL: String
    @Option(help: "Give up after this many seconds.") var timeout = 600.0
    @Flag(help: "Devices keep persistent sessions (clean session 0), kept in the store as conduit serve keeps them: each downlink a session holds is written to it.")
    var persistentSessions = false

    func validate() throws {
        guard (1...16).contains(self.nodes) else { throw ValidationError("--nodes: 1 to 16") }
        guard (1...10_000).contains(self.devices) else { throw ValidationError("--devices: 1 to 10000") }
        guard self.messages >= 1 else { throw ValidationError("--messages: at least 1") }
        guard (8...131_072).contains(self.size) else { throw ValidationError("--size: 8 to 131072") }
        guard (0...1000).contains(self.downlinks) else { throw ValidationError("--downlinks: 0 to 1000") }
    }

    private struct Node {
        var store: SQLStore
        var hub: Hub
        var broker: MQTTBroker
        var port: Int
        var tasks: [Task<Void, Never>]
    }

    func run() async throws {
        LogOutput.bootstrap(level: .warning, format: .text)
        let total = self.devices * self.messages
        let sink = PublishSink(expected: total)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await sink.run { portContinuation.yield($0) } }
        defer { server.cancel() }
        var ports = portStream.makeAsyncIterator()
        guard let sinkPort = await ports.next() else { throw ValidationError("the sink did not start") }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-bench-\(UUID().uuidString)")
        guard case .postgres(let url, _) = try DatabaseLocation.resolve(databaseURL: self.databaseURL, dataDirectory: directory.path) else {
            throw ValidationError("--database-url: a postgres:// URL")
        }
        let schema = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        let admin = try await SQLStore.open(.postgres(url: url), maxConnections: 2, logger: Logger(label: "bench.store"))
        try await admin.session.sql.raw("CREATE SCHEMA \(unsafeRaw: schema)").run()
        await admin.shutdown()
        let location = DatabaseLocation.postgres(url: url, searchPath: [schema])
        let aws = AWSEnvironment(endpointAllowlist: try AWSEndpointAllowlist(parsing: "http://127.0.0.1:\(sinkPort)"))

        var nodes: [Node] = []
        var secrets: SecretBox?
        for index in 0..<self.nodes {
            let store = try await SQLStore.open(location, maxConnections: 16, logger: Logger(label: "bench.store"))
            if index == 0 { try await store.migrate() }
            let hub = Hub(store: store, logger: Logger(label: "bench.hub"), secrets: secrets ?? SecretBox(key: .init(size: .bits256)), aws: aws, uplinkBacklogLimit: 10_000_000)
            secrets = hub.secrets
            let access = DeviceBrokerAccess(hub: hub)
            var configuration = MQTTBrokerConfiguration(host: "127.0.0.1", port: 0)
            configuration.maximumPacketSize = MQTTBrokerConfiguration.awsMessagePacketSize
            let broker = MQTTBroker(
                configuration: configuration, authenticator: access, authorizer: access, observer: access, deliveryObserver: access,
                sessionStore: self.persistentSessions ? StoreMQTTSessions(hub: hub) : nil, logger: Logger(label: "bench.mqtt")
            )
            hub.attach(broker)
            guard let port = try await broker.start() else { throw ValidationError("the broker has no TCP listener") }
            let membership = ClusterMembership(
                hub: hub, configuration: .init(nodeID: "bench-node-\(index + 1)", heartbeatInterval: .seconds(1), leaseDuration: .seconds(3))
            )
            let forwarder = UplinkForwarder(hub: hub)
            nodes.append(Node(store: store, hub: hub, broker: broker, port: port, tasks: [Task { await membership.run() }, Task { await forwarder.run() }]))
        }
        let first = nodes[0].hub
        let tenant = try await first.access.ensureDefaultTenant()
        let principal = Principal(tenantID: tenant.id, role: .admin, actor: "bench")
        _ = try await first.integrations.create(PublishSink.integration(port: sinkPort), by: principal)
        var deviceSecrets: [String] = []
        for index in 0..<self.devices {
            let created = try await first.devices.create(.init(id: "bench-\(index)", name: "Bench \(index)", labels: ["bench"]), by: principal)
            _ = try await first.devices.perform(.accept, on: "bench-\(index)", by: principal)
            deviceSecrets.append(created.secret)
        }
        // Every shard held, and each node at its share.
        let spread = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < spread {
            let held = nodes.map { $0.hub.uplinkShards.held }
            if held.reduce(0, { $0 + $1.count }) == UplinkShards.count && held.allSatisfy({ $0.count >= UplinkShards.count / self.nodes }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let shares = nodes.map { $0.hub.uplinkShards.held.count }

        // Uplinks.
        let group = MultiThreadedEventLoopGroup.singleton
        var publishers: [(any Channel, MQTTBenchClient)] = []
        for index in 0..<self.devices {
            publishers.append(
                try await MQTTBenchClient.connect(
                    group, host: "127.0.0.1", port: nodes[index % self.nodes].port,
                    role: .publisher(topic: "devices/bench-\(index)/up", count: self.messages, size: self.size), qos: .atLeastOnce,
                    id: "bench-\(index)", password: deviceSecrets[index], cleanStart: !self.persistentSessions
                )
            )
        }
        let started = DispatchTime.now().uptimeNanoseconds
        for (channel, client) in publishers { channel.eventLoop.execute { client.startPublishing() } }
        let arrived = await sink.waitForAll(timeout: self.timeout)
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        for (channel, _) in publishers { try? await channel.close() }

        // Downlinks through node 1, to devices on every node, one at a time.
        var latencies: [UInt64] = []
        var delivered = 0
        if self.downlinks > 0 {
            var subscribers: [(any Channel, MQTTBenchClient)] = []
            for index in 0..<self.devices {
                let subscriber = try await MQTTBenchClient.connect(
                    group, host: "127.0.0.1", port: nodes[index % self.nodes].port, role: .subscriber(topic: "devices/bench-\(index)/down", expected: self.downlinks),
                    qos: .atLeastOnce, id: "bench-\(index)", password: deviceSecrets[index], cleanStart: !self.persistentSessions
                )
                try await subscriber.1.subscribed.futureResult.get()
                subscribers.append(subscriber)
            }
            // Each device's connection noted in the store before the first downlink.
            try await Task.sleep(for: .milliseconds(500))
            for round in 0..<self.downlinks {
                for index in 0..<self.devices {
                    var stamp = DispatchTime.now().uptimeNanoseconds.bigEndian
                    let payload = withUnsafeBytes(of: &stamp) { Data($0) } + Data("#\(round)".utf8)
                    _ = try await first.downlinks.queue(.init(payload: payload), to: "bench-\(index)", by: principal)
                }
            }
            for (_, client) in subscribers {
                // Every downlink of the device, or the timeout, whichever comes first.
                let future = client.finished.futureResult
                let done = future.eventLoop.makePromise(of: Void.self)
                future.whenComplete { _ in done.succeed() }
                let timer = future.eventLoop.scheduleTask(in: .seconds(Int64(self.timeout))) { done.succeed() }
                try? await done.futureResult.get()
                timer.cancel()
                let (received, seen) = try await future.eventLoop.submit { (client.received, client.latencies) }.get()
                delivered += received
                latencies += seen
            }
            for (channel, _) in subscribers { try? await channel.close() }
        }

        let counts = try await first.store.session.deviceSessions.countByNode()
        for node in nodes {
            for task in node.tasks { task.cancel() }
            for task in node.tasks { await task.value }
            await node.broker.shutdown()
            await node.store.shutdown()
        }
        let cleanup = try await SQLStore.open(.postgres(url: url), maxConnections: 2, logger: Logger(label: "bench.store"))
        try? await cleanup.session.sql.raw("DROP SCHEMA \(unsafeRaw: schema) CASCADE").run()
        await cleanup.shutdown()

        latencies.sort()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            return Double(latencies[max(0, min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1))]) / 1e6
        }
        print("nodes \(self.nodes) on one PostgreSQL, devices \(self.devices) x \(self.messages) uplinks of \(self.size) B, QoS 1\(self.persistentSessions ? ", persistent sessions in the store" : "")")
        print("uplink shards per node: \(shares.map(String.init).joined(separator: " ")); devices per node: "
            + (1...self.nodes).map { String(counts["bench-node-\($0)"] ?? 0) }.joined(separator: " "))
        print(
            String(
                format: "forwarded to the sink: %d/%d in %.2f s: %.0f msg/s%@; out of order per device: %d", arrived, total, elapsed,
                Double(arrived) / elapsed, arrived < total ? " (timed out)" : "", sink.outOfOrder
            )
        )
        if self.downlinks > 0 {
            print(
                String(
                    format: "downlinks through node 1: %d/%d delivered; latency queue -> device, ms: p50 %.1f  p99 %.1f  max %.1f", delivered,
                    self.devices * self.downlinks, percentile(0.5), percentile(0.99), percentile(1)
                )
            )
        }
    }
}
