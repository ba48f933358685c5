import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Store
import Testing

/// `policy: {"shared": true}`: one least-privilege policy for all of an integration's things,
/// scoped by AWS IoT's thing policy variables, instead of a CreatePolicy per device.
@Suite("One shared policy for all things, against moto")
struct SharedPolicyTests {
    static let variable = "${iot:Connection.Thing.ThingName}"

    @Test(
        "things share one policy that names no thing; a change of topics updates it once; drift is repaired; switching modes and deleting leave nothing behind",
        arguments: TestDatabase.allCases
    )
    func sharedPolicy(database: TestDatabase) async throws {
        let quotas = AWSRateLimiter.awsIoTQuotas.mapValues { _ in 10_000.0 }
        try await ProvisioningFixture.run(database, quotas: quotas) { fixture in
            let integration = try await fixture.createIntegration {
                $0.policy = .init(shared: true)
                $0.uplinkTopic = "fleet/{deviceId}/{subtopic}"
            }
            let provisioner = Provisioner(hub: fixture.hub)
            let ids = (0..<40).map { String(format: "shared-%02d", $0) }
            for id in ids { try await fixture.createDevice(id) }
            for id in ids { _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin) }
            try await provisioner.drain()

            let name = "conduit-shared@\(integration.id)"
            let overview = try await fixture.hub.integrations.overview(integration.id, by: fixture.admin)
            #expect(overview.stateCounts == [.provisioned: 40])
            // One policy for the forty things, and no policy of a thing's own.
            #expect(try await fixture.devicePolicies() == [name])
            let arns = try await self.certificateArns(ids, of: integration, in: fixture)
            for arn in arns { #expect(try await fixture.iot.listAttachedPolicies(target: arn) == [name]) }
            let account = try #require(arns.first?.split(separator: ":").dropFirst(4).first).description
            let statements = try await self.statements(of: name, in: fixture)
            let prefix = "arn:aws:iot:us-east-1:\(account)"
            #expect(statements["iot:Connect"]?.resources == ["\(prefix):client/\(Self.variable)"])
            #expect(statements["iot:Connect"]?.condition == ["Bool": ["iot:Connection.Thing.IsAttached": "true"]])
            #expect(
                statements["iot:Publish"]?.resources == [
                    "\(prefix):topic/fleet/\(Self.variable)/*", "\(prefix):topic/$aws/things/\(Self.variable)/shadow/*",
                ]
            )
            #expect(
                statements["iot:Subscribe"]?.resources == [
                    "\(prefix):topicfilter/conduit/devices/\(Self.variable)/down", "\(prefix):topicfilter/$aws/things/\(Self.variable)/shadow/*",
                ]
            )
            #expect(try await !(self.document(of: name, in: fixture)).contains("shared-"))

            // The topics change: the one policy gets the new document, as its only version.
            var topics = IntegrationDraft()
            topics.uplinkTopic = "plant/{deviceId}/up"
            _ = try await fixture.hub.integrations.update(integration.id, with: topics, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await self.statements(of: name, in: fixture)["iot:Publish"]?.resources.first == "\(prefix):topic/plant/\(Self.variable)/up")
            #expect(try await fixture.iot.listPolicyVersions(name: name).count == 1)
            #expect(try await fixture.hub.integrations.overview(integration.id, by: fixture.admin).stateCounts == [.provisioned: 40])

            // Widened in AWS behind Conduit's back: reconcile finds it once and restores it.
            try await fixture.iot.createPolicyVersion(
                name: name, document: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#
            )
            let drift = try await fixture.hub.integrations.reconcile(integration.id, by: fixture.admin)
            #expect(drift.flatMap(\.repairs) == ["policy \(name) was changed in AWS: restored"])
            try await provisioner.drain()
            #expect(try await self.statements(of: name, in: fixture)["iot:Publish"]?.resources.first == "\(prefix):topic/plant/\(Self.variable)/up")
            #expect(try await fixture.hub.integrations.reconcile(integration.id, by: fixture.admin).isEmpty)

