import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Store
import Testing

@Suite("Provisioning into AWS IoT Core, against moto")
struct LifecycleProvisioningTests {
    @Test("one device through its whole lifecycle: AWS holds exactly what each step intends", arguments: TestDatabase.allCases)
    func oneDevice(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let integration = try await fixture.createIntegration()
            #expect(integration.dataEndpoint?.hasSuffix("-ats.iot.us-east-1.amazonaws.com") == true)
            let provisioner = Provisioner(hub: fixture.hub)
            // Its own id: the SQLite and PostgreSQL runs share moto's recorder.
            let id = "sensor-\(UUID().uuidString.prefix(8).lowercased())"

            // Pending: bound, but nothing in AWS yet.
            try await fixture.createDevice(id)
            try await provisioner.drain()
            #expect(try await fixture.record(id, in: integration)?.state == .pending)
            #expect(try await fixture.thingNames().isEmpty)

            // The integration's downlink gateway: its thing, an active certificate AWS signed for
            // a key Conduit keeps, and a policy that lets it only receive downlinks.
            let gatewayRecord = try #require(try await fixture.record(ProvisioningJob.gatewayDeviceID, in: integration))
            #expect(gatewayRecord.state == .provisioned)
            #expect(gatewayRecord.sealedPrivateKey != nil)
            let gateway = try await fixture.gateway(of: integration)
            #expect(gateway.certificate.status == "ACTIVE")
            #expect(gateway.certificate.certificateId == gatewayRecord.progress.certificateID)
            #expect(gateway.policy.contains("topicfilter/conduit/devices/+/down\""))
            #expect(gateway.policy.contains("topic/conduit/devices/*/down\""))
            #expect(gateway.policy.contains("client/conduit-gateway-\(integration.id)\""))
            #expect(!gateway.policy.contains("iot:Publish"))

            // Accepted: thing with attributes, one active certificate, its own policy, the group.
            _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            try await provisioner.drain()
            let provisioned = try #require(try await fixture.record(id, in: integration))
            #expect(provisioned.state == .provisioned)
            #expect(provisioned.lastError == nil)
            let thing = try await fixture.iot.describeThing(name: id)
            #expect(thing.attributes == ["name": "Sensor_\(id)", "model": "m-1"])
            #expect(provisioned.progress.thingArn == thing.thingArn)
            let certificates = try await fixture.certificates()
            #expect(certificates.count == 1)
            let certificate = try #require(certificates.first)
            #expect(certificate.certificateId == provisioned.progress.certificateID)
            #expect(try await fixture.iot.describeCertificate(id: certificate.certificateId).status == "ACTIVE")
            #expect(try await fixture.iot.listThingPrincipals(thing: id) == [certificate.certificateArn])
            #expect(try await fixture.iot.listAttachedPolicies(target: certificate.certificateArn) == ["conduit-\(id)"])
            let policy = try await fixture.iot.getPolicy(name: "conduit-\(id)")
            let document = try #require(policy.policyDocument)
            #expect(document.contains("client/\(id)\""))
            #expect(document.contains("topic/conduit/\(id)/up"))
            #expect(document.contains("topicfilter/conduit/devices/\(id)/down"))
            #expect(document.contains("$aws/things/\(id)/shadow/*"))
            #expect(!document.contains("client/*"))
            #expect(try await fixture.iot.listThingsInThingGroup(group: "conduit-fleet") == [id])

            // Credentials: the bundle once, then 409.
            let bundle = try await fixture.hub.integrations.issueCredentials(deviceID: id, integrationID: integration.id, by: fixture.admin)
            #expect(bundle.certificateID == certificate.certificateId)
            #expect(bundle.privateKey.hasPrefix("-----BEGIN PRIVATE KEY-----"))
            #expect(bundle.certificatePem.contains("BEGIN CERTIFICATE"))
            #expect(bundle.endpoint == integration.dataEndpoint)
            #expect(bundle.clientID == id)
            #expect(try await fixture.record(id, in: integration)?.sealedPrivateKey == nil)
            await #expect(throws: HubError.self) {
                try await fixture.hub.integrations.issueCredentials(deviceID: id, integrationID: integration.id, by: fixture.admin)
            }

