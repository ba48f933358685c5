import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/login`, `/logout`, `/setup` (the first admin), and `/`.
struct SignInPages {
    let hub: Hub
    let renderer: ConsoleRenderer

    struct LoginPage: Sendable {
        var chrome: Chrome
        var csrf: String
        var email: String
        var next: String
    }

    struct SetupPage: Sendable {
        var chrome: Chrome
        var csrf: String
        var token: String
        var email: String
        var valid: Bool
        var emailError: String?
        var passwordError: String?
    }

    func register(open: RouterGroup<ConduitRequestContext>) {
        open.get("login") { request, context in
            try self.loginPage(request, email: "", flash: takeFlash(request), status: .ok)
        }
        open.post("login", use: self.signIn)
        open.get("setup", use: self.setupPage)
        open.post("setup", use: self.setup)
    }

    func register(signed: RouterGroup<ConduitRequestContext>) {
        signed.get("/") { request, _ in redirect(to: "/devices", request: request) }
        signed.post("logout") { request, context in
            if let token = context.signedIn?.sessionToken { try await self.hub.consoleAccounts.signOut(sessionToken: token) }
            var response = redirect(to: "/login", flash: .ok("Signed out."), request: request)
            response.setCookie(ConsoleCookies.clear(ConsoleCookies.session, request: request))
            return response
        }
    }

    /// The sign-in form, with a fresh pre-session CSRF secret in its cookie and its hidden field.
    func loginPage(_ request: Request, email: String, flash: Flash?, status: HTTPResponse.Status) throws -> Response {
        let csrf = ConsoleCSRF.random()
        let next = Self.safeNext(request.uri.queryParameters["next"].map(String.init)) ?? ""
        var response = try self.renderer.page(
            "login", LoginPage(chrome: Chrome(title: "Sign in", section: .none, signedIn: nil, flash: flash), csrf: csrf, email: email, next: next),
            status: status
        )
        response.setCookie(ConsoleCookies.make(ConsoleCookies.preSession, value: csrf, maxAge: 3600, request: request))
        return response.clearingFlash(request)
    }

    @Sendable func signIn(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let form = try await ConsoleForm(request: &request, context: context)
        guard ConsoleCSRF.matches(form.raw("csrf"), request.cookies[ConsoleCookies.preSession]?.value ?? "") else {
            return try self.loginPage(request, email: "", flash: .error("The sign-in form had expired: try again."), status: .forbidden)
        }
        let email = form.string("email") ?? ""
        do {
            let signedIn = try await self.hub.consoleAccounts.signIn(
                email: email, password: form.raw("password") ?? "", address: clientAddress(request, context)
            )
            // A session this browser had before is ended, not left behind.
            if let previous = request.cookies[ConsoleCookies.session]?.value {
                try? await self.hub.consoleAccounts.signOut(sessionToken: previous)
            }
            let target = Self.safeNext(form.string("next")) ?? "/devices"
            var response = redirect(to: target, request: request)
            // Max-Age is the absolute end; the store ends it sooner when it is idle.
            response.setCookie(ConsoleCookies.make(ConsoleCookies.session, value: signedIn.sessionToken, maxAge: Int(ConsoleAccounts.absoluteTimeout), request: request))
            response.setCookie(ConsoleCookies.clear(ConsoleCookies.preSession, request: request))
            return response
        } catch let error as HubError where error.kind == .unauthenticated || error.kind == .tooManyRequests {
            let status: HTTPResponse.Status = error.kind == .tooManyRequests ? .tooManyRequests : .unauthorized
            return try self.loginPage(request, email: email, flash: .error(error.message), status: status)
        }
    }

    /// Only a path of this site: never another origin (`//evil`, `/\\evil`, `https://…`), nor
    /// anything a browser would clean into one (a tab or other control character, a backslash).
    static func safeNext(_ next: String?) -> String? {
        guard let next, next.hasPrefix("/"), !next.hasPrefix("//"), next.utf8.count <= 2048,
            !next.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "\\" || $0.properties.isWhitespace }),
            let components = URLComponents(string: next), components.scheme == nil, components.host == nil, components.path.hasPrefix("/")
        else { return nil }
        return next
    }

    @Sendable func setupPage(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let token = request.uri.queryParameters["token"].map(String.init) ?? ""
        let valid = try await self.hub.consoleAccounts.setupLinkIsValid(token)
        return try self.renderSetup(request, token: token, email: "", valid: valid, error: nil, status: valid ? .ok : .forbidden)
    }

    func renderSetup(_ request: Request, token: String, email: String, valid: Bool, error: HubError?, status: HTTPResponse.Status) throws -> Response {
        let csrf = ConsoleCSRF.random()
        let field = error?.field
        let page = SetupPage(
            chrome: Chrome(title: "Set up Conduit", section: .none, signedIn: nil, flash: error.map { .error($0.message) }),
            csrf: csrf, token: token, email: email, valid: valid,
            emailError: field == "email" ? error?.message : nil, passwordError: field == "password" ? error?.message : nil
        )
        var response = try self.renderer.page("setup", page, status: status, noStore: true)
        response.setCookie(ConsoleCookies.make(ConsoleCookies.preSession, value: csrf, maxAge: 3600, request: request))
        return response
    }

    @Sendable func setup(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let form = try await ConsoleForm(request: &request, context: context)
        let token = form.raw("token") ?? ""
        guard ConsoleCSRF.matches(form.raw("csrf"), request.cookies[ConsoleCookies.preSession]?.value ?? "") else {
            throw HTTPError(.forbidden, message: "The setup form had expired: open the setup link again.")
        }
        let email = form.string("email") ?? ""
        let password = form.raw("password") ?? ""
        guard password == form.raw("password2") else {
            return try self.renderSetup(
                request, token: token, email: email, valid: true, error: .invalidField("password", "the two passwords differ"), status: .badRequest
            )
        }
        do {
            let signedIn = try await self.hub.consoleAccounts.completeSetup(token: token, email: email, password: password)
            var response = redirect(to: "/devices", flash: .ok("Welcome: you are the first admin. Add an integration to reach AWS IoT."), request: request)
            response.setCookie(ConsoleCookies.make(ConsoleCookies.session, value: signedIn.sessionToken, maxAge: Int(ConsoleAccounts.absoluteTimeout), request: request))
            return response
        } catch let error as HubError where error.kind == .invalid {
            return try self.renderSetup(request, token: token, email: email, valid: true, error: error, status: .badRequest)
        }
    }
}
