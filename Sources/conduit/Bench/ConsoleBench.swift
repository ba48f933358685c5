import ArgumentParser
import AsyncHTTPClient
import Console
import Dispatch
import Foundation
import HTTPAPI
import Hub
import Hummingbird
import Logging
import NIOCore
import Store
import Synchronization

/// `conduit bench console`: the server time to render the console's device pages over a store
/// holding many devices. A benchmark, not a test.
struct ConsoleBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "console",
        abstract: "Render /devices and /devices/{id} over a store of many devices; print server time p50/p99 per page.",
        discussion: """
            Everything runs in this process: a fresh SQLite store in a temporary folder (or --database-url,
            whose database must be empty), seeded with --devices devices (labels, a few messages each, one
            integration's state for a tenth of them), the API and console on a loopback port, and one signed-in
            client asking for the pages one after another. Server time is measured around the router's
            handling of each request (session lookup, queries, template), without the HTTP client's side.
            """
    )

    @Option(help: "Devices in the store.") var devices = 10_000
    @Option(help: "Messages stored per device.") var messagesPerDevice = 5
    @Option(help: "Requests per page kind.") var requests = 300
    @Option(help: "A PostgreSQL URL to use instead of a temporary SQLite store (an empty database).") var databaseURL: String?

    func validate() throws {
        guard (1...1_000_000).contains(self.devices) else { throw ValidationError("--devices: 1 to 1000000") }
        guard (0...1000).contains(self.messagesPerDevice) else { throw ValidationError("--messages-per-device: 0 to 1000") }
        guard (1...100_000).contains(self.requests) else { throw ValidationError("--requests: 1 to 100000") }
    }

    /// Server time of each request, by page kind.
    final class Timings: Sendable {
        let samples = Mutex<[String: [UInt64]]>([:])
        func add(_ kind: String, _ nanoseconds: UInt64) { self.samples.withLock { $0[kind, default: []].append(nanoseconds) } }
    }

    /// Times the requests the bench marks with `X-Bench-Kind`.
    struct TimingMiddleware: RouterMiddleware {
        typealias Context = ConduitRequestContext
        let timings: Timings

        func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
            guard let kind = request.headers[.init("X-Bench-Kind")!] else { return try await next(request, context) }
            let started = DispatchTime.now().uptimeNanoseconds
            let response = try await next(request, context)
            self.timings.add(kind, DispatchTime.now().uptimeNanoseconds - started)
            return response
        }
    }

    func run() async throws {
        LogOutput.bootstrap(level: .warning, format: .text)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let location: DatabaseLocation = self.databaseURL.map { .postgres(url: $0) } ?? .sqlite(path: directory.appendingPathComponent("conduit.sqlite").path)
        let store = try await SQLStore.open(location, logger: Logger(label: "bench.store"))
        do {
            try await store.migrate()
            try await self.measure(store: store)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }

    private func measure(store: SQLStore) async throws {
        let hub = Hub(store: store, logger: Logger(label: "bench.hub"))
        let tenant = try await hub.access.ensureDefaultTenant()
        let seeding = DispatchTime.now().uptimeNanoseconds
        try await self.seed(store: store, tenantID: tenant.id)
        print(String(format: "seeded %d devices, %d messages each, in %.1f s (%@)", self.devices, self.messagesPerDevice,
                     Double(DispatchTime.now().uptimeNanoseconds - seeding) / 1e9, "\(store.dialect)"))
        let password = "bench password \(UUID().uuidString)"
        _ = try await hub.consoleAccounts.createUser(email: "bench@example.com", password: password, role: .admin, tenantName: Tenant.defaultName)
        let session = try await hub.consoleAccounts.signIn(email: "bench@example.com", password: password, address: "127.0.0.1").sessionToken

        let timings = Timings()
        let router = ConduitAPI.router(hub: hub)
        router.add(middleware: TimingMiddleware(timings: timings))
        try await Console(hub: hub).register(on: router)
        let (ports, portContinuation) = AsyncStream.makeStream(of: Int.self)
        var serverLogger = Logger(label: "bench.http")
        // Cancelling the server at the end is not an error worth printing.
        serverLogger.logLevel = .critical
        let app = ConduitAPI.application(router: router, host: "127.0.0.1", port: 0, logger: serverLogger) { port in
            portContinuation.yield(port)
        }
        let server = Task { try await app.runService(gracefulShutdownSignals: []) }
        defer { server.cancel() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw ValidationError("the server did not start") }

        let client = HTTPClient.shared
        let base = "http://127.0.0.1:\(port)"
        // Cursors deep in the list: each page starts after a device id, as "next page" links do
        // (the cursor as the hub writes it: the bench made "c1:…" in base64, refused since cursors changed).
        let cursors = (0..<self.requests).map { _ in PageRequest.encodeCursor(Self.deviceID(Int.random(in: 0..<self.devices))) }
        let kinds: [(String, (Int) -> String)] = [
            ("/devices (first page)", { _ in "/devices" }),
            ("/devices (a page deep in the list)", { "/devices?cursor=" + cursors[$0] }),
            ("/devices?status=accepted&label=bench", { _ in "/devices?status=accepted&label=bench" }),
            ("/devices?q= (search by name)", { _ in "/devices?q=\(Int.random(in: 0..<self.devices))" }),
            ("/devices/{id}", { _ in "/devices/\(Self.deviceID(Int.random(in: 0..<self.devices)))" }),
        ]
        for (kind, path) in kinds {
            for round in 0..<(self.requests + 10) {
                let target = path(round % self.requests)
                var request = HTTPClientRequest(url: base + target)
                request.headers.add(name: "Cookie", value: "conduit_session=\(session)")
                // The first rounds warm caches up and are not counted.
                if round >= 10 { request.headers.add(name: "X-Bench-Kind", value: kind) }
                let response = try await client.execute(request, timeout: .seconds(30))
                guard response.status == .ok else { throw ValidationError("\(target) answered \(response.status)") }
                _ = try await response.body.collect(upTo: 16 << 20)
            }
        }
        let samples = timings.samples.withLock { $0 }
        print("server time per page, \(self.requests) requests each, one at a time:")
        for (kind, _) in kinds {
            let sorted = (samples[kind] ?? []).sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return .nan }
                return Double(sorted[max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))]) / 1e6
            }
            let label = kind.padding(toLength: 40, withPad: " ", startingAt: 0)
            print(label + String(format: "p50 %6.2f ms  p99 %6.2f ms  max %6.2f ms", percentile(0.5), percentile(0.99), percentile(1)))
        }
    }

    static func deviceID(_ index: Int) -> String { String(format: "bench-%07d", index) }

    /// Devices in transactions of a thousand; every tenth accepted and provisioned in an integration.
    private func seed(store: SQLStore, tenantID: String) async throws {
        let now = Date()
        let integration = Integration(
            id: "int_bench", tenantID: tenantID, name: "bench", type: "aws-iot-core",
            settings: IntegrationSettings(
                region: "us-east-1", endpointURL: nil, policyName: nil, perThingPolicy: true, thingGroup: nil, thingAttributes: [],
                uplinkTopic: "conduit/{deviceId}/up", payloadFormat: "raw", downlinkPrefix: "conduit/devices", binding: IntegrationBinding(labels: ["bench"])
            ),
            credentials: IntegrationCredentials(kind: .default), active: false, status: .active, dataEndpoint: nil, createdGroups: [],
            createdAt: now, updatedAt: now
        )
        try await store.transaction { session in try await session.integrations.insert(integration) }
        let batch = 1000
        for start in stride(from: 0, to: self.devices, by: batch) {
            let range = start..<min(start + batch, self.devices)
            let messages = self.messagesPerDevice
            try await store.transaction { session in
                for index in range {
                    let id = Self.deviceID(index)
                    let provisioned = index % 10 == 0
                    try await session.devices.insert(
                        Device(
                            id: id, tenantID: tenantID, name: "Boiler \(index)", status: provisioned ? .accepted : .pending,
                            labels: provisioned ? ["bench", "plant-\(index % 7)"] : ["plant-\(index % 7)"], attributes: ["model": "b\(index % 13)"],
                            secretHash: "sha256$bench$bench", createdAt: now, updatedAt: now, statusChangedAt: now
                        )
                    )
                    if provisioned {
                        var record = ProvisioningJob(
                            integrationID: integration.id, deviceID: id, tenantID: tenantID, wanted: .active, bound: true, state: .provisioned,
                            progress: AWSThingProgress(), needsWork: false, attempts: 1, nextAttemptAt: now, updatedAt: now
                        )
                        record.progress.thingArn = "arn:aws:iot:us-east-1:123456789012:thing/\(id)"
                        try await session.awsThings.insert(record)
                    }
                    for sequence in 0..<messages {
                        try await session.messages.append(
                            DeviceMessage(
                                tenantID: tenantID, deviceID: id, topic: "devices/\(id)/up", payload: Data(#"{"t": \#(20 + sequence)}"#.utf8),
                                qos: 1, retain: false, receivedAt: now
                            ),
                            keep: 1000
                        )
                    }
                }
            }
        }
    }
}
