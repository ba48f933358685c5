import ArgumentParser
import Foundation
import Hub
import Store
import Synchronization

/// The tenant an admin command acts in, and the store it opens.
struct TenantOptions: ParsableArguments {
    @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
    @OptionGroup var storeOptions: StoreOptions

    /// Runs `body` with the hub and an admin of the tenant; domain errors become messages.
    func run<R>(_ body: (Hub, Principal) async throws -> R) async throws -> R {
        try await reportingErrors {
            try await withAdminHub(self.storeOptions) { hub in
                try await body(hub, try await DevicesCommand.principal(hub, tenant: self.tenant))
            }
        }
    }
}

/// An integration's AWS credentials on the command line: an access key, a role, or Conduit's own.
struct CredentialOptions: ParsableArguments {
    @Option(help: "Access key id.") var accessKeyId: String?
    @Option(help: "Secret access key; - reads it from standard input.") var secretAccessKey: String?
    @Option(help: "A role to assume: arn:aws:iam::ACCOUNT:role/NAME.") var roleArn: String?
    @Option(help: "The ExternalId the role's trust policy asks for.") var externalId: String?
    @Flag(help: "Use Conduit's own AWS credentials.") var defaultCredentials = false

    var given: Bool {
        self.accessKeyId != nil || self.secretAccessKey != nil || self.roleArn != nil || self.externalId != nil || self.defaultCredentials
    }

    /// The credentials as given; a secret of `-` is read from standard input.
    func draft() -> IntegrationDraft.Credentials {
        var secret = self.secretAccessKey
        if secret == "-" { secret = readLine(strippingNewline: true) }
        return .init(
            accessKeyID: self.accessKeyId, secretAccessKey: secret, roleARN: self.roleArn, externalID: self.externalId,
            source: self.defaultCredentials ? "default" : nil
        )
    }
}

