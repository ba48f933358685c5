import ConduitTesting
import Foundation
import Hummingbird
import Store
import Testing

@Suite("Roles, tenants and tokens")
struct AccessTests {
    /// A route, and the lowest role allowed on it.
    struct Route: Sendable, CustomTestStringConvertible {
        let method: HTTPRequest.Method
        let path: String
        let body: String?
        let needs: Role
        var testDescription: String { "\(method) \(path)" }
    }

    static let routes: [Route] = [
        Route(method: .get, path: "/v1/devices", body: nil, needs: .reader),
        Route(method: .get, path: "/v1/devices/d1", body: nil, needs: .reader),
        Route(method: .get, path: "/v1/events", body: nil, needs: .reader),
        Route(method: .post, path: "/v1/devices", body: #"{"id":"new","name":"New"}"#, needs: .operator),
        Route(method: .patch, path: "/v1/devices/d1", body: #"{"name":"Renamed"}"#, needs: .operator),
        Route(method: .post, path: "/v1/devices/d1/accept", body: nil, needs: .operator),
        Route(method: .post, path: "/v1/devices/d1/reject", body: nil, needs: .operator),
        Route(method: .post, path: "/v1/devices/d1/decommission", body: nil, needs: .operator),
        Route(method: .post, path: "/v1/devices/d1/secret", body: nil, needs: .operator),
        Route(method: .delete, path: "/v1/devices/d1", body: nil, needs: .operator),
        Route(method: .get, path: "/v1/tokens", body: nil, needs: .admin),
        Route(method: .post, path: "/v1/tokens", body: #"{"role":"reader"}"#, needs: .admin),
    ]

    @Test("each role may do exactly what it should", arguments: TestDatabase.allCases, Role.allCases)
    func roleMatrix(database: TestDatabase, role: Role) async throws {
        try await APIHarness.run(database) { api in
            let token =
                switch role {
                case .admin: api.admin
                case .operator: api.operator
                case .reader: api.reader
                }
            for route in Self.routes {
                // Each route gets a fresh pending device so that lifecycle routes are legal when allowed.
                _ = try await api.call(.delete, "/v1/devices/d1", token: api.admin)
                _ = try await api.call(.delete, "/v1/devices/new", token: api.admin)
                try await api.createDevice("d1")
                let before = try await Self.snapshot(api)
                let reply = try await api.call(route.method, route.path, token: token, json: route.body)
                if role.includes(route.needs) {
                    #expect(reply.status.code < 300, "\(role) on \(route.testDescription): \(reply.status) \(reply.text)")
                } else {
                    #expect(reply.status == .forbidden, "\(role) on \(route.testDescription): \(reply.status)")
                    #expect(reply.errorCode == "forbidden")
                    #expect(reply.errorMessage?.contains(route.needs.rawValue) == true)
                    // A refused request wrote nothing: same devices, tokens and events as before.
                    #expect(try await Self.snapshot(api) == before, "\(role) on \(route.testDescription) changed state")
                }
            }
        }
    }

    /// Everything a write could change, as the admin sees it.
    static func snapshot(_ api: APIHarness) async throws -> [String] {
        let devices = try await api.call(.get, "/v1/devices", token: api.admin).text
        let tokens = try await api.call(.get, "/v1/tokens", token: api.admin).items.compactMap { $0["id"] as? String }
        let events = try await api.call(.get, "/v1/events?limit=500", token: api.admin).items.compactMap { $0["id"] as? String }
        return [devices] + tokens + ["--"] + events
    }

    @Test("another tenant's device is 404 on every route, and absent from lists", arguments: TestDatabase.allCases)
    func crossTenantIsNotFound(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("d1")
            let other = api.otherTenantAdmin
            for route in Self.routes where route.path.hasPrefix("/v1/devices/d1") {
                let reply = try await api.call(route.method, route.path, token: other, json: route.body)
                #expect(reply.status == .notFound, "\(route.testDescription): \(reply.status)")
                #expect(reply.errorCode == "not_found")
            }
            #expect(try await api.call(.get, "/v1/devices", token: other).items.isEmpty)
            #expect(try await api.call(.get, "/v1/events?deviceId=d1", token: other).items.isEmpty)
            let still = try await api.call(.get, "/v1/devices/d1", token: api.reader)
            #expect(still.json?["status"] as? String == "pending")
            #expect(still.json?["name"] as? String == "Device d1")
            // Tokens are per tenant too.
            let tokenIDs = try await api.call(.get, "/v1/tokens", token: api.admin).items.compactMap { $0["id"] as? String }
            for id in tokenIDs {
                #expect(try await api.call(.delete, "/v1/tokens/\(id)", token: other).status == .notFound)
            }
        }
    }

    @Test("no token, a malformed header, or an unknown token is 401", arguments: TestDatabase.allCases)
    func unauthenticated(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let none = try await api.call(.get, "/v1/devices", token: nil)
            #expect(none.status == .unauthorized)
            #expect(none.errorCode == "unauthenticated")
            #expect(none.headers[.wwwAuthenticate] != nil)
            #expect(try await api.call(.get, "/v1/devices", token: "cdt_not-a-token").status == .unauthorized)
            let basic = try await api.client.execute(
                uri: "/v1/devices", method: .get, headers: [.authorization: "Basic dXNlcjpwYXNz"]
            ) { $0.status }
            #expect(basic == .unauthorized)
        }
    }

    @Test("a token is shown once, stored hashed, and stops working when revoked", arguments: TestDatabase.allCases)
    func tokenLifecycle(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let created = try await api.call(.post, "/v1/tokens", token: api.admin, json: #"{"role":"reader","name":"dashboard"}"#)
            #expect(created.status == .created)
            let token = try #require(created.json?["token"] as? String)
            let id = try #require(created.json?["id"] as? String)
            #expect(created.json?["role"] as? String == "reader")
            #expect(created.headers[.cacheControl] == "no-store")
            #expect(try await api.call(.get, "/v1/devices", token: token).status == .ok)

            let listed = try await api.call(.get, "/v1/tokens", token: api.admin)
            #expect(!listed.text.contains(token))
            let entry = try #require(listed.items.first { $0["id"] as? String == id })
            #expect(entry["token"] == nil)
            #expect(entry["name"] as? String == "dashboard")
            #expect((entry["hint"] as? String).map { token.hasPrefix($0) } == true)

            // Only a hash is at rest: the token's text is nowhere in the table.
            let rows = try await api.hub.store.session.sql.raw("SELECT * FROM api_tokens").all()
            for row in rows {
                for column in ["token_hash", "hint", "name", "id"] {
                    #expect(try row.decode(column: column, as: String.self) != token)
                }
            }

            #expect(try await api.call(.delete, "/v1/tokens/\(id)", token: api.admin).status == .noContent)
            #expect(try await api.call(.get, "/v1/devices", token: token).status == .unauthorized)
            #expect(try await api.call(.delete, "/v1/tokens/\(id)", token: api.admin).status == .notFound)
            let events = try await api.call(.get, "/v1/events?type=token.revoked", token: api.reader)
            #expect(events.items.count == 1)
        }
    }

    @Test("a token's role must be one of the three", arguments: TestDatabase.allCases)
    func tokenRoleValidation(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let reply = try await api.call(.post, "/v1/tokens", token: api.admin, json: #"{"role":"root"}"#)
            #expect(reply.status == .badRequest)
            #expect(reply.errorMessage == "role: must be one of reader, operator, admin")
            let missing = try await api.call(.post, "/v1/tokens", token: api.admin, json: #"{}"#)
            #expect(missing.errorMessage == "role: is required")
        }
    }
}
