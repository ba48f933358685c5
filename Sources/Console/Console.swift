import Hub
import Hummingbird
import HTTPAPI
import Logging

/// The web console: server-rendered pages on the API's server, making the same `Hub` calls as
/// the API with the same roles.
public struct Console: Sendable {
    let hub: Hub
    let renderer: ConsoleRenderer

    /// Loads the templates and assets; fails at start-up, not at the first page, when they are missing.
    public init(hub: Hub) async throws {
        self.hub = hub
        self.renderer = try await ConsoleRenderer.load()
    }

    /// Adds the console's pages and assets to the API's router.
    public func register(on router: Router<ConduitRequestContext>) {
        let open = router.group().add(middleware: ConsoleHeadersMiddleware()).add(middleware: ConsoleErrorMiddleware(renderer: self.renderer))
        AssetRoutes(renderer: self.renderer).register(on: open)
        SignInPages(hub: self.hub, renderer: self.renderer).register(open: open)

        // Errors inside are rendered again within the session, so that an error page keeps the navigation.
        let signed = open.group().add(middleware: ConsoleSessionMiddleware(hub: self.hub))
            .add(middleware: ConsoleErrorMiddleware(renderer: self.renderer))
        SignInPages(hub: self.hub, renderer: self.renderer).register(signed: signed)
        DevicePages(hub: self.hub, renderer: self.renderer).register(on: signed)
        DeviceActions(hub: self.hub, renderer: self.renderer).register(on: signed)
        LiveMessages(hub: self.hub).register(on: signed)
        IntegrationPages(hub: self.hub, renderer: self.renderer).register(on: signed)
        EventPages(hub: self.hub, renderer: self.renderer).register(on: signed)
        RulePages(hub: self.hub, renderer: self.renderer).register(on: signed)
        WebhookPages(hub: self.hub, renderer: self.renderer).register(on: signed)
        SettingsPages(hub: self.hub, renderer: self.renderer).register(on: signed)
    }

    /// The path of the one-time page that makes the first admin, for a setup link's secret.
    public static func setupPath(token: String) -> String { "/setup?token=\(token)" }
}

/// `/assets/{name}`: the stylesheet and scripts, from this origin (the CSP allows no other).
struct AssetRoutes {
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("assets/{name}") { _, context in
            let name = try context.parameters.require("name")
            guard let asset = self.renderer.assets[name] else { throw HTTPError(.notFound, message: "no asset named \(name)") }
            return Response(
                status: .ok, headers: [.contentType: asset.contentType, .cacheControl: "public, max-age=300"],
                body: .init(byteBuffer: asset.bytes)
            )
        }
    }
}

/// Reads a flash cookie for the page being rendered and clears it.
func takeFlash(_ request: Request) -> Flash? {
    request.cookies[ConsoleCookies.flash].flatMap { Flash(cookieValue: $0.value) }
}

extension Response {
    /// Clears the flash cookie the page just showed.
    mutating func clearingFlash(_ request: Request) -> Response {
        if request.cookies[ConsoleCookies.flash] != nil {
            self.setCookie(ConsoleCookies.clear(ConsoleCookies.flash, request: request))
        }
        return self
    }
}
