import ArgumentParser
import Foundation
import Console
import HTTPAPI
import Hub
import Hummingbird
import Logging
import MQTTBroker
import NIOCore
import Metrics
import Prometheus
import ServiceLifecycle
import Synchronization
import Store

/// `conduit serve`: migrates the store, then serves the API until SIGINT or SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub: the HTTP API and web console, the MQTT broker, and the AWS workers.",
        discussion: """
            Each setting below is read from its flag, else its environment variable, else its key in the config file (--config), else its default. A config file with an unknown key, or a value of the wrong type, stops serve with the key's name; an unknown CONDUIT_ variable is warned about, with the nearest known name.

            The HTTP and MQTT listeners are bound before the store is opened, so a start that fails on a port in use leaves nothing behind. On a store without any API token, the first start logs one bootstrap admin token; make others with `conduit tokens create --role admin`.
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp(SettingsCatalog.help("Address the HTTP API and the console listen on", key: "http.host", default: "127.0.0.1"), valueName: "host"))
    var httpHost: String?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Port of the HTTP API and the console; 0 picks a free one", key: "http.port", default: "8080"), valueName: "port"))
    var httpPort: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Seconds an HTTP connection may sit without a whole request head, or idle between requests, before it is closed (slow or stalled clients cannot hold connections open)",
                key: "http.idleTimeout", default: "30"
            ),
            valueName: "seconds"
        )
    )
    var httpIdleTimeout: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Address the MQTT broker listens on", key: "mqtt.host", default: "127.0.0.1"), valueName: "host"))
    var mqttHost: String?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Port of the MQTT broker's plaintext listener; 0 turns it off (devices then connect over TLS only)", key: "mqtt.port", default: "1883"), valueName: "port"))
    var mqttPort: Int?

    @Flag(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Let any MQTT client connect without credentials and use any topic, for development and conformance suites only",
                key: "mqtt.anonymous", default: "false"
            )
        )
    )
    var mqttAnonymous = false

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help("Port of the MQTT TLS listener, started when a certificate and key are set", key: "mqtt.tls.port", default: "8883"),
            valueName: "port"
        )
    )
    var mqttTlsPort: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("The broker's TLS certificate chain (PEM)", key: "mqtt.tls.cert"), valueName: "file"))
    var mqttTlsCert: String?

    @Option(help: ArgumentHelp(SettingsCatalog.help("The broker's TLS private key (PEM)", key: "mqtt.tls.key"), valueName: "file"))
    var mqttTlsKey: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "CA certificates (PEM) that sign device certificates; a device may then log in with the certificate enrolled for it (POST /v1/devices/{id}/certificate)",
                key: "mqtt.tls.ca"
            ),
            valueName: "file"
        )
    )
    var mqttTlsCa: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "The private key (PEM) of the device CA, the first certificate in --mqtt-tls-ca: Conduit then signs devices' CSRs at enrolment",
                key: "mqtt.tls.caKey"
            ),
            valueName: "file"
        )
    )
    var mqttTlsCaKey: String?

    @Flag(
        help: ArgumentHelp(
            SettingsCatalog.help("Require a client certificate on the TLS listener (mutual TLS); needs --mqtt-tls-ca", key: "mqtt.tls.requireClientCert", default: "false")
        )
    )
    var mqttTlsRequireClientCert = false

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "The longest MQTT keep-alive a client may ask for, in seconds (AWS IoT allows 30 to 1200). A 5.0 client asking for more, or for none, is told this one in CONNACK; a 3.1.1 client, which cannot be told, is refused",
                key: "mqtt.maxKeepAlive", default: "0, any"
            ),
            valueName: "seconds"
        )
    )
    var mqttMaxKeepAlive: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "How many QoS 1 and 2 messages may be on their way to one MQTT client, unacknowledged (a 5.0 client's Receive Maximum lowers it); more keeps a fast client busier, fewer sends less again after a reconnect",
                key: "mqtt.maxInflight", default: "64"
            ),
            valueName: "count"
        )
    )
    var mqttMaxInflight: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "The largest MQTT packet a client may send, in bytes; the default carries AWS IoT's largest message (128 KiB) with 4 KiB for its topic and properties. A larger one ends the connection (5.0: DISCONNECT 0x95)",
                key: "mqtt.maxPacketSize", default: "135168"
            ),
            valueName: "bytes"
        )
    )
    var mqttMaxPacketSize: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Subscriptions one MQTT client may hold; more are refused (SUBACK 0x97). 0: no bound", key: "mqtt.maxSubscriptions", default: "100"), valueName: "count"))
    var mqttMaxSubscriptions: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Retained messages one MQTT client (device) may leave in the broker; past it a retained PUBLISH is refused (5.0: PUBACK 0x97; otherwise the connection ends). 0: no bound", key: "mqtt.maxRetained", default: "100"), valueName: "count"))
    var mqttMaxRetained: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Payload bytes of the retained messages one MQTT client may leave, as above. 0: no bound", key: "mqtt.maxRetainedBytes", default: "1048576"), valueName: "bytes"))
    var mqttMaxRetainedBytes: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Payload bytes queued for one offline MQTT session (ten times as many for a connected one, whose publishers are slowed instead); past it new messages for it are dropped and counted", key: "mqtt.maxQueuedBytes", default: "8388608"), valueName: "bytes"))
    var mqttMaxQueuedBytes: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("MQTT connections one source address may hold; a CONNECT past it is refused (CONNACK 0x97; 3.1.1: 0x03). 0: no bound", key: "mqtt.maxConnectionsPerAddress", default: "1000"), valueName: "count"))
    var mqttMaxConnectionsPerAddress: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("CONNECTs a second one source address may make, twice as many in a burst; past it, CONNACK 0x9F (3.1.1: 0x03). 0: no bound", key: "mqtt.connectRate", default: "50"), valueName: "per-second"))
    var mqttConnectRate: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("The largest packet a client may send before its CONNACK (CONNECT with its will), in bytes; a larger one ends the connection before anything is checked", key: "mqtt.maxConnectSize", default: "65536"), valueName: "bytes"))
    var mqttMaxConnectSize: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Failed MQTT logins a minute from one source address before its CONNECTs are refused (0x9F) without a look at the store, for a minute, then twice as long each time, up to 15. 0: no bound", key: "mqtt.loginFailures", default: "20"), valueName: "count"))
    var mqttLoginFailures: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "How many of one device's messages may be on their way to AWS at once. 1 keeps each device's order in AWS (its HTTPS endpoint takes one request per connection, so messages in flight together may land out of order); N lets one busy device go N times as fast, its messages up to N - 1 places out of order",
                key: "uplink.deviceWindow", default: "1"
            ),
            valueName: "count"
        )
    )
    var uplinkDeviceWindow: Int?

    @Option(help: ArgumentHelp(SettingsCatalog.help("How many messages each device's history keeps", key: "messageHistory", default: "1000"), valueName: "count"))
    var messageHistory: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Seconds between passes that compare every provisioned device with AWS and repair drift; 0 never", key: "aws.reconcileInterval",
                default: "3600"
            ),
            valueName: "seconds"
        )
    )
    var reconcileInterval: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Endpoints besides AWS's own that integrations may use for endpointUrl and mqttEndpoint (a local stack, a proxy): exact scheme://host:port entries (https, http or mqtts), separated by commas. Tenants cannot add to it",
                key: "aws.endpointAllowlist", default: "none: AWS IoT's hosts for each integration's region only"
            ),
            valueName: "list"
        )
    )
    var awsEndpointAllowlist: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Messages each integration's uplink outbox holds at most; beyond, devices' QoS 1 messages are refused (5.0: PUBACK 0x97) until it drains",
                key: "uplink.backlogLimit", default: "100000"
            ),
            valueName: "count"
        )
    )
    var uplinkBacklogLimit: Int?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "Endpoints at private, loopback or link-local addresses that webhooks may call (a receiver inside your network): exact scheme://host:port entries (https or http), separated by commas. Without an entry, webhooks go to public addresses over https only",
                key: "webhooks.allowlist", default: "none"
            ),
            valueName: "list"
        )
    )
    var webhookAllowlist: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "This node's name among the nodes that share a database; it holds leases under it", key: "node.id",
                default: "the one in node-id in the data dir, made on the first start"
            ),
            valueName: "name"
        )
    )
    var nodeId: String?

    func run() async throws {
        let settings = try await Settings.load(self.storeOptions, reportWarnings: false)
        let location = try settings.databaseLocation()
        let host = settings.string(self.httpHost, key: "http.host") ?? "127.0.0.1"
        let port = try settings.int(self.httpPort, key: "http.port", range: 0...65535, default: 8080)
        let httpIdleTimeout = try settings.int(self.httpIdleTimeout, key: "http.idleTimeout", range: 1...3600, default: 30)
        let mqttHost = settings.string(self.mqttHost, key: "mqtt.host") ?? "127.0.0.1"
        let mqttPort = try settings.int(self.mqttPort, key: "mqtt.port", range: 0...65535, default: 1883)
        let anonymous = try settings.bool(self.mqttAnonymous ? true : nil, key: "mqtt.anonymous", default: false)
        let historyLimit = try settings.int(self.messageHistory, key: "messageHistory", range: 1...1_000_000, default: 1000)
        let reconcileInterval = try settings.int(self.reconcileInterval, key: "aws.reconcileInterval", range: 0...604_800, default: 3600)
        let backlogLimit = try settings.int(self.uplinkBacklogLimit, key: "uplink.backlogLimit", range: 1...100_000_000, default: 100_000)
        let deviceWindow = try settings.int(self.uplinkDeviceWindow, key: "uplink.deviceWindow", range: 1...256, default: 1)
        var brokerConfiguration = MQTTBrokerConfiguration(host: mqttHost, port: mqttPort)
        brokerConfiguration.listensWithoutTLS = mqttPort != 0
        let maxKeepAlive = try settings.int(self.mqttMaxKeepAlive, key: "mqtt.maxKeepAlive", range: 0...65535, default: 0)
        brokerConfiguration.maximumKeepAlive = maxKeepAlive == 0 ? nil : UInt16(maxKeepAlive)
        brokerConfiguration.maximumInflight = try settings.int(self.mqttMaxInflight, key: "mqtt.maxInflight", range: 1...65535, default: 64)
        brokerConfiguration.maximumPacketSize = try settings.int(
            self.mqttMaxPacketSize, key: "mqtt.maxPacketSize", range: 64...268_435_455, default: MQTTBrokerConfiguration.awsMessagePacketSize
        )
        brokerConfiguration.maximumSubscriptionsPerClient = try settings.bound(
            self.mqttMaxSubscriptions, key: "mqtt.maxSubscriptions", upTo: 1_000_000, default: 100
        )
        brokerConfiguration.maximumRetainedPerClient = try settings.bound(self.mqttMaxRetained, key: "mqtt.maxRetained", upTo: 1_000_000, default: 100)
        brokerConfiguration.maximumRetainedBytesPerClient = try settings.bound(
            self.mqttMaxRetainedBytes, key: "mqtt.maxRetainedBytes", upTo: 1 << 30, default: 1 << 20
        )
        brokerConfiguration.maximumQueuedBytes = try settings.int(
            self.mqttMaxQueuedBytes, key: "mqtt.maxQueuedBytes", range: 1024...(1 << 30), default: 8 << 20
        )
        brokerConfiguration.maximumConnectionsPerAddress = try settings.bound(
            self.mqttMaxConnectionsPerAddress, key: "mqtt.maxConnectionsPerAddress", upTo: 10_000_000, default: 1000
        )
        brokerConfiguration.connectsPerSecondPerAddress = try settings.bound(
            self.mqttConnectRate, key: "mqtt.connectRate", upTo: 1_000_000, default: 50
        ).map(Double.init)
        brokerConfiguration.maximumConnectPacketSize = try settings.int(
            self.mqttMaxConnectSize, key: "mqtt.maxConnectSize", range: 64...268_435_455, default: 64 << 10
        )
        brokerConfiguration.loginFailuresPerMinutePerAddress = try settings.bound(
            self.mqttLoginFailures, key: "mqtt.loginFailures", upTo: 1_000_000, default: 20
        )
        let certificate = settings.string(self.mqttTlsCert, key: "mqtt.tls.cert")
        let key = settings.string(self.mqttTlsKey, key: "mqtt.tls.key")
        switch (certificate, key) {
        case (let certificate?, let key?):
            brokerConfiguration.tls = .init(
                host: mqttHost, port: try settings.int(self.mqttTlsPort, key: "mqtt.tls.port", range: 0...65535, default: 8883),
                certificateChainPath: certificate, privateKeyPath: key, clientCAPath: settings.string(self.mqttTlsCa, key: "mqtt.tls.ca"),
                requireClientCertificate: try settings.bool(
                    self.mqttTlsRequireClientCert ? true : nil, key: "mqtt.tls.requireClientCert", default: false
                )
            )
            if brokerConfiguration.tls?.requireClientCertificate == true && brokerConfiguration.tls?.clientCAPath == nil {
                throw ValidationError("mqtt.tls.requireClientCert: needs mqtt.tls.ca, the CA that signs device certificates")
            }
        case (nil, nil):
            break
        default:
            throw ValidationError("mqtt.tls.cert and mqtt.tls.key: set both, or neither")
        }
        let httpListener = ListenerAddress(name: "HTTP", host: host, port: port, hostFlag: "--http-host", portFlag: "--http-port")
        let mqttListener = ListenerAddress(
            name: "MQTT", host: mqttHost, port: mqttPort, hostFlag: "--mqtt-host", portFlag: "--mqtt-port", portZero: "0 turns it off: devices then connect over TLS only"
        )
        var listeners = [httpListener]
        if mqttPort != 0 { listeners.append(mqttListener) }
        if let tls = brokerConfiguration.tls {
            listeners.append(ListenerAddress(name: "MQTT TLS", host: tls.host, port: tls.port, hostFlag: "--mqtt-host", portFlag: "--mqtt-tls-port"))
        }
        LogOutput.bootstrap(level: try settings.logLevel(default: .info), format: try settings.logFormat())
        let logger = Logger(label: "conduit")
        for warning in settings.warnings { logger.warning("\(warning)") }
        if mqttPort == 0 && brokerConfiguration.tls == nil {
            logger.warning("mqtt.port is 0 and no TLS listener is configured (mqtt.tls.cert, mqtt.tls.key): no device can connect")
        }
        // Before the store is opened: a port in use must leave no database and no token behind.
        try await Listeners.check(listeners)
        Listeners.raiseOpenFileLimit()
        let secrets = try settings.secretBox()
        let aws = try settings.awsEnvironment(allowlist: self.awsEndpointAllowlist)
        let webhooks = try settings.webhookEnvironment(allowlist: self.webhookAllowlist)
        let deviceCA = try settings.deviceCA(ca: self.mqttTlsCa, key: self.mqttTlsCaKey)
        let nodeID = try settings.nodeID(self.nodeId)
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(NodeMetricsFactory(base: PrometheusMetricsFactory(registry: registry), nodeID: nodeID))

        let store = try await SQLStore.open(location, logger: Logger(label: "conduit.store"))
        do {
            try await store.migrate()
            let hub = Hub(store: store, logger: Logger(label: "conduit.hub"), messageHistoryLimit: historyLimit, secrets: secrets,
                aws: aws, uplinkBacklogLimit: backlogLimit, deviceCA: deviceCA, webhooks: webhooks
            )
            let resealed = try await hub.sealLegacySecretsAgain()
            if resealed > 0 { logger.info("sealed \(resealed) stored secrets again, each bound to its row") }
            let broker: MQTTBroker
            if anonymous {
                logger.warning(
                    "MQTT anonymous access is ON: any client may connect without credentials and publish or subscribe to any topic. Never use this in production."
                )
                broker = MQTTBroker(
                    configuration: brokerConfiguration, sessionStore: StoreMQTTSessions(hub: hub), logger: Logger(label: "conduit.mqtt")
                )
            } else {
                let access = DeviceBrokerAccess(hub: hub)
                broker = MQTTBroker(
                    configuration: brokerConfiguration, authenticator: access, authorizer: access, observer: access, deliveryObserver: access,
                    sessionStore: StoreMQTTSessions(hub: hub), logger: Logger(label: "conduit.mqtt")
                )
            }
            hub.attach(broker)
            let brokerPort: Int?
            do {
                brokerPort = try await broker.start()
            } catch let error as IOError {
                throw StartupError(listener: mqttListener, error: error)
            }
            let router = ConduitAPI.router(hub: hub, metrics: registry)
            try await Console(hub: hub).register(on: router)
            let httpServing = ServingFlag()
            let app = ConduitAPI.application(
                router: router, host: host, port: port, idleTimeout: .seconds(httpIdleTimeout), logger: Logger(label: "conduit.http"),
                onServerRunning: { port in
                    httpServing.set()
                    // Only now that every listener is bound: a start that fails never uses up the token.
                    await Self.greet(hub: hub, logger: logger, url: "http://\(host):\(port)")
                    var metadata: Logger.Metadata = ["conduit.http": "http://\(host):\(port)", "conduit.database": "\(location)"]
                    if let brokerPort { metadata["conduit.mqtt"] = "mqtt://\(mqttHost):\(brokerPort)" }
                    if let tlsPort = broker.tlsPort { metadata["conduit.mqtts"] = "mqtts://\(mqttHost):\(tlsPort)" }
                    logger.info("conduit is serving", metadata: metadata)
                }
            )
            let provisioner = Provisioner(
                hub: hub, configuration: .init(reconcileInterval: reconcileInterval == 0 ? nil : TimeInterval(reconcileInterval))
            )
            let services = ServiceGroup(
                configuration: .init(
                    // Stopped in the reverse order: the workers, then HTTP, then the broker.
                    services: [
                        BrokerService(broker: broker), app, WorkerService(provisioner.run),
                        // Before the forwarder, so stopped after it: its shards are given up once nothing forwards them here.
                        WorkerService(ClusterMembership(hub: hub, configuration: .init(nodeID: nodeID)).run),
                        WorkerService(UplinkForwarder(hub: hub, configuration: .init(window: deviceWindow)).run),
                        WorkerService(DownlinkGateways(hub: hub, configuration: .init(nodeID: nodeID)).run), WorkerService(WebhookDispatcher(hub: hub).run),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            do {
                try await services.run()
            } catch let error as IOError where !httpServing.isSet {
                throw StartupError(listener: httpListener, error: error)
            }
            logger.info("conduit stopped")
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }

    /// What an operator needs to get in: the bootstrap admin token on a store without any token
    /// (logged this once), a reminder when it was never used, and the console's setup link while
    /// there is no console user.
    static func greet(hub: Hub, logger: Logger, url: String) async {
        do {
            if let issued = try await hub.access.bootstrap() {
                // The one token that is ever logged: an empty store has no other way in. Shown once.
                logger.notice(
                    "bootstrap admin token for tenant 'default' (shown only this once; keep it, or make others with `conduit tokens create --role admin`)",
                    metadata: ["conduit.token": "\(issued.token)", LogKey.tokenID: "\(issued.record.id)"]
                )
            } else if let unused = try await hub.access.unusedBootstrapToken() {
                logger.notice(
                    "the bootstrap admin token logged on the first start has never been used; if it is lost, make another with `conduit tokens create --role admin` (and revoke this one)",
                    metadata: [LogKey.tokenID: "\(unused.id)"]
                )
            }
            if let setupToken = try await hub.consoleAccounts.issueSetupLink() {
                // The console has no user yet: this link makes the first admin, once.
                logger.notice(
                    "no console user yet: open this link to create the first admin (valid for a day, once; or use `conduit users create`)",
                    metadata: ["conduit.setup": "\(url)\(Console.setupPath(token: setupToken))"]
                )
            }
        } catch {
            logger.error("cannot prepare the first sign-in: \(error)")
        }
    }
}

/// Whether the HTTP server came up: a bind error before it did is the listener's, told as such.
final class ServingFlag: Sendable {
    private let value = Mutex(false)
    func set() { self.value.withLock { $0 = true } }
    var isSet: Bool { self.value.withLock { $0 } }
}

/// The MQTT broker, already listening, as a service of the group: it shuts down when the group
/// does, whether on a signal or because another service failed.
struct BrokerService: Service {
    let broker: MQTTBroker

    func run() async throws {
        // Until a graceful shutdown, or until the group is cancelled because a service failed.
        try? await gracefulShutdown()
        await self.broker.shutdown()
    }
}

/// A background worker (the provisioner, the uplink forwarder, the downlink gateways) as a service of the group: it
/// stops at graceful shutdown; what it had under way is durable and resumes on the next start.
struct WorkerService: Service {
    let work: @Sendable () async -> Void

    init(_ work: @escaping @Sendable () async -> Void) {
        self.work = work
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.work()
        }
    }
}
