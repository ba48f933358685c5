import AWS
import ArgumentParser
import Dispatch
import Foundation
import Hub
import Hummingbird
import Logging
import MQTT
import MQTTBroker
import NIOCore
import NIOPosix
import Store
import Synchronization

/// `conduit bench uplink`: devices publish through Conduit's broker; Conduit stores each message
/// with its outbox row and forwards it to a local HTTP sink that answers as iot-data Publish
/// does, after `--aws-latency-ms`. Prints ingest and forwarded messages per second, the latency
/// device to AWS, and the process's peak RSS.
struct UplinkBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "uplink",
        abstract: "Devices publish through the broker to a local stand-in of iot-data Publish; print msg/s and latency.",
        discussion: """
            Everything runs in this process on loopback: the store (a fresh SQLite file in a temporary folder, or a
            fresh schema of --database-url's PostgreSQL, dropped at the end), the broker with device authentication,
            the forwarder, the devices and the sink. The latency is from the device's write to the sink's read of the
            same message (both clocks are this process's): the broker, the store's transaction, the outbox, and the
            publish to the sink, whose answer comes --aws-latency-ms later. Peak RSS is the whole process's: Conduit,
            its devices and the sink.
            """
    )

    @Option(help: "Devices publishing at once.") var devices = 10
    @Option(help: "Messages each device publishes.") var messages = 1000
    @Option(help: "Payload size in bytes (at least 8: the timestamp).") var size = 64
    @Option(help: "raw or envelope.") var payloadFormat = "raw"
    @Option(help: "QoS the devices publish at: 0 or 1.") var qos = 1
    @Option(help: "Milliseconds the stand-in of iot-data Publish takes to answer, as the real AWS's round trip does.")
    var awsLatencyMs = 0
    @Option(help: "Messages per second, all devices together; 0 publishes as fast as the broker takes them.") var rate = 0.0
    @Option(help: "postgres://… to run on PostgreSQL (in a schema of its own, dropped after); SQLite by default.")
    var databaseURL: String?
    @Flag(inversion: .prefixedNo, help: "Forward to the sink; --no-forward measures ingest alone.") var forward = true
    @Option(help: "Publishes of one device in flight at once (serve's --uplink-device-window).") var deviceWindow = 1
    @Option(help: "Give up after this many seconds.") var timeout = 600.0
    @Option(help: "Rules that read every message (JSON payloads, a value going 0 to 999, two bands): measures ingest with rules. Needs --no-forward.")
    var rules = 0

    func validate() throws {
        guard (1...10_000).contains(self.devices) else { throw ValidationError("--devices: 1 to 10000") }
        guard self.messages >= 1 else { throw ValidationError("--messages: at least 1") }
        guard (8...131_072).contains(self.size) else { throw ValidationError("--size: 8 to 131072") }
        guard ["raw", "envelope"].contains(self.payloadFormat) else { throw ValidationError("--payload-format: raw or envelope") }
        guard (0...100).contains(self.rules) else { throw ValidationError("--rules: 0 to 100") }
        if self.rules > 0 && self.forward {
            throw ValidationError("--rules: needs --no-forward (the JSON payloads carry no timestamp for the sink's latencies)")
        }
        if self.rules > 0 && self.size < 32 { throw ValidationError("--rules: needs --size 32 or more, for the JSON") }
        guard [0, 1].contains(self.qos) else { throw ValidationError("--qos: 0 or 1") }
        guard (0...10_000).contains(self.awsLatencyMs) else { throw ValidationError("--aws-latency-ms: 0 to 10000") }
        guard self.rate >= 0 else { throw ValidationError("--rate: 0 or more") }
    }

    func run() async throws {
        LogOutput.bootstrap(level: .warning, format: .text)
        let total = self.devices * self.messages
        let sink = PublishSink(expected: total, latency: .milliseconds(Int64(self.awsLatencyMs)))
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await sink.run { portContinuation.yield($0) } }
        defer { server.cancel() }
        var ports = portStream.makeAsyncIterator()
        guard let sinkPort = await ports.next() else { throw ValidationError("the sink did not start") }

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let location: DatabaseLocation
        let schema = "bench_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12)
        if let databaseURL {
            guard case .postgres(let url, _) = try DatabaseLocation.resolve(databaseURL: databaseURL, dataDirectory: directory.path) else {
                throw ValidationError("--database-url: a postgres:// URL")
            }
            let admin = try await SQLStore.open(.postgres(url: url), maxConnections: 2, logger: Logger(label: "bench.store"))
            try await admin.session.sql.raw("CREATE SCHEMA \(unsafeRaw: schema)").run()
            await admin.shutdown()
            location = .postgres(url: url, searchPath: [schema])
        } else {
            location = .sqlite(path: directory.appendingPathComponent("conduit.sqlite").path)
        }
        let store = try await SQLStore.open(location, maxConnections: 16, logger: Logger(label: "bench.store"))
        try await store.migrate()
        let hub = Hub(
            store: store, logger: Logger(label: "bench.hub"), messageHistoryLimit: 1000,
            aws: AWSEnvironment(endpointAllowlist: try AWSEndpointAllowlist(parsing: "http://127.0.0.1:\(sinkPort)")), uplinkBacklogLimit: 10_000_000
        )
        let tenant = try await hub.access.ensureDefaultTenant()
        let admin = Principal(tenantID: tenant.id, role: .admin, actor: "bench")
        var draft = PublishSink.integration(port: sinkPort)
        draft.payloadFormat = self.payloadFormat
        let integration = try await hub.integrations.create(draft, by: admin)
        for index in 0..<self.rules {
            // Every message reaches every rule; each device crosses a band every few hundred messages.
            let definition = RuleDefinition(
                source: .init(labels: ["bench"]), subtopic: "up", value: "$.v", states: ["High": .init(above: 700), "Low": .init(below: 300)],
                actions: [
                    .init(on: .init(to: "High"), publish: .init(integrationId: integration.id, topic: "bench/{deviceId}/high", payload: .object(["v": .string("{value}")])))
                ]
            )
            _ = try await hub.rules.create(name: "bench-\(index)", definition: definition, by: admin)
        }
        var secrets: [String] = []
        for index in 0..<self.devices {
            let created = try await hub.devices.create(.init(id: "bench-\(index)", name: "Bench \(index)", labels: ["bench"]), by: admin)
            _ = try await hub.devices.perform(.accept, on: "bench-\(index)", by: admin)
            secrets.append(created.secret)
        }

        let access = DeviceBrokerAccess(hub: hub)
        var brokerConfiguration = MQTTBrokerConfiguration(host: "127.0.0.1", port: 0)
        brokerConfiguration.maximumPacketSize = MQTTBrokerConfiguration.awsMessagePacketSize
        let broker = MQTTBroker(
            configuration: brokerConfiguration, authenticator: access, authorizer: access, observer: access, logger: Logger(label: "bench.mqtt")
        )
        guard let brokerPort = try await broker.start() else { throw ValidationError("the broker has no TCP listener") }
        let forwarder = UplinkForwarder(hub: hub, configuration: .init(window: self.deviceWindow))
        let forwarding = self.forward ? Task { await forwarder.run() } : nil
        defer { forwarding?.cancel() }

        let group = MultiThreadedEventLoopGroup.singleton
        var publishers: [(any Channel, MQTTBenchClient)] = []
        let perDevice = self.rate > 0 ? self.rate / Double(self.devices) : nil
        for index in 0..<self.devices {
            publishers.append(
                try await MQTTBenchClient.connect(
                    group, host: "127.0.0.1", port: brokerPort,
                    role: .publisher(topic: "devices/bench-\(index)/up", count: self.messages, size: self.size),
                    qos: self.qos == 0 ? .atMostOnce : .atLeastOnce, id: "bench-\(index)", password: secrets[index], rate: perDevice,
                    json: self.rules > 0
                )
            )
        }
        let started = DispatchTime.now().uptimeNanoseconds
        for (channel, client) in publishers { channel.eventLoop.execute { client.startPublishing() } }
        // When the broker acknowledged the last message (QoS 1: every one stored with its outbox
        // row by then), or the devices wrote their last (QoS 0).
        let finished = publishers.map { $0.1.finished.futureResult }
        let acknowledged = Task {
            for future in finished { try await future.get() }
            return DispatchTime.now().uptimeNanoseconds
        }
        let arrived: Int
        if self.forward {
            arrived = await sink.waitForAll(timeout: self.timeout)
        } else {
            _ = try? await acknowledged.value
            arrived = 0
        }
        let ingestedAt = try? await acknowledged.value
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        for (channel, _) in publishers { try? await channel.close() }
        await broker.shutdown()
        forwarding?.cancel()
        let stored = try await store.session.sql.raw("SELECT COUNT(*) AS n FROM device_messages").first()?.decode(column: "n", as: Int.self) ?? 0
        await store.shutdown()
        if self.databaseURL != nil, case .postgres(let url, _) = location {
            let admin = try await SQLStore.open(.postgres(url: url), maxConnections: 2, logger: Logger(label: "bench.store"))
            try? await admin.session.sql.raw("DROP SCHEMA \(unsafeRaw: schema) CASCADE").run()
            await admin.shutdown()
        }

        let latencies = sink.latencies.sorted()
        func percentile(_ p: Double) -> Double {
            guard !latencies.isEmpty else { return .nan }
            return Double(latencies[max(0, min(latencies.count - 1, Int((Double(latencies.count) * p).rounded(.up)) - 1))]) / 1e6
        }
        let engine = self.databaseURL == nil ? "SQLite" : "PostgreSQL"
        print(
            "devices \(self.devices) x \(self.messages) messages of \(self.size) B, QoS \(self.qos), \(self.payloadFormat), \(engine), rules \(self.rules), "
                + "AWS latency \(self.awsLatencyMs) ms" + (self.rate > 0 ? String(format: ", at %.0f msg/s", self.rate) : "")
                + (self.forward ? ", device window \(self.deviceWindow)" : ", forwarding off")
        )
        if let ingestedAt {
            let ingest = Double(ingestedAt - started) / 1e9
            let what = self.qos == 1 ? "acknowledged to the devices (stored with their outbox rows)" : "written by the devices"
            print(String(format: "ingest: %d %@ in %.2f s: %.0f msg/s", total, what, ingest, Double(total) / ingest))
        }
        print("stored in the history: \(stored)/\(total)")
        if self.forward {
            print(
                String(
                    format: "forwarded to the sink: %d/%d in %.2f s: %.0f msg/s%@", arrived, total, elapsed, Double(arrived) / elapsed,
                    arrived < total ? " (timed out)" : ""
                )
            )
            print(String(format: "latency device -> AWS, ms: p50 %.1f  p99 %.1f  max %.1f", percentile(0.5), percentile(0.99), percentile(1)))
            print("messages out of order per device: \(sink.outOfOrder)")
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        print(String(format: "peak RSS: %.0f MB", Double(usage.ru_maxrss) / 1024))
    }
}

