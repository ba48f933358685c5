import ArgumentParser
import Foundation
import Console
import HTTPAPI
import Hub
import Hummingbird
import Logging
import MQTTBroker
import Metrics
import Prometheus
import ServiceLifecycle
import Store

/// `conduit serve`: migrates the store, then serves the API until SIGINT or SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub: the HTTP API and web console, the MQTT broker, and the AWS workers.",
        discussion: """
            Settings, each as flag / environment variable / config file key:
              --data-dir       CONDUIT_DATA_DIR      data.dir       (default ./data)
              --database-url   CONDUIT_DATABASE_URL  database.url   (default SQLite in the data dir)
              --http-host      CONDUIT_HTTP_HOST     http.host      (default 127.0.0.1)
              --http-port      CONDUIT_HTTP_PORT     http.port      (default 8080; 0 picks a free port)
              --mqtt-host      CONDUIT_MQTT_HOST     mqtt.host      (default 127.0.0.1)
              --mqtt-port      CONDUIT_MQTT_PORT     mqtt.port      (default 1883; 0 picks a free port)
              --mqtt-anonymous CONDUIT_MQTT_ANONYMOUS mqtt.anonymous (default false)
              --mqtt-tls-port  CONDUIT_MQTT_TLS_PORT mqtt.tls.port  (default 8883, when cert and key are set)
              --mqtt-tls-cert  CONDUIT_MQTT_TLS_CERT mqtt.tls.cert
              --mqtt-tls-key   CONDUIT_MQTT_TLS_KEY  mqtt.tls.key
              --mqtt-tls-ca    CONDUIT_MQTT_TLS_CA   mqtt.tls.ca    (CA of device certificates: CN = device id)
              --mqtt-tls-require-client-cert  CONDUIT_MQTT_TLS_REQUIRE_CLIENT_CERT  mqtt.tls.requireClientCert
              --message-history CONDUIT_MESSAGE_HISTORY messageHistory (default 1000 per device)
              --master-key-file CONDUIT_MASTER_KEY_FILE masterKeyFile (default master.key in the data dir)
                                CONDUIT_MASTER_KEY    masterKey      (base64 of 32 bytes; wins over the file)
              --reconcile-interval CONDUIT_AWS_RECONCILE_INTERVAL aws.reconcileInterval (seconds; default 3600; 0 never)
              --uplink-backlog-limit CONDUIT_UPLINK_BACKLOG_LIMIT uplink.backlogLimit (messages per integration; default 100000)
              --log-level      CONDUIT_LOG_LEVEL     log.level      (default info)
              --log-format     CONDUIT_LOG_FORMAT    log.format     (default text)
              --config         CONDUIT_CONFIG                       (a JSON file of the keys above)
            On a store without any API token, the first start logs one bootstrap admin token.
            """
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(help: ArgumentHelp("Address the HTTP API listens on. Env: CONDUIT_HTTP_HOST; key http.host. Default: 127.0.0.1", valueName: "host"))
    var httpHost: String?

    @Option(help: ArgumentHelp("Port of the HTTP API; 0 picks a free one. Env: CONDUIT_HTTP_PORT; key http.port. Default: 8080", valueName: "port"))
    var httpPort: Int?

    @Option(help: ArgumentHelp("Address the MQTT broker listens on. Env: CONDUIT_MQTT_HOST; key mqtt.host. Default: 127.0.0.1", valueName: "host"))
    var mqttHost: String?

    @Option(help: ArgumentHelp("Port of the MQTT broker; 0 picks a free one. Env: CONDUIT_MQTT_PORT; key mqtt.port. Default: 1883", valueName: "port"))
    var mqttPort: Int?

    @Flag(
        help: ArgumentHelp(
            "Let any MQTT client connect without credentials and use any topic (development and conformance suites only). Env: CONDUIT_MQTT_ANONYMOUS=true; key mqtt.anonymous."
        )
    )
    var mqttAnonymous = false

    @Option(help: ArgumentHelp("Port of the MQTT TLS listener, started when a certificate and key are set. Env: CONDUIT_MQTT_TLS_PORT; key mqtt.tls.port. Default: 8883", valueName: "port"))
    var mqttTlsPort: Int?

    @Option(help: ArgumentHelp("The broker's TLS certificate chain (PEM). Env: CONDUIT_MQTT_TLS_CERT; key mqtt.tls.cert.", valueName: "file"))
    var mqttTlsCert: String?

    @Option(help: ArgumentHelp("The broker's TLS private key (PEM). Env: CONDUIT_MQTT_TLS_KEY; key mqtt.tls.key.", valueName: "file"))
    var mqttTlsKey: String?

    @Option(
        help: ArgumentHelp(
            "CA certificates (PEM) that sign device certificates; a device may then authenticate with a certificate whose CN is its id. Env: CONDUIT_MQTT_TLS_CA; key mqtt.tls.ca.",
            valueName: "file"
        )
    )
    var mqttTlsCa: String?

    @Option(help: ArgumentHelp("How many messages each device's history keeps. Env: CONDUIT_MESSAGE_HISTORY; key messageHistory. Default: 1000", valueName: "count"))
    var messageHistory: Int?

    @Option(
        help: ArgumentHelp(
            "Seconds between passes that compare every provisioned device with AWS and repair drift; 0 never. Env: CONDUIT_AWS_RECONCILE_INTERVAL; key aws.reconcileInterval. Default: 3600",
            valueName: "seconds"
        )
    )
    var reconcileInterval: Int?

    @Option(
        help: ArgumentHelp(
            "Messages each integration's uplink outbox holds at most; beyond, devices' QoS 1 messages are refused (5.0: PUBACK 0x97) until it drains. Env: CONDUIT_UPLINK_BACKLOG_LIMIT; key uplink.backlogLimit. Default: 100000",
            valueName: "count"
        )
    )
    var uplinkBacklogLimit: Int?

    @Flag(help: ArgumentHelp("Require a client certificate on the TLS listener (mutual TLS). Env: CONDUIT_MQTT_TLS_REQUIRE_CLIENT_CERT=true; key mqtt.tls.requireClientCert."))
    var mqttTlsRequireClientCert = false

    func run() async throws {
        let settings = try await Settings.load(self.storeOptions)
        let location = try settings.databaseLocation()
        let host = settings.string(self.httpHost, key: "http.host") ?? "127.0.0.1"
        let port = try settings.int(self.httpPort, key: "http.port", range: 0...65535, default: 8080)
        let mqttHost = settings.string(self.mqttHost, key: "mqtt.host") ?? "127.0.0.1"
        let mqttPort = try settings.int(self.mqttPort, key: "mqtt.port", range: 0...65535, default: 1883)
        let anonymous = try settings.bool(self.mqttAnonymous ? true : nil, key: "mqtt.anonymous", default: false)
        let historyLimit = try settings.int(self.messageHistory, key: "messageHistory", range: 1...1_000_000, default: 1000)
        let reconcileInterval = try settings.int(self.reconcileInterval, key: "aws.reconcileInterval", range: 0...604_800, default: 3600)
        let secrets = try settings.secretBox()
        let backlogLimit = try settings.int(self.uplinkBacklogLimit, key: "uplink.backlogLimit", range: 1...100_000_000, default: 100_000)
        var brokerConfiguration = MQTTBrokerConfiguration(host: mqttHost, port: mqttPort)
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
        LogOutput.bootstrap(level: try settings.logLevel(default: .info), format: try settings.logFormat())
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "conduit")

        let store = try await SQLStore.open(location, logger: Logger(label: "conduit.store"))
        do {
            try await store.migrate()
            let hub = Hub(store: store, logger: Logger(label: "conduit.hub"), messageHistoryLimit: historyLimit, secrets: secrets,
                uplinkBacklogLimit: backlogLimit
            )
            if let issued = try await hub.access.bootstrap() {
                // The one token that is ever logged: an empty store has no other way in. Shown once.
                logger.notice(
                    "bootstrap admin token for tenant 'default' (shown only this once; keep it, or make others with `conduit tokens create`)",
                    metadata: ["conduit.token": "\(issued.token)", LogKey.tokenID: "\(issued.record.id)"]
                )
            }
            let broker: MQTTBroker
            if anonymous {
                logger.warning(
                    "MQTT anonymous access is ON: any client may connect without credentials and publish or subscribe to any topic. Never use this in production."
                )
                broker = MQTTBroker(configuration: brokerConfiguration, logger: Logger(label: "conduit.mqtt"))
            } else {
                let access = DeviceBrokerAccess(hub: hub)
                broker = MQTTBroker(
                    configuration: brokerConfiguration, authenticator: access, authorizer: access, observer: access, deliveryObserver: access,
                    logger: Logger(label: "conduit.mqtt")
                )
            }
            hub.attach(broker)
            let brokerPort = try await broker.start()
            let router = ConduitAPI.router(hub: hub, metrics: registry)
            try await Console(hub: hub).register(on: router)
            let setupToken = try await hub.consoleAccounts.issueSetupLink()
            let app = ConduitAPI.application(
                router: router, host: host, port: port, logger: Logger(label: "conduit.http"),
                onServerRunning: { port in
                    var metadata: Logger.Metadata = [
                        "conduit.http": "http://\(host):\(port)", "conduit.mqtt": "mqtt://\(mqttHost):\(brokerPort)",
                        "conduit.database": "\(location)",
                    ]
                    if let tlsPort = broker.tlsPort { metadata["conduit.mqtts"] = "mqtts://\(mqttHost):\(tlsPort)" }
                    logger.info("conduit is serving", metadata: metadata)
                    if let setupToken {
                        // The console has no user yet: this link makes the first admin, once.
                        logger.notice(
                            "no console user yet: open this link to create the first admin (valid for a day, once; or use `conduit users create`)",
                            metadata: ["conduit.setup": "http://\(host):\(port)\(Console.setupPath(token: setupToken))"]
                        )
                    }
                }
            )
            let provisioner = Provisioner(
                hub: hub, configuration: .init(reconcileInterval: reconcileInterval == 0 ? nil : TimeInterval(reconcileInterval))
            )
            let services = ServiceGroup(
                configuration: .init(
                    services: [
                        app, WorkerService(provisioner.run), WorkerService(UplinkForwarder(hub: hub).run),
                        WorkerService(DownlinkGateways(hub: hub, configuration: .init(nodeID: try settings.nodeID())).run),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            )
            try await services.run()
            await broker.shutdown()
            logger.info("conduit stopped")
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
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
        try await cancelWhenGracefulShutdown {
            await self.work()
        }
    }
}
