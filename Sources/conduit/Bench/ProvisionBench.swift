import AWS
import AWSIoT
import ArgumentParser
import Foundation
import Hub
import Logging
import Store

/// `conduit bench provision`: provisions N devices through a local endpoint that enforces AWS
/// IoT's per-operation quotas in front of moto; prints devices per second, what the quotas allow,
/// and the throttling answers met on the way.
struct ProvisionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provision",
        abstract: "Provision devices into an AWS stand-in behind AWS's own rate limits; print devices/s.",
        discussion: """
            Start moto_server (pip install 'moto[server]'; python3 -m moto.server -p 5000) and pass its URL.
            Conduit's calls go through a proxy in this process that answers 429 ThrottlingException to any
            operation over its AWS quota (CreateThing 15/s, CreatePolicy 10/s, ...). The store is a fresh
            SQLite database in a temporary folder; the devices go into a fresh moto account.
            """
    )

    @Option(help: "The AWS stand-in, e.g. http://127.0.0.1:5000.") var moto: String
    @Option(help: "Devices to provision.") var devices = 1000
    @Option(help: "Attach this policy (made by the bench) instead of one policy per thing.") var policy: String?
    @Flag(help: "One shared policy with thing policy variables instead of one policy per thing (no CreatePolicy per device).")
    var sharedPolicy = false
    @Option(help: "Multiply every quota by this (1 = AWS's).") var quotaScale = 1.0
    @Option(help: "Jobs the provisioner runs at once.") var concurrency = 48
    @Flag(help: "Afterwards delete the integration and time the removal too.") var cleanup = false

    func validate() throws {
        guard URL(string: self.moto)?.host != nil else { throw ValidationError("--moto: a URL such as http://127.0.0.1:5000") }
        guard (1...100_000).contains(self.devices) else { throw ValidationError("--devices: 1 to 100000") }
        guard self.quotaScale > 0 else { throw ValidationError("--quota-scale: above 0") }
        if self.sharedPolicy, self.policy != nil { throw ValidationError("--shared-policy and --policy: give one or the other") }
    }

    func run() async throws {
        LogOutput.bootstrap(level: .warning, format: .text)
        let quotas = AWSRateLimiter.awsIoTQuotas.mapValues { $0 * self.quotaScale }
        let proxy = AWSQuotaProxy(upstream: URL(string: self.moto)!, quotas: quotas)
        let (portStream, portContinuation) = AsyncStream.makeStream(of: Int.self)
        let server = Task { try await proxy.run { port in portContinuation.yield(port) } }
        defer { server.cancel() }
        var ports = portStream.makeAsyncIterator()
        guard let port = await ports.next() else { throw ValidationError("the proxy did not start") }
        let endpoint = URL(string: "http://127.0.0.1:\(port)")!
        print("proxy on \(endpoint) in front of \(self.moto); quotas x\(self.quotaScale)")

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-bench-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try await SQLStore.open(.sqlite(path: directory.appendingPathComponent("conduit.sqlite").path), logger: Logger(label: "bench.store"))
        try await store.migrate()
        defer { Task { await store.shutdown() } }
        let own = AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "AKIACONDUITBENCH0001", secretAccessKey: "bench"))
        let hub = Hub(
            store: store, logger: Logger(label: "bench.hub"),
            aws: AWSEnvironment(
                ownCredentials: { _ in own }, stsEndpointURL: endpoint, quotas: quotas,
                endpointAllowlist: try AWSEndpointAllowlist(parsing: "\(endpoint.scheme ?? "http")://\(endpoint.host ?? ""):\(endpoint.port ?? 80)")
            )
        )
        let tenant = try await hub.access.ensureDefaultTenant()
        let admin = Principal(tenantID: tenant.id, role: .admin, actor: "bench")
        let account = String(format: "%06d%06d", Int.random(in: 100_000...999_999), Int.random(in: 0...999_999))
        let roleARN = "arn:aws:iam::\(account):role/conduit-bench"

        if let policy {
            let client = AWSClient(
                credentialProvider: AWSAssumeRoleCredentialProvider(
                    roleARN: roleARN, source: own, region: "us-east-1", endpointURL: URL(string: self.moto)
                )
            )
            let document = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#
            _ = try await AWSIoTClient(client: client, region: "us-east-1", endpointURL: URL(string: self.moto)).createPolicy(name: policy, document: document)
        }
        var draft = IntegrationDraft()
        draft.name = "bench"
        draft.region = "us-east-1"
        draft.endpointURL = .some(endpoint.absoluteString)
        draft.credentials = .init(roleARN: roleARN, externalID: "conduit-bench")
        draft.policy = self.policy.map { .init(name: $0) } ?? (self.sharedPolicy ? .init(shared: true) : .init(perThing: true))
        draft.thingGroup = .some("bench-fleet")
        draft.bind = .init(labels: ["bench"])
        let integration = try await hub.integrations.create(draft, by: admin)

        let registered = ContinuousClock.now
        for index in 0..<self.devices {
            let id = String(format: "bench-%06d", index)
            _ = try await hub.devices.create(.init(id: id, name: "Bench \(index)", labels: ["bench"]), by: admin)
            _ = try await hub.devices.perform(.accept, on: id, by: admin)
        }
        print("registered and accepted \(self.devices) devices in \(Self.seconds(ContinuousClock.now - registered))")

        let before = proxy.counts
        let progress = ProgressReporter(bar: ProgressBar(total: self.devices, title: "provisioning"))
        let provisioner = Provisioner(hub: hub, configuration: .init(concurrency: self.concurrency, reconcileInterval: nil))
        let started = ContinuousClock.now
        try await provisioner.drain(timeout: .seconds(3600)) { left in progress.update(done: max(0, self.devices - left)) }
        let elapsed = ContinuousClock.now - started
        progress.finish()
        let after = proxy.counts
        let overview = try await hub.integrations.overview(integration.id, by: admin)
        let seconds = Self.interval(elapsed)
        let rate = Double(overview.stateCounts[.provisioned] ?? 0) / seconds

        // What the quotas allow: the slowest operation per device decides.
        var bound = Double.infinity
        var limiting = ""
        var lines: [String] = []
        for (operation, calls) in after.calls.sorted(by: { $0.key < $1.key }) {
            let made = calls - (before.calls[operation] ?? 0)
            let throttled = (after.throttled[operation] ?? 0) - (before.throttled[operation] ?? 0)
            let admitted = made - throttled
            guard admitted > 0, let quota = quotas[operation] else { continue }
            let perDevice = Double(admitted) / Double(self.devices)
            let name = operation.padding(toLength: 26, withPad: " ", startingAt: 0)
            lines.append("  \(name)" + String(format: "%6d calls (%.2f per device) at %5.0f/s, %d throttled", admitted, perDevice, quota, throttled))
            if perDevice >= 0.5, quota / perDevice < bound {
                bound = quota / perDevice
                limiting = operation
            }
        }
        let throttledTotal = after.throttled.values.reduce(0, +) - before.throttled.values.reduce(0, +)
        print(String(format: "provisioned %d of %d devices in %.1f s: %.2f devices/s", overview.stateCounts[.provisioned] ?? 0, self.devices, seconds, rate))
        print(String(format: "the quotas allow %.2f devices/s (%@ at %.0f/s); reached %.1f%%", bound, limiting as NSString, quotas[limiting] ?? 0, 100 * rate / bound))
        print("throttling answers from the proxy: \(throttledTotal); devices failed: \(overview.stateCounts[.failed] ?? 0); latest errors: \(overview.latestErrors.count)")
        for line in lines { print(line) }
        for record in overview.latestErrors.prefix(5) { print("  error \(record.deviceID): \(record.lastError ?? "")") }

        if self.cleanup {
            let removal = ContinuousClock.now
            _ = try await hub.integrations.delete(integration.id, by: admin)
            let removing = ProgressReporter(bar: ProgressBar(total: self.devices, title: "removing"))
            try await provisioner.drain(timeout: .seconds(3600)) { left in removing.update(done: max(0, self.devices - left)) }
            removing.finish()
            let gone = try await hub.store.session.integrations.get(id: integration.id) == nil
            let took = Self.interval(ContinuousClock.now - removal)
            print(String(format: "removed %d devices in %.1f s: %.2f devices/s; integration %@", self.devices, took, Double(self.devices) / took, gone ? "gone" : "still deleting"))
        }
    }

    static func interval(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f s", self.interval(duration))
    }
}
