import Hub
import Hummingbird
import Logging
import NIOCore
import Prometheus

/// Conduit's HTTP API: the router with every route, and the application that serves it.
public enum ConduitAPI {
    /// The router: system routes at the root, the authenticated API under `/v1`.
    public static func router(hub: Hub, metrics: PrometheusCollectorRegistry? = nil) -> Router<ConduitRequestContext> {
        let router = Router(context: ConduitRequestContext.self)
        // The first middleware added is the outermost: metrics must see the rendered status of
        // every error, so the error middleware sits inside them.
        router.add(middleware: LogRequestsMiddleware(.debug))
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: APIErrorMiddleware())
        router.add(middleware: PathParametersMiddleware())
        SystemRoutes(hub: hub, metrics: metrics).register(on: router)
        let v1 = router.group("v1").add(middleware: AuthenticationMiddleware(hub: hub))
        DeviceRoutes(hub: hub).register(on: v1)
        DeviceCertificateRoutes(hub: hub).register(on: v1)
        EventRoutes(hub: hub).register(on: v1)
        TokenRoutes(hub: hub).register(on: v1)
        ClusterRoutes(hub: hub).register(on: v1)
        IntegrationRoutes(hub: hub).register(on: v1)
        ShadowRoutes(hub: hub).register(on: v1)
        ThingRoutes(hub: hub).register(on: v1)
        RuleRoutes(hub: hub).register(on: v1)
        WebhookRoutes(hub: hub).register(on: v1)
        return router
    }

    /// Makes a known path with a wrong method a 405 with `Allow`, rather than a 404. Call it once,
    /// after the last route (the console's too): the middleware it adds sees only requests that
    /// matched no route.
    public static func completeRouting(_ router: Router<ConduitRequestContext>) {
        router.add(middleware: MethodNotAllowedMiddleware(routes: router.routes.map { ($0.path, $0.method) }))
    }

    /// The application serving `router` (``router(hub:metrics:)``, with whatever else was added to it) on `host:port`.
    /// Add no route to the router after this.
    ///
    /// A connection is closed when no whole request head has come within `idleTimeout` of its
    /// opening or of its last response (a client that sends its headers a byte at a time, or
    /// nothing at all, cannot hold it); a request being answered is never cut.
    public static func application(
        router: Router<ConduitRequestContext>, host: String, port: Int, idleTimeout: Duration = .seconds(30), logger: Logger,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        self.completeRouting(router)
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: TimeAmount(idleTimeout))),
            configuration: .init(address: .hostname(host, port: port), serverName: "conduit"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}
