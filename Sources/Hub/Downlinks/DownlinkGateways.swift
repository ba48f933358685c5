import Backoff
import Crypto
import Foundation
import Logging
import MQTT
import MQTTClient
import Metrics
import NIOCore
import Store
import Synchronization

/// Where an integration's downlink gateway stands, as operators see it.
public struct DownlinkGatewayStatus: Sendable, Equatable {
    /// `host:port` it connects to.
    public var endpoint: String
    /// Connected and subscribed now.
    public var connected: Bool
    /// Why the last connection failed or ended, until it connects again.
    public var lastError: String?
}

/// Keeps one MQTT connection per active integration to its AWS IoT data endpoint, as the
/// integration's gateway thing (mutual TLS with the gateway's certificate, SNI), subscribed to
/// `{downlinkPrefix}/+/down` and to its things' shadows' `update/documents`. Each downlink is
/// written to its device's queue before AWS gets its PUBACK, and the session is persistent: what
/// AWS sends while Conduit is away or restarting waits in AWS (an hour by default) and comes when
/// the gateway is back.
public final class DownlinkGateways: Sendable {
    public struct Configuration: Sendable {
        /// The longest it waits before looking for integrations whose gateway changed, and
        /// renewing its leases.
        public var pollInterval: Duration
        /// How long a node's hold on a gateway connection lasts without renewal: a node that
        /// dies gives it up to another after this.
        public var leaseDuration: Duration
        /// Seconds between connection tries: doubling from the first to the longest.
        public var reconnectBackoff: Backoff

        /// This node's name in the leases: the same across its restarts, so that after a crash it
        /// takes its gateways again at once instead of waiting for its own leases to lapse.
        public var nodeID: String

        public init(
            nodeID: String = UUID().uuidString, pollInterval: Duration = .seconds(10), leaseDuration: Duration = .seconds(30),
            reconnectBackoff: Backoff = Backoff(first: 1, maximum: 60)
        ) {
            self.nodeID = nodeID
            self.pollInterval = pollInterval
            self.leaseDuration = leaseDuration
            self.reconnectBackoff = reconnectBackoff
        }
    }

    /// What a running connection was made from: when any of it changes, it is made again.
    struct ConnectionKey: Hashable, Sendable {
        var host: String
        var port: Int
        var clientID: String
        var certificateID: String
        var trustRoots: String?
        var topicFilter: String
        var tenantID: String
    }

    let hub: Hub
    let configuration: Configuration
    let logger: Logger

    public init(hub: Hub, configuration: Configuration = Configuration()) {
        self.hub = hub
        self.configuration = configuration
        self.logger = hub.logger
    }

    private struct Running {
        var key: ConnectionKey
        var client: MQTTClient
        var task: Task<Void, Never>
        /// Until when this node surely holds the lease (renewed every poll).
        var heldUntil: ContinuousClock.Instant
    }

    /// Keeps the connections in step with the integrations until cancelled. Several nodes on one
    /// database each run the gateways they hold the lease of, so that no two connect as the
    /// same client id (AWS IoT would close one for the other, back and forth).
    public func run() async {
        await self.hub.integrations.ensureGateways()
        let owner = self.configuration.nodeID
        let leases = self.hub.store.session.gatewayLeases
        var running: [String: Running] = [:]
        func stop(_ id: String) async {
            guard let entry = running.removeValue(forKey: id) else { return }
            entry.task.cancel()
            await entry.task.value
            self.logger.info("downlink gateway stopped", metadata: [LogKey.integrationID: "\(id)"])
        }
        while !Task.isCancelled {
            let generation = self.hub.gatewayDoorbell.generation
            do {
                let wanted = try await self.wantedConnections()
                var held = Set<String>()
                for id in wanted.keys.sorted() {
                    let now = self.hub.now()
                    let until = now.addingTimeInterval(Double(self.configuration.leaseDuration.components.seconds))
                    if try await leases.acquire(integrationID: id, owner: owner, now: now, until: until) {
                        held.insert(id)
                        running[id]?.heldUntil = .now + self.configuration.leaseDuration
                    }
                }
                for (id, entry) in running where wanted[id]?.key != entry.key || !held.contains(id) {
                    await stop(id)
                    if wanted[id] == nil { try? await leases.release(integrationID: id, owner: owner) }
                }
                for (id, connection) in wanted where running[id] == nil && held.contains(id) {
                    let client = MQTTClient(configuration: connection.configuration, logger: self.logger)
                    let task = Task { [hub = self.hub, integration = connection.integration] in
                        await client.run { message in
                            try await Self.receive(message, from: integration, hub: hub)
                        }
                    }
                    running[id] = Running(key: connection.key, client: client, task: task, heldUntil: .now + self.configuration.leaseDuration)
                    self.logger.info(
                        "downlink gateway started",
                        metadata: [LogKey.integrationID: "\(id)", "conduit.endpoint": "\(connection.key.host):\(connection.key.port)"]
                    )
                }
            } catch {
                self.logger.notice("cannot read the integrations' downlink gateways", metadata: ["error": "\(error)"])
                // Without the store this node cannot renew its leases: a connection whose lease
                // may have lapsed stops, before another node takes it over.
                for (id, entry) in running where entry.heldUntil <= .now + self.configuration.pollInterval {
                    await stop(id)
                }
            }
            self.hub.gatewayClients.withLock { clients in
                clients = running.mapValues { (endpoint: "\($0.key.host):\($0.key.port)", client: $0.client) }
            }
            await self.hub.gatewayDoorbell.wait(since: generation, timeout: self.configuration.pollInterval)
        }
        for id in Array(running.keys) {
            await stop(id)
            // Another node may take over at once (from a task of its own: this one is cancelled).
            await Task { try? await leases.release(integrationID: id, owner: owner) }.value
        }
        self.hub.gatewayClients.withLock { $0 = [:] }
    }

