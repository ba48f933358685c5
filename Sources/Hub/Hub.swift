import Crypto
import Foundation
import Logging
import MQTTBroker
import MQTTClient
import Store
import Synchronization

/// The broker as the hub sees it, once it runs: it closes devices' connections and carries
/// messages to them.
public protocol DeviceConnectionControl: Sendable {
    /// Ends the device's connection and session, if it has one.
    func disconnectDevice(_ deviceID: String)
    /// Sends a message to whoever subscribed to its topic (a downlink to its device).
    func send(_ message: MQTTBrokerMessage)
    /// The delivery ids of the messages the device's session holds already.
    func pendingDeliveryIDs(_ deviceID: String) -> Set<Int>
    /// Forgets the retained messages on the device's topics: it was deleted or decommissioned.
    func forgetRetainedMessages(ofDevice deviceID: String)
    /// Closes the device's connection here, as it connected to another node that holds its session now.
    func handOver(_ deviceID: String) -> Bool
    /// True when the device is connected here.
    func isConnected(_ deviceID: String) -> Bool
}

/// The domain: the registry, access control and the event log over one store.
///
/// It knows nothing of HTTP or sockets; the API, the CLI and (later) the broker call it.
public final class Hub: Sendable {
    public let store: SQLStore
    public let logger: Logger
    let clock: @Sendable () -> Date
    /// How many messages each device's history keeps.
    public let messageHistoryLimit: Int
    private let connectionControl = Mutex<(any DeviceConnectionControl)?>(nil)
    /// Seals AWS secret keys and device private keys at rest.
    public let secrets: SecretBox
    /// Signs devices' CSRs, when the operator gave the device CA's key.
    public let deviceCA: DeviceCA?
    let connections: AWSConnections
    /// Rung when provisioning work is written, so that workers start at once.
    let provisioningDoorbell = Doorbell()
    /// Messages taken back from AWS on ingest topics.
    let awsIngest = AWSIngest()
    /// Rung when webhook deliveries are queued or released.
    let webhookDoorbell = Doorbell()
    /// How webhooks are called.
    public let webhookEnvironment: WebhookEnvironment
    /// Rung when messages are written to the uplink outbox.
    let uplinkDoorbell = Doorbell()
    let uplinkMarks = UplinkQueueMarks()
    /// Which shards of the outbox this node forwards.
    public let uplinkShards = UplinkShards()
    /// This node's id while ``ClusterMembership`` runs; nil for one process alone.
    let clusterNode = Mutex<String?>(nil)
    /// The epoch of each device's connection to this node.
    let localEpochs = Mutex<[String: Int]>([:])
    let uplinkBacklog: UplinkBacklog
    /// Device messages on their way into the store, in group commits.
    let ingest: MessageIngest
    /// Devices whose downlink queue is being handed to the broker, and whether another pass was asked for.
    let downlinkPasses = Mutex<[String: Bool]>([:])
    /// Downlinks their device acknowledged whose removal from the queue is under way: the
    /// broker no longer holds them, and no pass may send them again.
    let acknowledgedDownlinks = Mutex<Set<Int>>([])
    /// Rung when an integration or its gateway changed, so that its connection is made again.
    let gatewayDoorbell = Doorbell()
    /// Each device's shadow requests, in order.
    let shadowRequests = ShadowRequestLines()
    /// The shadow versions devices have heard of.
    let shadowVersions = ShadowVersionsSent()
    /// Rung per device when one of its messages is stored, so that its live views show it at once.
    let messageBells = Doorbells()
    /// Failed console sign-ins, per address and email.
    let signInThrottle = SignInThrottle()
    /// bcrypt for console passwords, a few at a time off the cooperative threads.
    let passwordHasher = PasswordHasher()
    /// The running gateway connections, by integration.
    let gatewayClients = Mutex<[String: (endpoint: String, client: MQTTClient)]>([:])

    /// The integration's gateway connection in this process, if one runs.
    public func gatewayStatus(integrationID: String) -> DownlinkGatewayStatus? {
        guard let entry = self.gatewayClients.withLock({ $0[integrationID] }) else { return nil }
        return DownlinkGatewayStatus(endpoint: entry.endpoint, connected: entry.client.isConnected, lastError: entry.client.lastError)
    }