/// A local stand-in for iot-data Publish: answers 200 `{}` to `POST /topics/...` (and to the
/// DescribeEndpoint an integration makes when it is created), and times each message's arrival
/// against the timestamp the bench client put in its first 8 bytes.
final class PublishSink: Sendable {
    private struct State {
        var latencies: [UInt64] = []
        var arrived = 0
        var lastStamp: [String: UInt64] = [:]
        var outOfOrder = 0
    }
    let expected: Int
    /// How long each publish takes to answer.
    let latency: Duration
    private let state = Mutex(State())

    init(expected: Int, latency: Duration = .zero) {
        self.expected = expected
        self.latency = latency
    }

    /// An integration of the devices labelled `bench` that publishes to the sink on `port`.
    static func integration(port: Int) -> IntegrationDraft {
        var draft = IntegrationDraft()
        draft.name = "sink"
        draft.region = "us-east-1"
        draft.endpointURL = .some("http://127.0.0.1:\(port)")
        draft.credentials = .init(accessKeyID: "AKIACONDUITBENCH0001", secretAccessKey: "bench")
        draft.policy = .init(perThing: true)
        draft.bind = .init(labels: ["bench"])
        return draft
    }

    var latencies: [UInt64] { self.state.withLock { $0.latencies } }
    var outOfOrder: Int { self.state.withLock { $0.outOfOrder } }

