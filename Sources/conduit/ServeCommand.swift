import ArgumentParser
import Foundation
import HTTPAPI
import Hub
import Hummingbird
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import Store

/// `conduit serve`: migrates the store, then serves the API until SIGINT or SIGTERM.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the hub: the HTTP API (and, as they arrive, the broker and the AWS workers).",
        discussion: """
            Settings, each as flag / environment variable / config file key:
              --data-dir       CONDUIT_DATA_DIR      data.dir       (default ./data)
              --database-url   CONDUIT_DATABASE_URL  database.url   (default SQLite in the data dir)
              --http-host      CONDUIT_HTTP_HOST     http.host      (default 127.0.0.1)
              --http-port      CONDUIT_HTTP_PORT     http.port      (default 8080; 0 picks a free port)
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

    func run() async throws {
        let settings = try await Settings.load(self.storeOptions)
        let location = try settings.databaseLocation()
        let host = settings.string(self.httpHost, key: "http.host") ?? "127.0.0.1"
        let port = try settings.int(self.httpPort, key: "http.port", range: 0...65535, default: 8080)
        LogOutput.bootstrap(level: try settings.logLevel(default: .info), format: try settings.logFormat())
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let logger = Logger(label: "conduit")

        let store = try await SQLStore.open(location, logger: Logger(label: "conduit.store"))
        do {
            try await store.migrate()
            let hub = Hub(store: store, logger: Logger(label: "conduit.hub"))
            if let issued = try await hub.access.bootstrap() {
                // The one token that is ever logged: an empty store has no other way in. Shown once.
                logger.notice(
                    "bootstrap admin token for tenant 'default' (shown only this once; keep it, or make others with `conduit tokens create`)",
                    metadata: ["conduit.token": "\(issued.token)", LogKey.tokenID: "\(issued.record.id)"]
                )
            }
            let app = ConduitAPI.application(
                hub: hub, host: host, port: port, metrics: registry, logger: Logger(label: "conduit.http"),
                onServerRunning: { port in
                    logger.info("conduit is serving", metadata: ["conduit.http": "http://\(host):\(port)", "conduit.database": "\(location)"])
                }
            )
            let services = ServiceGroup(
                configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            )
            try await services.run()
            logger.info("conduit stopped")
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }
}
