import ConduitTesting
import Foundation
import Hub
import Hummingbird
import Store
import Testing

/// Signing in, sessions, CSRF and roles on the console, over the router, on both store engines.
@Suite("Console sign-in, sessions and CSRF")
struct ConsoleSessionTests {
    @Test("a signed-out page sends the browser to sign in, and back to that page afterwards", arguments: TestDatabase.allCases)
    func signedOutRedirect(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let browser = ConsoleHarness.Browser()
            let page = try await console.get("/events?type=device.created", as: browser)
            #expect(page.status == .seeOther)
            #expect(page.location?.hasPrefix("/login?next=") == true)
            let next = try #require(page.location.flatMap { URLComponents(string: $0)?.queryItems?.first?.value })
            #expect(next == "/events?type=device.created")
            let form = try await console.get(page.location!, as: browser)
            let token = try #require(ConsoleHarness.csrf(in: form.body))
            #expect(form.body.contains(#"name="next" value="/events?type=device.created""#))
            let signedIn = try await console.post(
                "/login", [("csrf", token), ("email", "OPS@example.com"), ("password", ConsoleHarness.password), ("next", next)], as: browser
            )
            #expect(signedIn.status == .seeOther)
            #expect(signedIn.location == "/events?type=device.created")
            let cookie = try #require(signedIn.setCookies.first { $0.hasPrefix("conduit_session=") })
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"))
            #expect(!cookie.contains("Secure"), "plain HTTP: a Secure cookie would never come back")
            let events = try await console.get("/events", as: browser)
            #expect(events.status == .ok)
            #expect(events.body.contains("ops@example.com"))

            // Another site's address is never a place to go after signing in, however it is dressed
            // up (a browser drops tabs and newlines and reads a backslash as a slash).
            for next in ["//evil.example/", "/\\evil.example/", "/\t/evil.example/", "/%09/evil.example/".removingPercentEncoding!, "https://evil.example/", "/ /evil.example"] {
                let evil = ConsoleHarness.Browser()
                let evilForm = try await console.get("/login", as: evil)
                let evilToken = try #require(ConsoleHarness.csrf(in: evilForm.body))
                let away = try await console.post(
                    "/login", [("csrf", evilToken), ("email", "ops@example.com"), ("password", ConsoleHarness.password), ("next", next)], as: evil
                )
                #expect(away.location == "/devices", "next=\(next.debugDescription) led to \(away.location ?? "nowhere")")
            }
        }
    }

    @Test("behind TLS the session cookie is Secure", arguments: [TestDatabase.sqlite])
    func secureCookie(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let browser = ConsoleHarness.Browser()
            let proxied: HTTPFields = [.init("X-Forwarded-Proto")!: "https"]
            let form = try await console.get("/login", as: browser, headers: proxied)
            let token = try #require(ConsoleHarness.csrf(in: form.body))
            let reply = try await console.post(
                "/login", [("csrf", token), ("email", "ops@example.com"), ("password", ConsoleHarness.password)], as: browser, headers: proxied
            )
            let cookie = try #require(reply.setCookies.first { $0.hasPrefix("conduit_session=") })
            #expect(cookie.contains("Secure"))
        }
    }

    @Test("a wrong password and an unknown email get the same answer; past the limit even the right password waits", arguments: TestDatabase.allCases)
    func wrongPasswords(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("admin@example.com", role: .admin)
            func attempt(_ email: String, _ password: String) async throws -> ConsoleHarness.Reply {
                let browser = ConsoleHarness.Browser()
                let form = try await console.get("/login", as: browser)
                let token = try #require(ConsoleHarness.csrf(in: form.body))
                return try await console.post("/login", [("csrf", token), ("email", email), ("password", password)], as: browser)
            }
            let wrong = try await attempt("admin@example.com", "not the password")
            let unknown = try await attempt("nobody@example.com", "not the password")
            #expect(wrong.status == .unauthorized && unknown.status == .unauthorized)
            #expect(wrong.body.contains("wrong email or password") && unknown.body.contains("wrong email or password"))
            #expect(!wrong.setCookies.contains { $0.hasPrefix("conduit_session=") })
            // The email was typed back into the form; nothing tells the two apart.
            #expect(
                wrong.body.replacingOccurrences(of: "admin@example.com", with: "X").replacingOccurrences(of: #"value="[^"]*""#, with: "", options: .regularExpression)
                    == unknown.body.replacingOccurrences(of: "nobody@example.com", with: "X").replacingOccurrences(of: #"value="[^"]*""#, with: "", options: .regularExpression)
            )
            // Guesses sent all at once are counted as they come, not as they finish: of 40 at once
            // for one email (one failure made above), at most 9 more are checked.
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for index in 0..<40 {
                    group.addTask { try await attempt("admin@example.com", "guess \(index)").status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .unauthorized }.count == 9, "\(statuses)")
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 31)
            let locked = try await attempt("admin@example.com", ConsoleHarness.password)
            #expect(locked.status == .tooManyRequests)
            #expect(locked.body.contains("too many failed sign-ins"))
            #expect(!locked.setCookies.contains { $0.hasPrefix("conduit_session=") })
        }
    }

    @Test("sign-out ends the session in the store; idle and old sessions end too", arguments: TestDatabase.allCases)
    func sessionEnds(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let browser = try await console.signedIn("ops@example.com")
            let stolen = browser.cookies.withLock { $0["conduit_session"] }
            let token = try await console.csrf(of: browser)
            let out = try await console.post("/logout", [("csrf", token)], as: browser)
            #expect(out.location == "/login")
            // The cookie as it was before signing out (a copy someone kept) opens nothing.
            let replay = ConsoleHarness.Browser()
            replay.cookies.withLock { $0["conduit_session"] = stolen }
            #expect(try await console.get("/devices", as: replay).status == .seeOther)

            let idle = try await console.signedIn("ops@example.com")
            #expect(try await console.get("/devices", as: idle).status == .ok)
            console.clock.advance(by: ConsoleAccounts.idleTimeout + 60)
            let afterIdle = try await console.get("/devices", as: idle)
            #expect(afterIdle.status == .seeOther)
            #expect(afterIdle.location?.hasPrefix("/login") == true)

            // Used every few hours, a session still ends at its absolute limit.
            let busy = try await console.signedIn("ops@example.com")
            var elapsed: TimeInterval = 0
            while elapsed + 6 * 3600 < ConsoleAccounts.absoluteTimeout {
                console.clock.advance(by: 6 * 3600)
                elapsed += 6 * 3600
                #expect(try await console.get("/devices", as: busy).status == .ok)
            }
            console.clock.advance(by: ConsoleAccounts.absoluteTimeout - elapsed + 60)
            #expect(try await console.get("/devices", as: busy).status == .seeOther)
        }
    }

    @Test("a form without its CSRF token, or with another session's, changes nothing", arguments: TestDatabase.allCases)
    func csrf(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            try await console.user("other@example.com", role: .operator)
            _ = try await console.hub.devices.create(.init(id: "d1", name: "D1"), by: try await console.cli())
            let browser = try await console.signedIn("ops@example.com")
            let other = try await console.signedIn("other@example.com")
            let othersToken = try await console.csrf(of: other)
            for fields in [[], [("csrf", "")], [("csrf", "forged")], [("csrf", othersToken)]] {
                let reply = try await console.post("/devices/d1/accept", fields, as: browser)
                #expect(reply.status == .forbidden)
                #expect(reply.body.contains("CSRF"))
            }
            #expect(try await console.hub.devices.get("d1", by: try await console.cli()).status == .pending)
            // The sign-in form too: posted without its cookie's value, it signs no one in.
            let fresh = ConsoleHarness.Browser()
            let login = try await console.post("/login", [("csrf", "x"), ("email", "ops@example.com"), ("password", ConsoleHarness.password)], as: fresh)
            #expect(login.status == .forbidden)
            #expect(!login.setCookies.contains { $0.hasPrefix("conduit_session=") })
            // With the token, it works.
            let token = try await console.csrf(of: browser)
            #expect(try await console.post("/devices/d1/accept", [("csrf", token)], as: browser).status == .seeOther)
            #expect(try await console.hub.devices.get("d1", by: try await console.cli()).status == .accepted)
        }
    }

    @Test("a reader sees no control that changes anything, and the server refuses a reader's forged form", arguments: TestDatabase.allCases)
    func readers(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("reader@example.com", role: .reader)
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            _ = try await console.hub.devices.create(.init(id: "d1", name: "D1"), by: cli)
            _ = try await console.hub.devices.perform(.accept, on: "d1", by: cli)
            let reader = try await console.signedIn("reader@example.com")
            for path in ["/devices", "/devices/d1", "/events"] {
                let page = try await console.get(path, as: reader)
                #expect(page.status == .ok, "\(path)")
                // The one form that posts is signing out.
                #expect(page.body.components(separatedBy: #"method="post""#).count - 1 == 1, "\(path) offers a reader a form that posts")
                #expect(page.body.contains(#"action="/logout""#))
                for control in ["bulk-form", "create-device", "downlink-form", "shadow-form", "edit-device", "nav-integrations", "nav-users"] {
                    #expect(!page.body.contains(#"id="\#(control)""#), "\(path) shows a reader #\(control)")
                }
            }
            for path in ["/integrations", "/integrations/new", "/settings/users", "/settings/tokens"] {
                let page = try await console.get(path, as: reader)
                #expect(page.status == .forbidden, "\(path)")
                #expect(page.body.contains("needs the admin role; your role is reader"), "\(path)")
            }
            let token = try await console.csrf(of: reader)
            let forged = try await console.post("/devices/d1/reject", [("csrf", token)], as: reader)
            #expect(forged.status == .forbidden)
            #expect(forged.body.contains("needs the operator role; your role is reader"))
            let bulk = try await console.post("/devices/bulk", [("csrf", token), ("action", "decommission"), ("ids", "d1")], as: reader)
            #expect(bulk.status == .forbidden)
            let create = try await console.post("/devices", [("csrf", token), ("id", "d2"), ("name", "D2")], as: reader)
            #expect(create.status == .forbidden)
            await #expect(throws: HubError.self) { _ = try await console.hub.devices.get("d2", by: cli) }
            #expect(try await console.hub.devices.get("d1", by: cli).status == .accepted)

            // An operator sees the device controls but not the admin's.
            let ops = try await console.signedIn("ops@example.com")
            let list = try await console.get("/devices", as: ops)
            #expect(list.body.contains(#"id="bulk-form""#) && list.body.contains(#"id="create-device""#))
            #expect(!list.body.contains(#"id="nav-integrations""#))
            let device = try await console.get("/devices/d1", as: ops)
            #expect(device.body.contains(#"id="downlink-form""#) && device.body.contains(#"id="reject""#))
            #expect(!device.body.contains(#"id="accept""#), "an accepted device offers no Accept")
        }
    }

    @Test("pages escape what users and devices supply, carry a CSP with no inline script, and show a secret once", arguments: [TestDatabase.sqlite])
    func safety(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let browser = try await console.signedIn("ops@example.com")
            let token = try await console.csrf(of: browser)
            let created = try await console.post(
                "/devices", [("csrf", token), ("id", "xss-1"), ("name", "<script>alert(1)</script>"), ("labels", "plant-a"), ("attributes", "k=<img src=x onerror=alert(2)>")],
                as: browser
            )
            #expect(created.status == .ok)
            #expect(created.headers[.cacheControl] == "no-store")
            let secret = try #require(created.body.range(of: #"id="device-secret" class="select-all">"#).map { created.body[$0.upperBound...].prefix { $0 != "<" } })
            #expect(secret.count >= 30)
            for path in ["/devices", "/devices/xss-1", "/events"] {
                let page = try await console.get(path, as: browser)
                #expect(page.status == .ok)
                #expect(!page.body.contains("<script>alert(1)</script>"), "\(path) let the name through unescaped")
                #expect(!page.body.contains("<img src=x"), "\(path) let an attribute through unescaped")
                #expect(!page.body.contains(String(secret)), "\(path) shows the device's secret again")
                #expect(page.headers[.contentSecurityPolicy]?.contains("script-src 'self'") == true)
                #expect(page.headers[.contentSecurityPolicy]?.contains("unsafe-inline") == false)
                // Every script is a file of this origin; no handler attributes.
                let scripts = page.body.components(separatedBy: "<script").dropFirst()
                #expect(scripts.allSatisfy { $0.hasPrefix(#" src="/assets/"#) }, "\(path) has an inline script")
                #expect(page.body.range(of: #"\son[a-z]+=""#, options: .regularExpression) == nil, "\(path) has an inline event handler")
            }
            let device = try await console.get("/devices/xss-1", as: browser)
            #expect(device.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        }
    }

    @Test("the setup link makes the first admin once; with a user, none is made", arguments: TestDatabase.allCases)
    func setupLink(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            let link = try #require(try await console.hub.consoleAccounts.issueSetupLink())
            let browser = ConsoleHarness.Browser()
            #expect(try await console.get("/setup?token=wrong", as: browser).status == .forbidden)
            let form = try await console.get("/setup?token=\(link)", as: browser)
            #expect(form.status == .ok)
            #expect(form.headers[.cacheControl] == "no-store")
            let token = try #require(ConsoleHarness.csrf(in: form.body))
            let short = try await console.post(
                "/setup", [("csrf", token), ("token", link), ("email", "first@example.com"), ("password", "short"), ("password2", "short")], as: browser
            )
            #expect(short.status == .badRequest)
            #expect(short.body.contains("password: must be at least 10 characters"))
            let token2 = try #require(ConsoleHarness.csrf(in: short.body))
            let made = try await console.post(
                "/setup",
                [("csrf", token2), ("token", link), ("email", "first@example.com"), ("password", ConsoleHarness.password), ("password2", ConsoleHarness.password)],
                as: browser
            )
            #expect(made.status == .seeOther)
            #expect(made.location == "/devices")
            let page = try await console.get("/settings/users", as: browser)
            #expect(page.status == .ok)
            #expect(page.body.contains("first@example.com"))
            // Used: it makes nobody else, and the store no longer offers one.
            let again = ConsoleHarness.Browser()
            let reopened = try await console.get("/setup?token=\(link)", as: again)
            #expect(reopened.status == .forbidden)
            #expect(try await console.hub.consoleAccounts.issueSetupLink() == nil)
            await #expect(throws: HubError.self) {
                _ = try await console.hub.consoleAccounts.completeSetup(token: link, email: "second@example.com", password: ConsoleHarness.password)
            }
            #expect(try await console.hub.store.session.users.count() == 1)
        }
    }

    @Test("one setup link used twice at once makes one admin; a new link replaces the old", arguments: TestDatabase.allCases)
    func setupLinkRace(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            let old = try #require(try await console.hub.consoleAccounts.issueSetupLink())
            let link = try #require(try await console.hub.consoleAccounts.issueSetupLink())
            #expect(try await console.hub.consoleAccounts.setupLinkIsValid(old) == false)
            let accounts = console.hub.consoleAccounts
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for email in ["one@example.com", "two@example.com", "three@example.com"] {
                    group.addTask { (try? await accounts.completeSetup(token: link, email: email, password: ConsoleHarness.password)) != nil }
                }
                return await group.reduce(into: []) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            #expect(try await console.hub.store.session.users.count() == 1)
        }
    }

    @Test("users: bad emails and passwords named, one email once, and the last admin stays", arguments: TestDatabase.allCases)
    func users(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            let admin = try await console.user("admin@example.com", role: .admin)
            let browser = try await console.signedIn("admin@example.com")
            let token = try await console.csrf(of: browser)
            let cases: [(String, String, String)] = [
                ("not-an-email", ConsoleHarness.password, "email: must be an email address"),
                ("x@example.com", "short", "password: must be at least 10 characters"),
                ("x@example.com", String(repeating: "p", count: 73), "password: must be at most 72 bytes"),
                ("ADMIN@example.com", ConsoleHarness.password, "email: a user with email 'admin@example.com' exists already"),
            ]
            for (email, password, message) in cases {
                let reply = try await console.post("/settings/users", [("csrf", token), ("email", email), ("password", password), ("role", "reader")], as: browser)
                #expect(reply.status == .badRequest)
                #expect(reply.body.contains(ConsoleHarness.html(message)), "\(email): \(message)")
            }
            let added = try await console.post(
                "/settings/users", [("csrf", token), ("email", "ops@example.com"), ("password", ConsoleHarness.password), ("role", "operator")], as: browser
            )
            #expect(added.status == .seeOther)
            let users = try await console.hub.consoleAccounts.users(by: try await console.cli())
            #expect(users.map(\.email) == ["admin@example.com", "ops@example.com"])
            #expect(users.allSatisfy { $0.passwordHash.hasPrefix("$2") && !$0.passwordHash.contains(ConsoleHarness.password) })
            let last = try await console.post("/settings/users/\(admin.id)/delete", [("csrf", token)], as: browser)
            #expect(last.status == .seeOther)
            let after = try await console.get("/settings/users", as: browser)
            #expect(after.body.contains(ConsoleHarness.html("admin@example.com is the tenant's last admin")))
            #expect(try await console.hub.store.session.users.count() == 2)
            // Roles change on the page; the last admin keeps theirs.
            let opsUser = try #require(users.first { $0.email == "ops@example.com" })
            let promoted = try await console.post("/settings/users/\(opsUser.id)/role", [("csrf", token), ("role", "reader")], as: browser)
            #expect(try await console.get(promoted.location ?? "/", as: browser).body.contains("ops@example.com is now reader."))
            let demoted = try await console.post("/settings/users/\(admin.id)/role", [("csrf", token), ("role", "operator")], as: browser)
            #expect(try await console.get(demoted.location ?? "/", as: browser).body.contains(ConsoleHarness.html("admin@example.com is the tenant's last admin")))
            #expect(try await console.hub.consoleAccounts.users(by: try await console.cli()).map(\.role) == [.admin, .reader])
            // A removed user's sessions end at once.
            let ops = try await console.signedIn("ops@example.com")
            let opsID = try #require(users.first { $0.email == "ops@example.com" }?.id)
            #expect(try await console.post("/settings/users/\(opsID)/delete", [("csrf", token)], as: browser).status == .seeOther)
            #expect(try await console.get("/devices", as: ops).status == .seeOther)
        }
    }
}
