import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Store
import Synchronization
import Testing

/// The test's stand-in for a process dying: the provisioner stops on the spot.
struct SimulatedCrash: Error {}

@Suite("Provisioning at scale, after crashes and after drift, against moto")
struct BatchAndRecoveryTests {
    @Test("a batch of 200 devices through accept, reject and decommission; deleting the integration leaves nothing", arguments: TestDatabase.allCases)
    func batch(database: TestDatabase) async throws {
        // moto answers at its own pace; the quotas are not what this test is about.
        let quotas = AWSRateLimiter.awsIoTQuotas.mapValues { _ in 10_000.0 }
        try await ProvisioningFixture.run(database, quotas: quotas) { fixture in
            let integration = try await fixture.createIntegration()
            let provisioner = Provisioner(hub: fixture.hub)
            let ids = (0..<200).map { String(format: "batch-%03d", $0) }
            for id in ids { try await fixture.createDevice(id) }
            for id in ids { _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin) }
            try await provisioner.drain()

            let overview = try await fixture.hub.integrations.overview(integration.id, by: fixture.admin)
            #expect(overview.stateCounts == [.provisioned: 200])
            #expect(overview.latestErrors.isEmpty)
            #expect(try await fixture.thingNames() == Set(ids))
            let certificates = try await fixture.certificates()
            #expect(certificates.count == 200)
            #expect(certificates.allSatisfy { $0.status == "ACTIVE" })
            #expect(Set(try await fixture.iot.listThingsInThingGroup(group: "conduit-fleet")) == Set(ids))
            for id in ids.prefix(20) {
                #expect(try await fixture.iot.listThingPrincipals(thing: id).count == 1)
                #expect(try await fixture.policyExists("conduit-\(id)"))
            }

            // Half rejected, a quarter decommissioned.
            for id in ids[0..<100] { _ = try await fixture.hub.devices.perform(.reject, on: id, by: fixture.admin) }
            for id in ids[100..<150] { _ = try await fixture.hub.devices.perform(.decommission, on: id, by: fixture.admin) }
            try await provisioner.drain()
            let after = try await fixture.hub.integrations.overview(integration.id, by: fixture.admin)
            #expect(after.stateCounts == [.disabled: 100, .deprovisioned: 50, .provisioned: 50])
            #expect(try await fixture.thingNames() == Set(ids[0..<100] + ids[150..<200]))
            let statuses = try await fixture.certificates().map { $0.status ?? "" }
            #expect(statuses.filter { $0 == "INACTIVE" }.count == 100)
            #expect(statuses.filter { $0 == "ACTIVE" }.count == 50)
            #expect(statuses.count == 150)

            // The integration deleted: nothing of it is left in the account.
            _ = try await fixture.hub.integrations.delete(integration.id, by: fixture.admin)
            try await provisioner.drain()
            #expect(try await fixture.thingNames().isEmpty)
            #expect(try await fixture.certificates().isEmpty)
            #expect(try await fixture.iot.listPolicies().isEmpty)
            #expect(try await !fixture.groupExists("conduit-fleet"))
            #expect(try await fixture.hub.store.session.integrations.get(id: integration.id) == nil)
            #expect(try await fixture.hub.store.session.awsThings.count(integrationID: integration.id) == 0)
        }
    }

    /// The steps of provisioning and of removal, in the order a device goes through them.
    static let provisioningSteps: [AWSProvisioningStep] = [
        .begin, .createThing, .createKey, .createCertificate, .createPolicy, .attachPolicy, .attachPrincipal, .setGroup,
    ]
    static let removalSteps: [AWSProvisioningStep] = [.deleteCertificate, .deletePolicy, .deleteThing]

    @Test("a crash right after each single step resumes without a duplicate or a leftover", arguments: TestDatabase.allCases)
    func crashAfterEachStep(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let integration = try await fixture.createIntegration()
            for step in Self.provisioningSteps + Self.removalSteps {
                let id = "crash-\(step.rawValue)"
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
                if Self.removalSteps.contains(step) {
                    try await Provisioner(hub: fixture.hub).drain()
                    _ = try await fixture.hub.devices.perform(.decommission, on: id, by: fixture.admin)
                }
                // This worker dies right after AWS answered `step`, before the store heard of it;
                // its lease runs out, and another worker takes the job over.
                let crashed = Mutex(false)
                let doomed = Provisioner(
                    hub: fixture.hub, configuration: .init(leaseDuration: 2, reconcileInterval: nil),
                    afterStep: { done, device in
                        guard done == step, device == id, !crashed.withLock({ $0 }) else { return }
                        crashed.withLock { $0 = true }
                        throw SimulatedCrash()
                    }
                )
                try await doomed.drain(timeout: .seconds(1))
                #expect(crashed.withLock { $0 }, "the crash after \(step) happened")
                try await Provisioner(hub: fixture.hub).drain()

                let record = try await fixture.record(id, in: integration)
                if Self.removalSteps.contains(step) {
                    #expect(record?.state == .deprovisioned, "after a crash in \(step)")
                    #expect(try await !fixture.thingNames().contains(id), "after a crash in \(step)")
                    #expect(try await !fixture.policyExists("conduit-\(id)"), "after a crash in \(step)")
                } else {
                    #expect(record?.state == .provisioned, "after a crash in \(step)")
                    #expect(try await fixture.thingNames().contains(id), "after a crash in \(step)")
                    let principals = try await fixture.iot.listThingPrincipals(thing: id)
                    #expect(principals == [record?.progress.certificateArn].compactMap { $0 }, "after a crash in \(step)")
                    #expect(try await fixture.iot.listThingsInThingGroup(group: "conduit-fleet").contains(id))
                }
            }
            // One certificate per provisioned device, none for the removed ones: no duplicates, no orphans.
            let provisioned = Self.provisioningSteps.map { "crash-\($0.rawValue)" }
            #expect(try await fixture.certificates().count == provisioned.count)
            #expect(try await fixture.thingNames() == Set(provisioned))
            #expect(try await fixture.devicePolicies() == Set(provisioned.map { "conduit-\($0)" }))
        }
    }

    @Test("reconcile repairs a thing, an attachment and a certificate changed behind Conduit's back", arguments: TestDatabase.allCases)
    func reconcileRepairsDrift(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let integration = try await fixture.createIntegration()
            let provisioner = Provisioner(hub: fixture.hub)
            for id in ["drift-a", "drift-b", "drift-c", "steady"] {
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            try await provisioner.drain()
            let iot = fixture.iot
            // drift-a: its thing deleted in the console (principal detached first, as AWS requires).
            let a = try #require(try await fixture.record("drift-a", in: integration))
            try await iot.detachThingPrincipal(thing: "drift-a", principal: try #require(a.progress.certificateArn))
            try await iot.deleteThing(name: "drift-a")
            // drift-b: its policy detached from its certificate.
            let b = try #require(try await fixture.record("drift-b", in: integration))
            try await iot.detachPolicy(name: "conduit-drift-b", target: try #require(b.progress.certificateArn))
            // drift-c: its certificate deactivated.
            let c = try #require(try await fixture.record("drift-c", in: integration))
            try await iot.updateCertificate(id: try #require(c.progress.certificateID), status: .inactive)
            // The downlink gateway: its policy changed to allow everything.
            let gateway = "conduit-gateway-\(integration.id)"
            try await iot.createPolicyVersion(
                name: "conduit-gateway@\(integration.id)", document: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#
            )

            let drift = try await fixture.hub.integrations.reconcile(integration.id, by: fixture.admin)
            #expect(drift.map(\.deviceID).sorted() == [gateway, "drift-a", "drift-b", "drift-c"])
            #expect(drift.first { $0.deviceID == gateway }?.repairs == ["policy conduit-gateway@\(integration.id) was changed in AWS: restored"])
            try await provisioner.drain()
            #expect(try await fixture.gateway(of: integration).policy.contains("topicfilter/conduit/devices/+/down"))

            #expect(try await fixture.thingNames() == ["drift-a", "drift-b", "drift-c", "steady"])
            #expect(try await iot.listThingPrincipals(thing: "drift-a") == [try #require(a.progress.certificateArn)])
            #expect(try await iot.listThingsInThingGroup(group: "conduit-fleet").contains("drift-a"))
            #expect(try await iot.listAttachedPolicies(target: try #require(b.progress.certificateArn)) == ["conduit-drift-b"])
            #expect(try await iot.describeCertificate(id: try #require(c.progress.certificateID)).status == "ACTIVE")
            for id in ["drift-a", "drift-b", "drift-c", "steady"] {
                #expect(try await fixture.record(id, in: integration)?.state == .provisioned)
            }
            let events = try await fixture.hub.events.list(
                filter: .init(type: EventType.awsDriftRepaired), page: try PageRequest(limit: 10), by: fixture.admin
            )
            #expect(events.items.compactMap(\.deviceID).sorted() == ["drift-a", "drift-b", "drift-c"])
            let thingEvent = try #require(events.items.first { $0.deviceID == "drift-a" })
            #expect(thingEvent.data.contains("thing drift-a was deleted in AWS"))
            // A second pass finds nothing.
            #expect(try await fixture.hub.integrations.reconcile(integration.id, by: fixture.admin).isEmpty)
        }
    }

    @Test("a gateway made by an earlier version gets this version's policy when gateways start: its things' shadow documents besides the downlinks", arguments: TestDatabase.allCases)
    func gatewayUpgraded(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let integration = try await fixture.createIntegration()
            let provisioner = Provisioner(hub: fixture.hub)
            try await provisioner.drain()
            #expect(try await fixture.gateway(of: integration).policy.contains("$aws/things/+/shadow/update/documents"))
            // As an earlier version left it: a policy for the downlinks alone, its digest noted.
            let gatewayRecord = try #require(try await fixture.record(ProvisioningJob.gatewayDeviceID, in: integration))
            let account = try #require(gatewayRecord.progress.thingArn?.split(separator: ":").dropFirst(4).first)
            let earlier = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Subscribe","Resource":"arn:aws:iot:us-east-1:\#(account):topicfilter/conduit/devices/+/down"}]}"#
            try await fixture.iot.createPolicyVersion(name: "conduit-gateway@\(integration.id)", document: earlier)
            var record = try #require(try await fixture.record(ProvisioningJob.gatewayDeviceID, in: integration))
            record.progress.policyDocumentDigest = "an earlier version's"
            try await fixture.hub.store.session.awsThings.update(record)
            #expect(!(try await fixture.gateway(of: integration).policy.contains("shadow")))

            await fixture.hub.integrations.ensureGateways()
            try await provisioner.drain()
            let policy = try await fixture.gateway(of: integration).policy
            #expect(policy.contains("topicfilter/$aws/things/+/shadow/update/documents"), "\(policy)")
            #expect(policy.contains("topicfilter/conduit/devices/+/down"), "\(policy)")
            #expect(try await fixture.record(ProvisioningJob.gatewayDeviceID, in: integration)?.state == .provisioned)
        }
    }
}