            // Rejected: the certificate goes inactive; the thing stays.
            _ = try await fixture.hub.devices.perform(.reject, on: id, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.record(id, in: integration)?.state == .disabled)
            #expect(try await fixture.iot.describeCertificate(id: certificate.certificateId).status == "INACTIVE")
            #expect(try await fixture.thingNames() == [id])

            // Accepted again: active again, same certificate.
            _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.record(id, in: integration)?.state == .provisioned)
            #expect(try await fixture.iot.describeCertificate(id: certificate.certificateId).status == "ACTIVE")

            // Rotated: a new certificate attached, the old one gone, new credentials to fetch.
            let runner = Task { await provisioner.run() }
            let rotated = try await fixture.hub.integrations.rotateCredentials(deviceID: id, integrationID: integration.id, by: fixture.admin)
            runner.cancel()
            await runner.value
            #expect(rotated.record.state == .provisioned)
            let newID = try #require(rotated.record.progress.certificateID)
            #expect(newID != certificate.certificateId)
            #expect(try await fixture.certificates().map(\.certificateId) == [newID])
            #expect(try await fixture.iot.listThingPrincipals(thing: id) == [try #require(rotated.record.progress.certificateArn)])
            let second = try await fixture.hub.integrations.issueCredentials(deviceID: id, integrationID: integration.id, by: fixture.admin)
            #expect(second.certificateID == newID)
            #expect(second.privateKey != bundle.privateKey)

            // Decommissioned: certificate, policy, shadows and thing gone; the group stays with the integration.
            let data = try fixture.account.data()
            _ = try await data.updateThingShadow(thing: id, document: Array(#"{"state": {"reported": {"t": 21}}}"#.utf8))
            _ = try await data.updateThingShadow(thing: id, name: "config", document: Array(#"{"state": {"desired": {"rate": 5}}}"#.utf8))
            _ = try await fixture.hub.devices.perform(.decommission, on: id, by: fixture.admin)
            try await provisioner.drain()
            let requests = try MotoPeer.recordedRequests().map { "\($0.method) \($0.path)" }
            let thingDeleted = try #require(requests.lastIndex(of: "DELETE /things/\(id)"))
            for shadow in ["DELETE /things/\(id)/shadow", "DELETE /things/\(id)/shadow?name=config"] {
                let deleted = try #require(requests.lastIndex(of: shadow), "no \(shadow)")
                #expect(deleted < thingDeleted, "\(shadow) before the thing")
            }
            #expect(try await fixture.record(id, in: integration)?.state == .deprovisioned)
            #expect(try await fixture.thingNames().isEmpty)
            #expect(try await fixture.certificates().isEmpty)
            #expect(try await !fixture.policyExists("conduit-\(id)"))
            #expect(try await fixture.groupExists("conduit-fleet"))

            // The integration deleted: its group goes too, then the integration itself.
            _ = try await fixture.hub.integrations.delete(integration.id, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await !fixture.groupExists("conduit-fleet"))
            #expect(try await fixture.hub.store.session.integrations.get(id: integration.id) == nil)
            #expect(try await fixture.iot.listThings().isEmpty, "the gateway's thing went with the integration")
            #expect(try await fixture.iot.listCertificates().isEmpty)
            #expect(try await fixture.iot.listPolicies().isEmpty)

            let events = try await fixture.hub.events.list(filter: .init(deviceID: id), page: try PageRequest(limit: 100), by: fixture.admin)
            let types = events.items.map(\.type).reversed()
            #expect(Array(types.filter { $0.hasPrefix("aws.") }) == [
                "aws.provisioned", "aws.credentials_issued", "aws.disabled", "aws.provisioned", "aws.credentials_rotated",
                "aws.provisioned", "aws.credentials_issued", "aws.deprovisioned",
            ])
        }
    }
}
