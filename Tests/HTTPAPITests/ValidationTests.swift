import ConduitTesting
import Foundation
import Hummingbird
import Testing

@Suite("Validation")
struct ValidationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let body: String
        let message: String
        var testDescription: String { message }
    }

    /// Each field's rules on create, with the exact message a caller reads.
    static let createCases: [Case] = [
        Case(body: #"{"name":"x","id":"has space"}"#, message: "id: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        Case(body: #"{"name":"x","id":"slash/no"}"#, message: "id: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        Case(body: #"{"name":"x","id":""}"#, message: "id: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        Case(body: #"{"name":"x","id":"\#(String(repeating: "a", count: 129))"}"#, message: "id: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        Case(body: #"{"name":"x","id":"é"}"#, message: "id: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        Case(body: #"{"name":"x","id":7}"#, message: "id: must be a string, not a number"),
        Case(body: #"{"name":"x","id":"conduit-gateway-int_1"}"#, message: "id: must not start with conduit-gateway- (the things of Conduit's downlink gateways)"),
        Case(body: #"{"id":"a"}"#, message: "name: is required"),
        Case(body: #"{"name":"   "}"#, message: "name: must not be empty"),
        Case(body: #"{"name":"\#(String(repeating: "n", count: 257))"}"#, message: "name: must be at most 256 characters"),
        Case(body: #"{"name":"a\u0007b"}"#, message: "name: must not contain control characters"),
        Case(body: #"{"name":["x"]}"#, message: "name: must be a string, not an array"),
        Case(body: #"{"name":"x","labels":"lab"}"#, message: "labels: must be an array of strings, not a string"),
        Case(body: #"{"name":"x","labels":[1]}"#, message: "labels[0]: must be a string, not a number"),
        Case(body: #"{"name":"x","labels":["ok","not ok"]}"#, message: "labels[1]: must match [a-zA-Z0-9:_.-]{1,64}"),
        Case(body: #"{"name":"x","labels":[\#((0..<33).map { "\"l\($0)\"" }.joined(separator: ","))]}"#, message: "labels: at most 32 labels"),
        Case(body: #"{"name":"x","attributes":[]}"#, message: "attributes: must be an object of strings, not an array"),
        Case(body: #"{"name":"x","attributes":{"floor":2}}"#, message: "attributes.floor: must be a string, not a number"),
        Case(body: #"{"name":"x","attributes":{"bad key":"v"}}"#, message: "attributes.bad key: attribute names must match [a-zA-Z0-9_.,@/:#-]{1,128}"),
        Case(body: #"{"name":"x","attributes":{"k":"\#(String(repeating: "v", count: 801))"}}"#, message: "attributes.k: must be at most 800 characters"),
        Case(body: #"{"name":"x","attributes":{\#((0..<51).map { "\"k\($0)\":\"v\"" }.joined(separator: ","))}}"#, message: "attributes: at most 50 attributes"),
        Case(body: #"{"name":"x","colour":"red"}"#, message: "colour: unknown field; allowed: attributes, id, labels, name"),
        Case(body: #"{"name": "x""#, message: "body: is not valid JSON"),
        Case(body: #"["name"]"#, message: "body: must be a JSON object, not an array"),
        Case(body: "", message: "body: must be a JSON object"),
    ]

    @Test("each field's rule on create is a 400 naming the field, and nothing is stored", arguments: TestDatabase.allCases)
    func createValidation(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            for testCase in Self.createCases {
                let reply = try await api.call(.post, "/v1/devices", token: api.operator, json: testCase.body)
                #expect(reply.status == .badRequest, "\(testCase.message): \(reply.status)")
                #expect(reply.errorCode == "invalid_field")
                #expect(reply.errorMessage == testCase.message)
            }
            #expect(try await api.call(.get, "/v1/devices", token: api.reader).items.isEmpty)
            #expect(try await api.call(.get, "/v1/events?type=device.created", token: api.reader).items.isEmpty)
        }
    }

    @Test("the limits themselves are accepted", arguments: TestDatabase.allCases)
    func boundariesAreAccepted(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let id = "Ab0:_-" + String(repeating: "z", count: 122)
            let labels = (0..<32).map { "\"l\($0)\"" }.joined(separator: ",")
            let reply = try await api.call(
                .post, "/v1/devices", token: api.operator,
                json: #"{"id":"\#(id)","name":"\#(String(repeating: "n", count: 256))","labels":[\#(labels)],"attributes":{"a.b,c@d/e:f#g-h_i":"\#(String(repeating: "v", count: 800))"}}"#
            )
            #expect(reply.status == .created, "\(reply.text)")
            #expect(reply.json?["id"] as? String == id)
            #expect((reply.json?["labels"] as? [String])?.count == 32)
            let generated = try await api.call(.post, "/v1/devices", token: api.operator, json: #"{"name":"no id"}"#)
            #expect(generated.status == .created)
            #expect((generated.json?["id"] as? String)?.isEmpty == false)
        }
    }

    @Test("patch rules: id and status cannot be patched, null name is refused", arguments: TestDatabase.allCases)
    func patchValidation(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("d1")
            let cases: [(String, String)] = [
                (#"{"id":"d2"}"#, "id: cannot be changed; create a new device instead"),
                (#"{"status":"accepted"}"#, "status: cannot be patched; POST /v1/devices/{id}/accept, /reject or /decommission"),
                (#"{"name":null}"#, "name: must be a string"),
                (#"{"name":""}"#, "name: must not be empty"),
                (#"{"labels":["a b"]}"#, "labels[0]: must match [a-zA-Z0-9:_.-]{1,64}"),
                (#"{"attributes":{"k":1}}"#, "attributes.k: must be a string or null, not a number"),
                (#"{"secret":"mine"}"#, "secret: unknown field; allowed: attributes, id, labels, name, status"),
            ]
            for (body, message) in cases {
                let reply = try await api.call(.patch, "/v1/devices/d1", token: api.operator, json: body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errorMessage == message)
            }
            let device = try await api.call(.get, "/v1/devices/d1", token: api.reader)
            #expect(device.json?["name"] as? String == "Device d1")
            #expect(device.json?["status"] as? String == "pending")
        }
    }

    @Test("query parameters are checked", arguments: TestDatabase.allCases)
    func queryValidation(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let cases: [(String, String)] = [
                ("/v1/devices?limit=0", "limit: must be between 1 and 500"),
                ("/v1/devices?limit=501", "limit: must be between 1 and 500"),
                ("/v1/devices?limit=ten", "limit: must be an integer"),
                ("/v1/devices?cursor=bogus", "cursor: must be a nextCursor returned by this list"),
                ("/v1/devices?status=sleeping", "status: must be one of pending, accepted, rejected, decommissioned"),
                ("/v1/devices?label=a%20b", "label: must match [a-zA-Z0-9:_.-]{1,64}"),
                ("/v1/events?type=device.exploded", "type: must be one of aws.credentials_issued, aws.credentials_rotated, aws.deprovisioned, aws.disabled, aws.drift_repaired, aws.failed, aws.message_dropped, aws.provisioned, device.accepted, device.certificate_enrolled, device.certificate_revoked, device.created, device.decommissioned, device.deleted, device.rejected, device.secret_rotated, device.updated, downlink.skipped, integration.created, integration.deleted, integration.updated, rule.action_failed, rule.fired, token.created, token.revoked, uplink.dropped, user.created, user.deleted, user.role_changed, webhook.paused"),
                ("/v1/events?cursor=bogus", "cursor: must be a nextCursor returned by this list"),
                ("/v1/events?deviceId=%00", "deviceId: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
                // A cursor that decodes but carries a key no device id could be.
                ("/v1/devices?cursor=YzE6AA", "cursor: must be a nextCursor returned by this list"),
            ]
            for (path, message) in cases {
                let reply = try await api.call(.get, path, token: api.reader)
                #expect(reply.status == .badRequest, "\(path)")
                #expect(reply.errorMessage == message, "\(path)")
            }
        }
    }

    @Test("ids that no device could have are 404 without reaching the database", arguments: TestDatabase.allCases)
    func impossibleIDs(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            for path in ["/v1/devices/%00", "/v1/devices/a%20b", "/v1/devices/\(String(repeating: "x", count: 129))"] {
                let read = try await api.call(.get, path, token: api.reader)
                let accept = try await api.call(.post, path + "/accept", token: api.operator)
                let delete = try await api.call(.delete, path, token: api.operator)
                #expect([read.status, accept.status, delete.status] == [.notFound, .notFound, .notFound], "\(path)")
            }
            #expect(try await api.call(.delete, "/v1/tokens/%00", token: api.admin).status == .notFound)
        }
    }

    @Test("a body over 1 MiB is 413 and nothing is stored", arguments: TestDatabase.allCases)
    func bodyTooLarge(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let huge = #"{"name":"big","attributes":{"k":"\#(String(repeating: "x", count: 1 << 20))"}}"#
            let reply = try await api.call(.post, "/v1/devices", token: api.operator, json: huge)
            #expect(reply.status == .contentTooLarge)
            #expect(reply.errorCode == "body_too_large")
            #expect(try await api.call(.get, "/v1/devices", token: api.reader).items.isEmpty)
        }
    }

    @Test("a taken id is 409, in this tenant or another, and writes nothing", arguments: TestDatabase.allCases)
    func duplicateID(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("d1")
            let again = try await api.call(.post, "/v1/devices", token: api.operator, json: #"{"id":"d1","name":"again"}"#)
            #expect(again.status == .conflict)
            #expect(again.errorCode == "device_exists")
            let elsewhere = try await api.call(.post, "/v1/devices", token: api.otherTenantAdmin, json: #"{"id":"d1","name":"x"}"#)
            #expect(elsewhere.status == .conflict)
            #expect(try await api.call(.get, "/v1/events?type=device.created", token: api.reader).items.count == 1)
            #expect(try await api.call(.get, "/v1/events", token: api.otherTenantAdmin).items.allSatisfy { $0["type"] as? String != "device.created" })
            #expect(try await api.call(.get, "/v1/devices/d1", token: api.reader).json?["name"] as? String == "Device d1")
        }
    }
}