            // To a policy per thing: each thing gets its own; the shared one waits for the integration.
            var perThing = IntegrationDraft()
            perThing.policy = .init(perThing: true)
            _ = try await fixture.hub.integrations.update(integration.id, with: perThing, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.devicePolicies() == Set(ids.map { "conduit-\($0)" } + [name]))
            for (id, arn) in zip(ids, arns) { #expect(try await fixture.iot.listAttachedPolicies(target: arn) == ["conduit-\(id)"]) }
            // And back: the things' own policies are deleted once the shared one is attached.
            var shared = IntegrationDraft()
            shared.policy = .init(shared: true)
            _ = try await fixture.hub.integrations.update(integration.id, with: shared, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.devicePolicies() == [name])
            for arn in arns { #expect(try await fixture.iot.listAttachedPolicies(target: arn) == [name]) }

            // Deleted, the integration takes the shared policy with it.
            _ = try await fixture.hub.integrations.delete(integration.id, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.iot.listPolicies().isEmpty)
            #expect(try await fixture.certificates().isEmpty)
            #expect(try await fixture.hub.store.session.integrations.get(id: integration.id) == nil)
        }
    }

    @Test("the shared policy deleted in AWS is made again, and every thing is attached to it again")
    func deletedInAWS() async throws {
        try await ProvisioningFixture.run(.sqlite) { fixture in
            let integration = try await fixture.createIntegration { $0.policy = .init(shared: true) }
            let provisioner = Provisioner(hub: fixture.hub)
            let ids = ["gone-a", "gone-b", "gone-c"]
            for id in ids {
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            try await provisioner.drain()
            let name = "conduit-shared@\(integration.id)"
            let arns = try await self.certificateArns(ids, of: integration, in: fixture)
            // AWS deletes a policy only once nothing holds it.
            for arn in arns { try await fixture.iot.detachPolicy(name: name, target: arn) }
            try await fixture.iot.deletePolicy(name: name)

            let drift = try await fixture.hub.integrations.reconcile(integration.id, by: fixture.admin)
            #expect(drift.count == 3)
            #expect(drift.flatMap(\.repairs).contains("policy \(name) was deleted in AWS: made again"))
            try await provisioner.drain()
            #expect(try await fixture.policyExists(name))
            for arn in arns { #expect(try await fixture.iot.listAttachedPolicies(target: arn) == [name]) }
            let overview = try await fixture.hub.integrations.overview(integration.id, by: fixture.admin)
            #expect(overview.stateCounts == [.provisioned: 3], "\(overview.latestErrors.map { "\($0.deviceID): \($0.lastError ?? "")" })")
        }
    }

    @Test("a template that would widen the shared policy is refused, as for a policy per thing")
    func wideningRefused() async throws {
        try await ProvisioningFixture.run(.sqlite) { fixture in
            for template in ["fleet/{deviceName}/up", "conduit/pump{deviceId}/up", "conduit/*/{deviceId}"] {
                var refusal: HubError?
                do {
                    _ = try await fixture.createIntegration {
                        $0.policy = .init(shared: true)
                        $0.uplinkTopic = template
                    }
                } catch let error as HubError {
                    refusal = error
                }
                #expect(refusal?.field == "uplinkTopic", "\(template)")
                #expect(refusal?.message.contains("the policy Conduit makes (per thing or shared)") == true, "\(template)")
            }
            let left = try await fixture.hub.integrations.list(by: fixture.admin)
            #expect(left.isEmpty)
        }
    }

    func certificateArns(_ ids: [String], of integration: Integration, in fixture: ProvisioningFixture) async throws -> [String] {
        var arns: [String] = []
        for id in ids { arns.append(try #require(try await fixture.record(id, in: integration)?.progress.certificateArn)) }
        return arns
    }

    func document(of name: String, in fixture: ProvisioningFixture) async throws -> String {
        try #require(try await fixture.iot.getPolicy(name: name).policyDocument)
    }

    struct Statement {
        var resources: [String]
        var condition: [String: [String: String]]?
    }

    /// The policy's statements by action.
    func statements(of name: String, in fixture: ProvisioningFixture) async throws -> [String: Statement] {
        let document = try await self.document(of: name, in: fixture)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any])
        var statements: [String: Statement] = [:]
        for statement in try #require(object["Statement"] as? [[String: Any]]) {
            let action = try #require(statement["Action"] as? String)
            let one = statement["Resource"] as? String
            let resources = try #require((statement["Resource"] as? [String]) ?? one.map { [$0] })
            statements[action] = Statement(resources: resources, condition: statement["Condition"] as? [String: [String: String]])
        }
        return statements
    }
}