struct IntegrationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "integrations", abstract: "Manage AWS IoT Core integrations from the command line.",
        subcommands: [Create.self, List.self, Show.self, Update.self, Delete.self, Reconcile.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add an integration; its credentials are checked against AWS first. Prints its id.",
            discussion: """
                Credentials: --access-key-id with --secret-access-key (give - to read the secret from standard input,
                which keeps it out of the process list), or --role-arn with --external-id (assumed from Conduit's own
                credentials), or --default-credentials (Conduit's own chain: environment, profile, container, instance).
                Devices: --device ID (repeat), --label L (repeat; a device with any of them), or --all.
                Run `conduit serve` (or this command's --wait) for the devices to be provisioned.
                """
        )
        @Option(help: "A name, unique in the tenant.") var name: String
        @Option(help: "The AWS region, e.g. eu-west-1.") var region: String
        @Option(help: "An endpoint instead of AWS IoT's own (VPC, FIPS, a local stack).") var endpointUrl: String?
        @OptionGroup var credentials: CredentialOptions
        @Option(help: "Attach this existing AWS IoT policy to every certificate (default: a least-privilege policy per thing).")
        var policy: String?
        @Flag(
            help: "Make one least-privilege policy for all the things, scoped by AWS IoT's thing policy variables, instead of one per thing (no CreatePolicy per device)."
        )
        var sharedPolicy = false
        @Option(help: "Thing group for every thing; made when missing.") var thingGroup: String?
        @Option(name: .customLong("thing-attribute"), help: "A device attribute to copy to the thing; at most 2.") var thingAttributes: [String] = []
        @Option(help: "Uplink topic template; placeholders {deviceId}, {deviceName}, {subtopic}. Default: conduit/{deviceId}/up")
        var uplinkTopic: String?
        @Option(help: "raw or envelope. Default: raw") var payloadFormat: String?
        @Option(help: "Downlink topic prefix. Default: conduit/devices") var downlinkPrefix: String?
        @Option(help: "host:port of the MQTT data endpoint for downlinks. Default: the account's iot:Data-ATS endpoint on 8883.")
        var mqttEndpoint: String?
        @Option(help: "A PEM file of the CA certificates the data endpoint must chain to. Default: the system's trust store.")
        var mqttTrustRoots: String?
        @Option(help: "The downlink gateway's certificate (PEM file) from your own CA, registered in AWS without its CA. Default: AWS signs one.")
        var gatewayCert: String?
        @Option(help: "The private key (PEM file) of --gateway-cert.") var gatewayKey: String?
        @Flag(help: "Create it inactive: nothing is done in AWS until it is activated.") var inactive = false
        @Option(name: .customLong("device"), help: "Bind this device; repeat for more.") var devices: [String] = []
        @Option(name: .customLong("label"), help: "Bind devices with this label; repeat for more.") var labels: [String] = []
        @Flag(help: "Bind every device of the tenant.") var all = false
        @Flag(help: "Provision the bound accepted devices now, in this process, with a progress bar.") var wait = false
        @OptionGroup var options: TenantOptions

        func validate() throws {
            let binds = [!self.devices.isEmpty, !self.labels.isEmpty, self.all].filter { $0 }.count
            guard binds == 1 else { throw ValidationError("give --device, --label or --all, one of them") }
            guard (self.gatewayCert == nil) == (self.gatewayKey == nil) else { throw ValidationError("give --gateway-cert and --gateway-key together") }
        }

        /// The gateway certificate and key of the files named.
        static func gateway(certificate: String, key: String) throws -> IntegrationDraft.Gateway {
            .init(certificatePEM: try self.read(certificate, option: "--gateway-cert"), privateKeyPEM: try self.read(key, option: "--gateway-key"))
        }

        static func read(_ path: String, option: String) throws -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw ValidationError("\(option): cannot read \(path): \(error.localizedDescription)")
            }
        }

        func run() async throws {
            var draft = IntegrationDraft()
            draft.name = self.name
            draft.region = self.region
            if let endpointUrl { draft.endpointURL = .some(endpointUrl) }
            draft.credentials = self.credentials.draft()
            if self.sharedPolicy, self.policy != nil { throw ValidationError("--shared-policy and --policy: give one or the other") }
            draft.policy = self.policy.map { .init(name: $0) } ?? (self.sharedPolicy ? .init(shared: true) : .init(perThing: true))
            if let thingGroup { draft.thingGroup = .some(thingGroup) }
            draft.thingAttributes = self.thingAttributes
            draft.uplinkTopic = self.uplinkTopic
            draft.payloadFormat = self.payloadFormat
            draft.downlinkPrefix = self.downlinkPrefix
            draft.active = !self.inactive
            if let mqttEndpoint { draft.mqttEndpoint = .some(mqttEndpoint) }
            if let mqttTrustRoots { draft.mqttTrustRoots = .some(try Self.read(mqttTrustRoots, option: "--mqtt-trust-roots")) }
            if let gatewayCert, let gatewayKey { draft.gateway = .some(try Self.gateway(certificate: gatewayCert, key: gatewayKey)) }
            draft.bind = self.all ? .init(all: true) : self.labels.isEmpty ? .init(devices: self.devices) : .init(labels: self.labels)
            try await self.options.run { hub, principal in
                let integration = try await hub.integrations.create(draft, by: principal)
                print(integration.id)
                if self.wait { try await IntegrationsCommand.provision(hub, title: "provisioning") }
            }
        }
    }

    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Change an integration: only the options given change. New credentials are checked against AWS first.",
            discussion: """
                Credentials are replaced as a whole: --access-key-id with --secret-access-key (- reads it from standard
                input), --role-arn with --external-id, or --default-credentials. A binding is replaced as a whole too:
                --device ID (repeat), --label L (repeat), or --all. --aws-gateway-cert goes back to a gateway certificate
                AWS signs; --no-mqtt-endpoint and --no-mqtt-trust-roots go back to the data endpoint and the system's trust.
                """
        )
        @Argument(help: "The integration id.") var id: String
        @Option(help: "A new name.") var name: String?
        @OptionGroup var credentials: CredentialOptions
        @Option(help: "Uplink topic template; placeholders {deviceId}, {deviceName}, {subtopic}.") var uplinkTopic: String?
        @Option(help: "raw or envelope.") var payloadFormat: String?
        @Option(help: "Downlink topic prefix.") var downlinkPrefix: String?
        @Option(help: "host:port of the MQTT data endpoint for downlinks.") var mqttEndpoint: String?
        @Flag(help: "Back to the account's iot:Data-ATS endpoint on 8883.") var noMqttEndpoint = false
        @Option(help: "A PEM file of the CA certificates the data endpoint must chain to.") var mqttTrustRoots: String?
        @Flag(help: "Back to the system's trust store.") var noMqttTrustRoots = false
        @Option(help: "The downlink gateway's certificate (PEM file) from your own CA.") var gatewayCert: String?
        @Option(help: "The private key (PEM file) of --gateway-cert.") var gatewayKey: String?
        @Flag(help: "Back to a gateway certificate AWS signs.") var awsGatewayCert = false
        @Flag(help: "Activate it.") var activate = false
        @Flag(help: "Deactivate it: it keeps what it made in AWS but does no new work.") var deactivate = false
        @Option(name: .customLong("device"), help: "Bind this device; repeat for more.") var devices: [String] = []
        @Option(name: .customLong("label"), help: "Bind devices with this label; repeat for more.") var labels: [String] = []
        @Flag(help: "Bind every device of the tenant.") var all = false
        @OptionGroup var options: TenantOptions

        func validate() throws {
            guard [!self.devices.isEmpty, !self.labels.isEmpty, self.all].filter({ $0 }).count <= 1 else {
                throw ValidationError("give at most one of --device, --label and --all")
            }
            guard (self.gatewayCert == nil) == (self.gatewayKey == nil) else { throw ValidationError("give --gateway-cert and --gateway-key together") }
            guard !(self.gatewayCert != nil && self.awsGatewayCert) else { throw ValidationError("give --gateway-cert or --aws-gateway-cert, not both") }
            guard !(self.mqttEndpoint != nil && self.noMqttEndpoint) else { throw ValidationError("give --mqtt-endpoint or --no-mqtt-endpoint, not both") }
            guard !(self.mqttTrustRoots != nil && self.noMqttTrustRoots) else {
                throw ValidationError("give --mqtt-trust-roots or --no-mqtt-trust-roots, not both")
            }
            guard !(self.activate && self.deactivate) else { throw ValidationError("give --activate or --deactivate, not both") }
        }

        func run() async throws {
            var draft = IntegrationDraft()
            draft.name = self.name
            if self.credentials.given { draft.credentials = self.credentials.draft() }
            draft.uplinkTopic = self.uplinkTopic
            draft.payloadFormat = self.payloadFormat
            draft.downlinkPrefix = self.downlinkPrefix
            if let mqttEndpoint { draft.mqttEndpoint = .some(mqttEndpoint) } else if self.noMqttEndpoint { draft.mqttEndpoint = .some(nil) }
            if let mqttTrustRoots {
                draft.mqttTrustRoots = .some(try Create.read(mqttTrustRoots, option: "--mqtt-trust-roots"))
            } else if self.noMqttTrustRoots {
                draft.mqttTrustRoots = .some(nil)
            }
            if let gatewayCert, let gatewayKey {
                draft.gateway = .some(try Create.gateway(certificate: gatewayCert, key: gatewayKey))
            } else if self.awsGatewayCert {
                draft.gateway = .some(nil)
            }
            if self.activate { draft.active = true } else if self.deactivate { draft.active = false }
            if self.all { draft.bind = .init(all: true) } else if !self.labels.isEmpty { draft.bind = .init(labels: self.labels) } else if !self.devices.isEmpty {
                draft.bind = .init(devices: self.devices)
            }
            try await self.options.run { hub, principal in
                let integration = try await hub.integrations.update(self.id, with: draft, by: principal)
                print("updated \(integration.id)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List integrations: id, name, region, status, devices per state.")
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                for integration in try await hub.integrations.list(by: principal) {
                    let overview = try await hub.integrations.overview(integration.id, by: principal)
                    let status = integration.status == .deleting ? "deleting" : integration.active ? "active" : "inactive"
                    print("\(integration.id)\t\(integration.name)\t\(integration.settings.region)\t\(status)\t\(IntegrationsCommand.counts(overview))")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an integration's settings (never its secret), its devices and its latest errors.")
        @Argument(help: "The integration id.") var id: String
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                let overview = try await hub.integrations.overview(self.id, by: principal)
                let integration = overview.integration
                let settings = integration.settings
                let credentials: String
                switch integration.credentials.kind {
                case .accessKey: credentials = "access key \(integration.credentials.accessKeyID ?? "")"
                case .role: credentials = "role \(integration.credentials.roleARN ?? "") (external id \(integration.credentials.externalID ?? "none"))"
                case .default: credentials = "Conduit's own"
                }
                let binding = settings.binding
                let bind = binding.all ? "all devices" : binding.labels.isEmpty ? "devices \(binding.devices.joined(separator: ", "))" : "labels \(binding.labels.joined(separator: ", "))"
                let lines = [
                    ("id", integration.id), ("name", integration.name), ("status", integration.status == .deleting ? "deleting" : integration.active ? "active" : "inactive"),
                    ("region", settings.region), ("endpoint url", settings.endpointURL ?? "AWS's own"),
                    ("data endpoint", integration.dataEndpoint ?? "unknown"), ("credentials", credentials),
                    ("policy", IntegrationsCommand.policy(settings)), ("thing group", settings.thingGroup ?? "none"),
                    ("uplink topic", settings.uplinkTopic), ("payload format", settings.payloadFormat), ("downlink prefix", settings.downlinkPrefix),
                    ("binds", bind), ("devices", IntegrationsCommand.counts(overview)),
                    ("mqtt endpoint", settings.mqttEndpoint ?? "the data endpoint, port 8883"),
                    ("gateway", IntegrationsCommand.gateway(overview)),
                ]
                for (name, value) in lines { print("\(name.padding(toLength: 16, withPad: " ", startingAt: 0))\(value)") }
                for record in overview.latestErrors {
                    print("error           \(record.deviceID) (\(record.attempts) attempts): \(record.lastError ?? "")")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete an integration: every certificate, policy and thing it made in AWS goes, then its thing group, then it.",
            discussion: "Without --no-wait, the removal runs here with a progress bar; with it, `conduit serve` does it."
        )
        @Argument(help: "The integration id.") var id: String
        @Flag(help: "Only mark it deleted; `conduit serve` removes what it made.") var noWait = false
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                _ = try await hub.integrations.delete(self.id, by: principal)
                guard !self.noWait else {
                    print("deleting \(self.id); conduit serve removes its devices from AWS")
                    return
                }
                try await IntegrationsCommand.provision(hub, title: "removing")
                if try await hub.store.session.integrations.get(id: self.id) == nil {
                    print("deleted \(self.id)")
                } else {
                    let overview = try await hub.integrations.overview(self.id, by: principal)
                    print("deleting \(self.id): \(IntegrationsCommand.counts(overview)); see `conduit integrations show \(self.id)`")
                    throw ExitCode(1)
                }
            }
        }
    }

    struct Reconcile: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare every provisioned device with AWS and repair what was changed or deleted there; prints each repair."
        )
        @Argument(help: "The integration id.") var id: String
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                let drift = try await hub.integrations.reconcile(self.id, by: principal)
                guard !drift.isEmpty else {
                    print("no drift: AWS holds what Conduit made")
                    return
                }
                try await IntegrationsCommand.provision(hub, title: "repairing")
                for device in drift {
                    for repair in device.repairs { print("\(device.deviceID)\t\(repair)") }
                }
                let overview = try await hub.integrations.overview(self.id, by: principal)
                print("repaired \(drift.count) device\(drift.count == 1 ? "" : "s"); \(IntegrationsCommand.counts(overview))")
            }
        }
    }

    /// Runs the provisioner here until nothing is left to do now, with a progress bar of the jobs left.
    static func provision(_ hub: Hub, title: String) async throws {
        let total = try await hub.store.session.awsThings.countNeedingWork()
        let progress = ProgressReporter(bar: ProgressBar(total: total, title: title))
        try await Provisioner(hub: hub, configuration: .init(reconcileInterval: nil)).drain(timeout: .seconds(3600)) { left in
            progress.update(done: max(0, total - left))
        }
        progress.finish()
    }

    /// The downlink gateway: its thing, its state and where its certificate comes from.
    static func gateway(_ overview: Integrations.Overview) -> String {
        let integration = overview.integration
        var text = Integrations.gatewayThingName(integration.id)
        text += ", " + (overview.gateway?.state.rawValue ?? "not made yet")
        text += integration.settings.gatewayCertificate == nil ? ", certificate signed by AWS" : ", certificate of your own CA"
        if let error = overview.gateway?.lastError { text += ", last error: \(error)" }
        return text
    }

    static func policy(_ settings: IntegrationSettings) -> String {
        switch settings.policyMode {
        case .perThing: "one per thing"
        case .shared: "one shared by all things (thing policy variables)"
        case .named(let name): name
        }
    }

    static func counts(_ overview: Integrations.Overview) -> String {
        guard overview.deviceCount > 0 else { return "no devices" }
        return AWSProvisioningState.allCases.compactMap { state in overview.stateCounts[state].map { "\($0) \(state.rawValue)" } }
            .joined(separator: ", ")
    }
}

/// A progress bar several tasks may report to.
final class ProgressReporter: Sendable {
    private let bar: Mutex<ProgressBar>

    init(bar: ProgressBar) {
        self.bar = Mutex(bar)
    }

    func update(done: Int) {
        self.bar.withLock { $0.set(done: done) }
    }

    func finish() {
        self.bar.withLock { $0.finish() }
    }
}
