import ConduitTesting
import Foundation
import Logging
import HTTPAPI
import Hub
import Hummingbird
import HummingbirdTesting
import NIOCore
import Store

/// A running API over a fresh store of one engine, with a token of each role in the default
/// tenant and an admin token in a second tenant.
struct APIHarness {
    let hub: Hub
    let client: any TestClientProtocol
    let admin: String
    let `operator`: String
    let reader: String
    let otherTenantAdmin: String

    /// A response: its status, headers and body parsed as JSON (nil when empty or not JSON).
    struct Reply {
        let status: HTTPResponse.Status
        let headers: HTTPFields
        let body: ByteBuffer

        var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(self.body.readableBytesView))) as? [String: Any]
        }
        var text: String { String(buffer: self.body) }
        var errorCode: String? { (self.json?["error"] as? [String: Any])?["code"] as? String }
        var errorMessage: String? { (self.json?["error"] as? [String: Any])?["message"] as? String }
        var items: [[String: Any]] { self.json?["items"] as? [[String: Any]] ?? [] }
    }

    static func run(
        _ database: TestDatabase, aws: AWSEnvironment = AWSEnvironment(), _ body: @escaping @Sendable (APIHarness) async throws -> Void
    ) async throws {
        try await database.withHub(aws: aws) { hub in
            let tenant = try await hub.access.tenant(named: Tenant.defaultName)
            let cli = Principal(tenantID: tenant.id, role: .admin, actor: "cli")
            let other = try await hub.access.createTenant(name: "other")
            let otherCLI = Principal(tenantID: other.id, role: .admin, actor: "cli")
            let admin = try await hub.access.createToken(by: cli, role: .admin, name: nil).token
            let op = try await hub.access.createToken(by: cli, role: .operator, name: nil).token
            let reader = try await hub.access.createToken(by: cli, role: .reader, name: nil).token
            let otherAdmin = try await hub.access.createToken(by: otherCLI, role: .admin, name: nil).token
            let router = ConduitAPI.router(hub: hub)
            ConduitAPI.completeRouting(router)
            let app = Application(router: router, logger: .quiet)
            try await app.test(.router) { client in
                try await body(
                    APIHarness(
                        hub: hub, client: client, admin: admin, operator: op, reader: reader, otherTenantAdmin: otherAdmin
                    )
                )
            }
        }
    }

    @discardableResult
    func call(_ method: HTTPRequest.Method, _ path: String, token: String?, json: String? = nil) async throws -> Reply {
        var headers = HTTPFields()
        if let token { headers[.authorization] = "Bearer \(token)" }
        if json != nil { headers[.contentType] = "application/json" }
        return try await self.client.execute(
            uri: path, method: method, headers: headers, body: json.map { ByteBuffer(string: $0) }
        ) { response in
            Reply(status: response.status, headers: response.headers, body: response.body)
        }
    }

    /// Creates a device through the API as the operator and returns its JSON.
    @discardableResult
    func createDevice(_ id: String, labels: [String] = [], token: String? = nil) async throws -> [String: Any] {
        let labelList = labels.map { "\"\($0)\"" }.joined(separator: ",")
        let reply = try await self.call(
            .post, "/v1/devices", token: token ?? self.operator,
            json: #"{"id":"\#(id)","name":"Device \#(id)","labels":[\#(labelList)]}"#
        )
        guard reply.status == .created, let json = reply.json else {
            throw TestSetupError("creating \(id) answered \(reply.status): \(reply.text)")
        }
        return json
    }
}