    /// - Parameters:
    ///   - secrets: the master key's box. The default is a key of this process only, which is
    ///     right for tests; `conduit` always passes the configured one, or secrets sealed now
    ///     could not be opened after a restart.
    ///   - aws: how the hub reaches AWS.
    ///   - uplinkBacklogLimit: messages each integration's outbox holds at most; beyond, QoS 1
    ///     messages of its devices are refused until it drains.
    public init(
        store: SQLStore, logger: Logger = Logger(label: "conduit.hub"), messageHistoryLimit: Int = 1000,
        secrets: SecretBox = SecretBox(key: SymmetricKey(size: .bits256)), aws: AWSEnvironment = AWSEnvironment(),
        uplinkBacklogLimit: Int = 100_000, deviceCA: DeviceCA? = nil, webhooks: WebhookEnvironment = WebhookEnvironment(),
        clock: @escaping @Sendable () -> Date = Date.init
    ) {
        self.webhookEnvironment = webhooks
        self.deviceCA = deviceCA
        self.uplinkBacklog = UplinkBacklog(limit: uplinkBacklogLimit)
        self.store = store
        self.logger = logger
        self.messageHistoryLimit = messageHistoryLimit
        self.clock = clock
        self.secrets = secrets
        self.connections = AWSConnections(environment: aws, secrets: secrets, logger: logger)
        let downlinksForRules = WeakHub()
        self.ingest = MessageIngest(
            store: store, backlog: self.uplinkBacklog, uplinkDoorbell: self.uplinkDoorbell, uplinkMarks: self.uplinkMarks, messageBells: self.messageBells,
            historyLimit: messageHistoryLimit, webhookDoorbell: self.webhookDoorbell,
            rulesQueuedDownlinks: { devices in
                guard let hub = downlinksForRules.hub else { return }
                Task {
                    for device in devices {
                        await hub.downlinks.sendPending(to: device)
                        await hub.clusterRouting.tell(device, .downlink)
                    }
                }
            }
        )
        downlinksForRules.hub = self
    }

    /// Lets the hub disconnect devices whose access ends (rejected, decommissioned, deleted, new secret).
    public func attach(_ control: any DeviceConnectionControl) {
        self.connectionControl.withLock { $0 = control }
    }

    /// Ends the device's connection, here and on the node holding it if another.
    func disconnectDevice(_ deviceID: String) {
        let control = self.connectionControl.withLock { $0 }
        control?.disconnectDevice(deviceID)
        let routing = self.clusterRouting
        Task { await routing.tell(deviceID, .revoke) }
    }

    /// Ends the device's connection and forgets what it left in the broker (its retained
    /// messages, its persistent session), so that a later device of the same id, in any tenant,
    /// never receives them. Every other node is told before this returns: what the device
    /// retained may be on any node it ever connected to.
    func forgetDevice(_ deviceID: String) async {
        let control = self.connectionControl.withLock { $0 }
        control?.disconnectDevice(deviceID)
        control?.forgetRetainedMessages(ofDevice: deviceID)
        do {
            // A session no node holds in memory lives in the store only.
            try await self.store.transaction { try await $0.mqttSessions.delete(clientID: deviceID) }
        } catch {
            self.logger.warning("cannot remove a forgotten device's session", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
        }
        await self.clusterRouting.tellEveryNode(deviceID, .forget)
    }

    var broker: (any DeviceConnectionControl)? { self.connectionControl.withLock { $0 } }

    public var access: AccessControl { AccessControl(hub: self) }
    public var devices: DeviceRegistry { DeviceRegistry(hub: self) }
    public var events: EventLog { EventLog(hub: self) }
    public var messages: MessageHistory { MessageHistory(hub: self) }
    public var integrations: Integrations { Integrations(hub: self) }
    public var downlinks: Downlinks { Downlinks(hub: self) }
    public var shadows: Shadows { Shadows(hub: self) }
    public var deviceShadows: DeviceShadows { DeviceShadows(hub: self) }
    public var cluster: Cluster { Cluster(hub: self) }
    public var clusterRouting: ClusterRouting { ClusterRouting(hub: self) }
    public var things: Things { Things(hub: self) }
    public var consoleAccounts: ConsoleAccounts { ConsoleAccounts(hub: self) }
    public var rules: Rules { Rules(hub: self) }
    public var webhooks: Webhooks { Webhooks(hub: self) }

    /// The time now, at the precision the store keeps.
    func now() -> Date { self.clock().truncatedToStorePrecision }
}

/// Metadata keys for Conduit's logs.
public enum LogKey {
    public static let deviceID = "conduit.device_id"
    public static let tenantID = "conduit.tenant_id"
    public static let tokenID = "conduit.token_id"
    public static let event = "conduit.event"
    public static let integrationID = "conduit.integration_id"
}

extension Hub {
    /// Whether the store answers now: what `/readyz` reports.
    public func storeAnswers() async -> Bool {
        await self.store.ping()
    }
}

/// The hub as its own parts' closures hold it: weakly, so that a hub is freed with its last user.
final class WeakHub: @unchecked Sendable {
    private let lock = Mutex<Void>(())
    private weak var _hub: Hub?

    var hub: Hub? {
        get { self.lock.withLock { _ in self._hub } }
        set { self.lock.withLock { _ in self._hub = newValue } }
    }
}