    func run(onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        let router = Router()
        router.get("/endpoint") { _, _ in #"{"endpointAddress": "bench-ats.iot.us-east-1.amazonaws.com"}"# }
        router.post("/topics/**") { request, context -> HTTPResponse.Status in
            var request = request
            let body = try await request.collectBody(upTo: 1 << 20)
            let now = DispatchTime.now().uptimeNanoseconds
            let topic = request.uri.path
            var stamp = body.getInteger(at: body.readerIndex, as: UInt64.self) ?? 0
            // An envelope carries the device's bytes in base64.
            if body.readableBytes > 0, body.getInteger(at: body.readerIndex, as: UInt8.self) == UInt8(ascii: "{"),
                let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                let payload = (object["payload"] as? String).flatMap({ Data(base64Encoded: $0) }), payload.count >= 8
            {
                stamp = UInt64(bigEndian: payload.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
            }
            self.state.withLock { state in
                state.arrived += 1
                if stamp > 0 && stamp <= now { state.latencies.append(now - stamp) }
                if let last = state.lastStamp[topic], stamp < last { state.outOfOrder += 1 }
                state.lastStamp[topic] = stamp
            }
            if self.latency > .zero { try await Task.sleep(for: self.latency) }
            return .ok
        }
        try await AWSQuotaProxy.serve(router, label: "conduit.bench.sink", onRunning: onRunning)
    }

    /// Waits until every expected message arrived or `timeout` seconds pass; returns how many did.
    func waitForAll(timeout: Double) async -> Int {
        let deadline = ContinuousClock.now + .seconds(timeout)
        while ContinuousClock.now < deadline {
            let arrived = self.state.withLock { $0.arrived }
            if arrived >= self.expected { return arrived }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return self.state.withLock { $0.arrived }
    }
}
