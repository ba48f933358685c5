import ConduitTesting
import Console
import Foundation
import HTTPAPI
import Hub
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Store
import Synchronization

/// The console on the API's router over a fresh store, driven like a browser: a cookie jar, forms
/// posted as `application/x-www-form-urlencoded`, CSRF tokens read from the pages.
struct ConsoleHarness {
    let hub: Hub
    let client: any TestClientProtocol
    /// The time the hub sees; tests move it forward to expire sessions.
    let clock: TestClock
    static let password = "correct horse battery"

    final class TestClock: Sendable {
        private let offset = Mutex<TimeInterval>(0)
        func advance(by seconds: TimeInterval) { self.offset.withLock { $0 += seconds } }
        func now() -> Date { Date().addingTimeInterval(self.offset.withLock { $0 }) }
    }

    struct Reply {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let body: String

        var location: String? { self.headers[.location] }
        var setCookies: [String] { self.headers[values: .setCookie] }
    }

    /// A browser: its cookies.
    final class Browser: Sendable {
        let cookies = Mutex<[String: String]>([:])

        func absorb(_ reply: Reply) {
            for header in reply.setCookies {
                let pair = header.split(separator: ";", maxSplits: 1)[0]
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0])
                let value = parts.count > 1 ? String(parts[1]) : ""
                let cleared = header.contains("Max-Age=0")
                self.cookies.withLock { $0[name] = cleared ? nil : value }
            }
        }

        var header: String? {
            let cookies = self.cookies.withLock { $0 }
            return cookies.isEmpty ? nil : cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        }
    }

    static func run(
        _ database: TestDatabase, aws: AWSEnvironment = AWSEnvironment(), _ body: @escaping @Sendable (ConsoleHarness) async throws -> Void
    ) async throws {
        let (location, cleanup) = try await database.makeLocation()
        let store = try await SQLStore.open(location, logger: .quiet)
        do {
            try await store.migrate()
            let clock = TestClock()
            let hub = Hub(store: store, logger: .quiet, aws: aws, clock: { clock.now() })
            try await hub.access.ensureDefaultTenant()
            let router = ConduitAPI.router(hub: hub)
            try await Console(hub: hub).register(on: router)
            let app = Application(router: router, logger: .quiet)
            try await app.test(.router) { client in
                try await body(ConsoleHarness(hub: hub, client: client, clock: clock))
            }
            await store.shutdown()
            await cleanup()
        } catch {
            await store.shutdown()
            await cleanup()
            throw error
        }
    }

    @discardableResult
    func get(_ path: String, as browser: Browser, headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers = extra
        if let cookie = browser.header { headers[.cookie] = cookie }
        // As a browser does, the fragment stays on this side.
        let path = path.split(separator: "#", maxSplits: 1).first.map(String.init) ?? path
        let reply = try await self.client.execute(uri: path, method: .get, headers: headers, body: nil) { response in
            Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
        browser.absorb(reply)
        return reply
    }

    /// Posts a form; `csrf: true` adds the token of the browser's current page (read from `page`).
    @discardableResult
    func post(_ path: String, _ fields: [(String, String)], as browser: Browser, headers extra: HTTPFields = [:]) async throws -> Reply {
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        if let cookie = browser.header { headers[.cookie] = cookie }
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = fields.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        let reply = try await self.client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) { response in
            Reply(status: response.status, headers: response.headers, body: String(buffer: response.body))
        }
        browser.absorb(reply)
        return reply
    }

    /// Text as a page shows it, HTML-escaped.
    static func html(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
    }

    /// The value of the first hidden `csrf` field on a page.
    static func csrf(in page: String) -> String? {
        guard let range = page.range(of: #"name="csrf" value=""#) else { return nil }
        return String(page[range.upperBound...].prefix { $0 != "\"" })
    }

    /// A console user made the way the CLI makes them.
    @discardableResult
    func user(_ email: String, role: Role, tenant: String = Tenant.defaultName) async throws -> ConsoleUser {
        try await self.hub.consoleAccounts.createUser(email: email, password: Self.password, role: role, tenantName: tenant)
    }

    /// A browser signed in as `email`, having loaded the sign-in form first as a person does.
    func signedIn(_ email: String, password: String = Self.password) async throws -> Browser {
        let browser = Browser()
        let form = try await self.get("/login", as: browser)
        guard let token = Self.csrf(in: form.body) else { throw TestSetupError("no csrf field on /login") }
        let reply = try await self.post("/login", [("csrf", token), ("email", email), ("password", password)], as: browser)
        guard reply.status == .seeOther, reply.location == "/devices" else {
            throw TestSetupError("signing in as \(email) answered \(reply.status) \(reply.location ?? ""): \(reply.body.prefix(300))")
        }
        return browser
    }

    /// The CSRF token of the signed-in browser's forms, read from a page as a form would carry it.
    func csrf(of browser: Browser) async throws -> String {
        let page = try await self.get("/devices", as: browser)
        guard let token = Self.csrf(in: page.body) else { throw TestSetupError("no csrf field on /devices") }
        return token
    }

    /// The principal of the default tenant's installation (as the CLI acts).
    func cli() async throws -> Principal {
        let tenant = try await self.hub.access.tenant(named: Tenant.defaultName)
        return Principal(tenantID: tenant.id, role: .admin, actor: "cli")
    }
}
