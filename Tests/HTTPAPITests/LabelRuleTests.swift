import ConduitTesting
import Foundation
import Testing

/// Labels decide which integrations take a device, so changing them can make or delete things in
/// AWS. The rule: an operator may change labels only where no integration's binding changes; an
/// admin may change them freely.
@Suite("Who may change AWS through labels")
struct LabelRuleTests {
    @Test("an operator cannot move a device into or out of an integration by its labels; an admin can", arguments: TestDatabase.allCases)
    func labelRule(database: TestDatabase) async throws {
        try await APIHarness.run(database, aws: try MotoPeer.environment()) { api in
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: MotoPeer.Account()))
            #expect(created.status == .created, "\(created.text)")
            let integration = try #require(created.json?["id"] as? String)
            try await api.createDevice("pump-1", labels: ["plant"])
            func relabel(_ labels: [String], token: String) async throws -> APIHarness.Reply {
                let list = labels.map { "\"\($0)\"" }.joined(separator: ",")
                return try await api.call(.patch, "/v1/devices/pump-1", token: token, json: #"{"labels": [\#(list)]}"#)
            }
            // The operator, into the integration's binding (fleet): refused, and nothing changes.
            let into = try await relabel(["fleet"], token: api.operator)
            #expect(into.status == .forbidden)
            #expect(
                into.errorMessage
                    == "labels: this change would add it to integration 'prod' (\(integration)), which makes or deletes its thing in AWS; that needs the admin role"
            )
            #expect((try await api.call(.get, "/v1/devices/pump-1", token: api.reader).json?["labels"] as? [String]) == ["plant"])
            // Labels that move it nowhere are the operator's.
            #expect(try await relabel(["plant", "north"], token: api.operator).status == .ok)
            // The admin may move it.
            #expect(try await relabel(["fleet", "north"], token: api.admin).status == .ok)
            // Within the binding, the operator may still edit; out of it, not.
            #expect(try await relabel(["fleet"], token: api.operator).status == .ok)
            let out = try await relabel(["plant"], token: api.operator)
            #expect(out.status == .forbidden)
            #expect(out.errorMessage?.hasPrefix("labels: this change would remove it from integration 'prod'") == true)
            #expect(try await relabel(["plant"], token: api.admin).status == .ok)
            // A reader changes nothing at all.
            #expect(try await relabel(["north"], token: api.reader).status == .forbidden)
        }
    }
}