    static func receive(_ message: MQTTClientMessage, from integration: Integration, hub: Hub) async throws {
        // A shadow changed in AWS: its device hears it.
        if let shadow = ShadowTopic(message.topic), shadow.answer == .documents {
            try await hub.deviceShadows.documentsFromAWS(topic: shadow, payload: Array(message.payload.readableBytesView), integration: integration)
            return
        }
        // Data from AWS on an ingest topic: into the device's history, for the rules.
        if let filters = integration.settings.ingestTopics, !MQTTTopic.matches(filter: "\(integration.settings.downlinkPrefix)/+/down", topic: message.topic) {
            try await hub.messages.ingestFromAWS(message, integration: integration, filters: filters)
            return
        }
        let outcome = try await hub.downlinks.receive(topic: message.topic, payload: Array(message.payload.readableBytesView), from: integration)
        if case .skipped(let reason) = outcome {
            hub.logger.notice("downlink skipped", metadata: [LogKey.integrationID: "\(integration.id)", "reason": "\(reason)"])
        }
    }

    /// The connections that should run: one for each active integration whose gateway is
    /// provisioned, with the certificate AWS has.
    private func wantedConnections() async throws -> [String: (key: ConnectionKey, configuration: MQTTClientConfiguration, integration: Integration)] {
        let session = self.hub.store.session
        var wanted: [String: (key: ConnectionKey, configuration: MQTTClientConfiguration, integration: Integration)] = [:]
        for integration in try await session.integrations.list(status: .active) where integration.active {
            // What the connection needs in AWS: an active certificate attached to the thing and
            // the policy. A repair of anything else (attributes, the policy's text) goes on while
            // it stays connected.
            guard let record = try await session.awsThings.get(integrationID: integration.id, deviceID: ProvisioningJob.gatewayDeviceID),
                record.wanted == .active, record.progress.certificateStatus == .active, record.progress.principalAttached,
                record.progress.attachedPolicy != nil
            else { continue }
            do {
                if let connection = try self.connection(for: integration, gateway: record) {
                    wanted[integration.id] = (connection.key, connection.configuration, integration)
                }
            } catch {
                self.logger.warning(
                    "cannot set up a downlink gateway", metadata: [LogKey.integrationID: "\(integration.id)", "error": "\(error)"]
                )
            }
        }
        return wanted
    }

    /// The gateway's connection settings, or nil when it has no endpoint to go to yet.
    func connection(for integration: Integration, gateway record: ProvisioningJob) throws -> (key: ConnectionKey, configuration: MQTTClientConfiguration)? {
        let settings = integration.settings
        guard let certificateID = record.progress.certificateID, let certificate = record.progress.certificatePem else { return nil }
        let sealedKey: String?
        let binding: SecretBinding
        if let registered = settings.gatewayCertificate {
            // The operator's certificate, once AWS has it; its key is kept with the integration.
            guard certificate == registered else { return nil }
            sealedKey = integration.credentials.sealedGatewayPrivateKey
            binding = .gatewayKey(tenantID: integration.tenantID, integrationID: integration.id)
        } else {
            sealedKey = record.sealedPrivateKey
            binding = .thingKey(record)
        }
        guard let sealedKey else {
            throw HubError.conflict("no_gateway_key", "the gateway's private key is missing; give the gateway certificate and key again")
        }
        let privateKey = try self.hub.secrets.open(sealedKey, for: binding)
        let host: String
        let port: Int
        if let endpoint = settings.mqttEndpoint {
            guard let parsed = IntegrationRules.hostAndPort(endpoint) else { return nil }
            (host, port) = parsed
        } else if let dataEndpoint = integration.dataEndpoint {
            (host, port) = (dataEndpoint, 8883)
        } else {
            return nil
        }
        try self.hub.connections.checkMQTTEndpoint(host: host, port: port, region: settings.region)
        let clientID = ProvisioningPlan.gatewayThingName(integration.id)
        let filters = ["\(settings.downlinkPrefix)/+/down"] + ProvisioningPlan.shadowDocumentsFilters + (settings.ingestTopics ?? []).map(IngestTopics.subscription)
        let key = ConnectionKey(
            host: host, port: port, clientID: clientID, certificateID: certificateID, trustRoots: settings.mqttTrustRoots,
            topicFilter: filters.joined(separator: "\u{0}"), tenantID: integration.tenantID
        )
        let configuration = MQTTClientConfiguration(
            host: host, port: port, clientIdentifier: clientID,
            tls: .init(certificateChainPEM: certificate, privateKeyPEM: privateKey, trustRootsPEM: settings.mqttTrustRoots),
            subscriptions: filters, reconnectBackoff: self.configuration.reconnectBackoff, cleanSession: false
        )
        return (key, configuration)
    }
}
