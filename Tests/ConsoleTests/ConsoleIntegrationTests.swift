import ConduitTesting
import Foundation
import Hub
import Hummingbird
import Store
import Testing

/// The integration pages over the router, against moto: the form's checks, the page, pause,
/// reconcile and delete.
@Suite("Console integration pages")
struct ConsoleIntegrationTests {
    /// The downlink gateway's endpoint in these forms: a loopback port nothing listens on (never
    /// the public data endpoint moto names), which the harness's operator allowlist names.
    static let gatewayEndpoint = "127.0.0.1:\(freeLoopbackPort())"

    static func environment() throws -> AWSEnvironment {
        try MotoPeer.environment(allowing: ["mqtts://\(Self.gatewayEndpoint)"])
    }

    static func form(_ account: MotoPeer.Account, moto: URL, _ changes: [String: String] = [:]) -> [(String, String)] {
        var fields: [String: String] = [
            "name": "prod", "region": "us-east-1", "credentials": "role", "roleArn": account.roleARN, "externalId": "conduit-test",
            "endpointUrl": moto.absoluteString, "mqttEndpoint": Self.gatewayEndpoint, "thingGroup": "", "policy": "perThing",
            "uplinkTopic": "fleet/{deviceId}/{subtopic}", "payloadFormat": "envelope", "bind": "labels", "bindValues": "plant-a",
        ]
        fields.merge(changes) { _, new in new }
        return fields.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    @Test("bad fields come back beside the field, with what was typed; nothing is saved", arguments: [TestDatabase.sqlite])
    func refusals(_ database: TestDatabase) async throws {
        let moto = try MotoPeer.url()
        try await ConsoleHarness.run(database, aws: try Self.environment()) { console in
            try await console.user("admin@example.com", role: .admin)
            let browser = try await console.signedIn("admin@example.com")
            let token = try await console.csrf(of: browser)
            let account = MotoPeer.Account()
            let cases: [([String: String], String)] = [
                (["region": "mars-1"], "region: must be an AWS region"),
                (["thingGroup": "bad group!"], "thingGroup: "),
                (["uplinkTopic": "a/+/b"], "uplinkTopic: "),
                (["roleArn": "not-an-arn"], "credentials.roleArn: must be an IAM role ARN"),
                (["bindValues": ""], "bind.labels: must name at least one label"),
                (["endpointUrl": "ftp://x"], "endpointUrl: "),
            ]
            for (change, message) in cases {
                for intent in ["check", "save"] {
                    let reply = try await console.post("/integrations/new", [("csrf", token), ("intent", intent)] + Self.form(account, moto: moto, change), as: browser)
                    #expect(reply.status == .badRequest, "\(change)")
                    #expect(reply.body.contains(ConsoleHarness.html(message)), "\(change): \(message)")
                    #expect(reply.body.contains(#"class="field-error""#), "\(change): the error stands beside its field")
                    for value in change.values where !value.isEmpty {
                        #expect(reply.body.contains(ConsoleHarness.html(value)), "\(change): what was typed is kept")
                    }
                }
            }
            #expect(try await console.hub.integrations.list(by: try await console.cli()).isEmpty)
        }
    }

    @Test("checked with AWS, saved, paused, reconciled and deleted from the console", arguments: TestDatabase.allCases)
    func lifecycle(_ database: TestDatabase) async throws {
        let moto = try MotoPeer.url()
        try await ConsoleHarness.run(database, aws: try Self.environment()) { console in
            try await console.user("admin@example.com", role: .admin)
            let browser = try await console.signedIn("admin@example.com")
            let token = try await console.csrf(of: browser)
            let account = MotoPeer.Account()
            let checked = try await console.post("/integrations/new", [("csrf", token), ("intent", "check")] + Self.form(account, moto: moto), as: browser)
            #expect(checked.status == .ok)
            #expect(checked.headers[.cacheControl] == "no-store")
            #expect(checked.body.contains(#"id="check-result" class="flash ok""#))
            #expect(checked.body.contains("AWS accepted these credentials; the data endpoint is "))
            #expect(checked.body.contains("fleet/boiler-7/up"), "the topic preview for the sample device")
            #expect(try await console.hub.integrations.list(by: try await console.cli()).isEmpty, "checking saves nothing")

            let saved = try await console.post("/integrations/new", [("csrf", token), ("intent", "save")] + Self.form(account, moto: moto), as: browser)
            #expect(saved.status == .seeOther)
            let path = try #require(saved.location)
            let id = String(path.dropFirst("/integrations/".count))
            let page = try await console.get(path, as: browser)
            #expect(page.status == .ok)
            #expect(page.body.contains("Integration prod created"))
            #expect(page.body.contains(account.roleARN) && page.body.contains("fleet/{deviceId}/{subtopic}") && page.body.contains("labels: plant-a"))
            #expect(page.body.contains(#"id="gateway""#))
            let list = try await console.get("/integrations", as: browser)
            #expect(list.body.contains(#"data-integration-id="\#(id)""#))

            let paused = try await console.post("\(path)/pause", [("csrf", token)], as: browser)
            #expect(try await console.get(paused.location ?? path, as: browser).body.contains(#"id="integration-status">paused"#))
            #expect(try await console.hub.integrations.get(id, by: try await console.cli()).active == false)
            _ = try await console.post("\(path)/resume", [("csrf", token)], as: browser)
            #expect(try await console.hub.integrations.get(id, by: try await console.cli()).active == true)

            let reconciled = try await console.post("\(path)/reconcile", [("csrf", token)], as: browser)
            #expect(try await console.get(reconciled.location ?? path, as: browser).body.contains("Reconciled: "))

            // Edit: blank secret keeps the credentials; the change shows.
            let edit = try await console.get("\(path)/edit", as: browser)
            #expect(edit.body.contains(#"value="fleet/{deviceId}/{subtopic}""#))
            let edited = try await console.post(
                "\(path)/edit", [("csrf", token)] + Self.form(account, moto: moto, ["uplinkTopic": "fleet/{deviceId}", "payloadFormat": "raw"]), as: browser
            )
            #expect(edited.status == .seeOther)
            #expect(try await console.hub.integrations.get(id, by: try await console.cli()).settings.uplinkTopic == "fleet/{deviceId}")

            #expect(page.body.contains("Conduit removes from AWS what it made there"), "the delete button says what goes")
            let deleted = try await console.post("\(path)/delete", [("csrf", token)], as: browser)
            #expect(deleted.location == "/integrations")
            #expect(try await console.get("/integrations", as: browser).body.contains("prod is being deleted"))
            let status = try? await console.hub.integrations.get(id, by: try await console.cli()).status
            #expect(status == nil || status == .deleting)
        }
    }
}
