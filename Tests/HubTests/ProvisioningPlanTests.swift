import AWS
import Foundation
import Store
import Testing

@testable import Hub

@Suite("Provisioning plan")
struct ProvisioningPlanTests {
    static func integration(perThing: Bool = true, group: String? = "fleet") -> Integration {
        Integration(
            id: "int_1", tenantID: "t", name: "prod", type: "aws-iot-core",
            settings: IntegrationSettings(
                region: "eu-west-1", endpointURL: nil, policyName: perThing ? nil : "shared", perThingPolicy: perThing, thingGroup: group,
                thingAttributes: ["model"], uplinkTopic: "conduit/{deviceId}/up/{subtopic}", payloadFormat: "raw",
                downlinkPrefix: "conduit/devices", binding: IntegrationBinding(all: true)
            ),
            credentials: IntegrationCredentials(kind: .default), active: true, status: .active, dataEndpoint: nil, createdGroups: [],
            createdAt: Date(timeIntervalSince1970: 0), updatedAt: Date(timeIntervalSince1970: 0)
        )
    }

    static let device = Device(
        id: "dev:1", tenantID: "t", name: "Boiler room #2 (north)", status: .accepted, labels: [], attributes: ["model": "X 1", "site": "a"],
        secretHash: "", createdAt: Date(), updatedAt: Date(), statusChangedAt: Date()
    )

    /// Applies each step's effect as the provisioner would, and returns the steps in order.
    static func walk(_ plan: ProvisioningPlan, from start: AWSThingProgress = AWSThingProgress()) -> [AWSProvisioningStep] {
        var progress = start
        var steps: [AWSProvisioningStep] = []
        while let step = plan.nextStep(progress), steps.count < 30 {
            steps.append(step)
            switch step {
            case .begin: progress.touched = true
            case .createThing:
                progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
                progress.attributesDigest = plan.attributes.map(ProvisioningPlan.digest)
            case .updateThingAttributes: progress.attributesDigest = plan.attributes.map(ProvisioningPlan.digest)
            case .createKey: progress.keyRequest = .init(nonce: "n", requestedAt: Date(), csr: "csr", uncertain: false)
            case .createCertificate, .resolveCertificateRequest:
                progress.keyRequest = nil
                progress.certificateID = "c"
                progress.certificateArn = "arn:c"
                progress.certificateStatus = .active
            case .registerCertificate:
                progress.certificateID = "registered"
                progress.certificateArn = "arn:registered"
                progress.certificatePem = plan.registeredCertificate
                progress.certificateStatus = .active
                progress.certificateRegistered = true
            case .replaceCertificate:
                progress.retiring.append(.init(certificateID: progress.certificateID!, certificateArn: progress.certificateArn!))
                progress.certificateID = nil
                progress.certificateArn = nil
                progress.certificatePem = nil
                progress.certificateRegistered = nil
                progress.attachedPolicy = nil
                progress.principalAttached = false
            case .createPolicy, .updatePolicy:
                progress.createdPolicy = plan.policyName
                progress.policyDocumentDigest = plan.policyDocument(progress).map(ProvisioningPlan.digest)
            case .ensureSharedPolicy: progress.sharedPolicyDigest = plan.policyDocument(progress).map(ProvisioningPlan.digest)
            case .attachPolicy:
                progress.attachedPolicy = plan.policyName
                if !plan.sharedPolicy { progress.sharedPolicyDigest = nil }
            case .deleteCreatedPolicy, .deletePolicy:
                progress.createdPolicy = nil
                progress.policyDocumentDigest = nil
            case .attachPrincipal: progress.principalAttached = true
            case .setGroup: progress.groupName = plan.thingGroup
            case .activateCertificate: progress.certificateStatus = .active
            case .deactivateCertificate: progress.certificateStatus = .inactive
            case .retireCertificate: progress.retiring.removeFirst()
            case .deleteCertificate:
                progress.certificateID = nil
                progress.certificateArn = nil
                progress.attachedPolicy = nil
                progress.principalAttached = false
            case .deleteThing: progress = AWSThingProgress()
            }
        }
        return steps
    }

    @Test("an accepted device: thing, key, certificate, its own policy attached, principal, group, in that order")
    func provisioning() {
        let plan = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .active)
        #expect(Self.walk(plan) == [.begin, .createThing, .createKey, .createCertificate, .createPolicy, .attachPolicy, .attachPrincipal, .setGroup])
        let named = ProvisioningPlan(integration: Self.integration(perThing: false, group: nil), deviceID: "dev:1", device: Self.device, wanted: .active)
        #expect(Self.walk(named) == [.begin, .createThing, .createKey, .createCertificate, .attachPolicy, .attachPrincipal])
    }

    @Test("a removal takes down what exists, certificate before policy before thing; nothing made is nothing to do")
    func removal() {
        let active = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .active)
        var made = AWSThingProgress()
        made.touched = true
        made.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
        made.certificateID = "c"
        made.certificateArn = "arn:c"
        made.createdPolicy = "conduit-dev.1"
        made.retiring = [.init(certificateID: "old", certificateArn: "arn:old")]
        let absent = active.with(wanted: .absent)
        #expect(Self.walk(absent, from: made) == [.deleteCertificate, .retireCertificate, .deletePolicy, .deleteThing])
        #expect(absent.nextStep(AWSThingProgress()) == nil)
        #expect(absent.state(of: AWSThingProgress()) == .deprovisioned)
        // A certificate request a crash left unanswered is looked for before anything else.
        var interrupted = AWSThingProgress()
        interrupted.touched = true
        interrupted.keyRequest = .init(nonce: "n", requestedAt: Date(), csr: "csr", uncertain: true)
        #expect(absent.nextStep(interrupted) == .resolveCertificateRequest)
    }

    @Test("rejecting deactivates the certificate and nothing else; a pending device wants nothing, and nothing left in AWS")
    func disabling() {
        let plan = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .inactive)
        var progress = AWSThingProgress()
        progress.certificateID = "c"
        progress.certificateStatus = .active
        #expect(Self.walk(plan, from: progress) == [.deactivateCertificate])
        #expect(plan.state(of: progress) == .provisioning)
        let pending = plan.with(wanted: .nothingYet)
        #expect(pending.nextStep(AWSThingProgress()) == nil)
        #expect(pending.state(of: AWSThingProgress()) == .pending)
        // A device deleted and made again under its id before its things were gone: they go.
        progress.touched = true
        #expect(Self.walk(pending, from: progress) == [.deleteCertificate, .deleteThing])
        #expect(pending.state(of: progress) == .deprovisioning)
    }

    @Test("changed settings lead to the steps that apply them")
    func changes() {
        let plan = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .active)
        var progress = AWSThingProgress()
        progress.touched = true
        progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
        progress.attributesDigest = "stale"
        progress.certificateID = "c"
        progress.certificateArn = "arn:c"
        progress.certificateStatus = .active
        progress.createdPolicy = "conduit-dev.1"
        progress.policyDocumentDigest = "stale"
        progress.attachedPolicy = "conduit-dev.1"
        progress.principalAttached = true
        progress.groupName = "old-group"
        #expect(Self.walk(plan, from: progress) == [.updateThingAttributes, .updatePolicy, .setGroup])
        // From its own policy to a shared one: attach the shared one, then delete its own.
        let shared = ProvisioningPlan(integration: Self.integration(perThing: false), deviceID: "dev:1", device: Self.device, wanted: .active)
        progress.attributesDigest = shared.attributes.map(ProvisioningPlan.digest)
        progress.groupName = "fleet"
        #expect(Self.walk(shared, from: progress) == [.attachPolicy, .deleteCreatedPolicy])
    }

    @Test("one shared policy: made sure of before it is attached, never per thing; a change of topics updates it, and no thing's id is in it")
    func sharedPolicy() throws {
        var integration = Self.integration()
        integration.settings.policyMode = .shared
        let plan = ProvisioningPlan(integration: integration, deviceID: "dev:1", device: Self.device, wanted: .active)
        #expect(plan.policyName == "conduit-shared@int_1")
        #expect(
            Self.walk(plan) == [.begin, .createThing, .createKey, .createCertificate, .ensureSharedPolicy, .attachPolicy, .attachPrincipal, .setGroup]
        )
        var progress = AWSThingProgress()
        progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
        let document = try #require(plan.policyDocument(progress))
        // Another thing of the integration gets the very same document.
        let other = ProvisioningPlan(integration: integration, deviceID: "pump-9", device: nil, wanted: .active)
        var otherProgress = AWSThingProgress()
        otherProgress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/pump-9"
        #expect(other.policyDocument(otherProgress) == document)
        #expect(!document.contains("dev:1"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any])
        let statements = try #require(object["Statement"] as? [[String: Any]])
        let connect = try #require(statements.first { $0["Action"] as? String == "iot:Connect" })
        #expect(connect["Resource"] as? String == "arn:aws:iot:eu-west-1:123456789012:client/${iot:Connection.Thing.ThingName}")
        #expect((connect["Condition"] as? [String: [String: String]]) == ["Bool": ["iot:Connection.Thing.IsAttached": "true"]])
        let publish = try #require(statements.first { $0["Action"] as? String == "iot:Publish" }?["Resource"] as? [String])
        #expect(
            publish == [
                "arn:aws:iot:eu-west-1:123456789012:topic/conduit/${iot:Connection.Thing.ThingName}/up/*",
                "arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/${iot:Connection.Thing.ThingName}/shadow/*",
            ]
        )
        #expect(document.contains(#""arn:aws:iot:eu-west-1:123456789012:topicfilter/conduit/devices/${iot:Connection.Thing.ThingName}/down""#))

        // Provisioned; then the topics change: the shared policy is updated, nothing else.
        var done = AWSThingProgress()
        done.touched = true
        done.thingArn = progress.thingArn
        done.attributesDigest = plan.attributes.map(ProvisioningPlan.digest)
        done.certificateID = "c"
        done.certificateArn = "arn:c"
        done.certificateStatus = .active
        done.sharedPolicyDigest = ProvisioningPlan.digest(document)
        done.attachedPolicy = plan.policyName
        done.principalAttached = true
        done.groupName = "fleet"
        #expect(plan.nextStep(done) == nil)
        integration.settings.downlinkPrefix = "fleet/down"
        let moved = ProvisioningPlan(integration: integration, deviceID: "dev:1", device: Self.device, wanted: .active)
        #expect(Self.walk(moved, from: done) == [.ensureSharedPolicy])

        // From a policy of its own to the shared one: the shared one is attached before its own goes.
        var own = done
        own.sharedPolicyDigest = nil
        own.createdPolicy = "conduit-dev.1"
        own.policyDocumentDigest = "d"
        own.attachedPolicy = "conduit-dev.1"
        #expect(Self.walk(plan, from: own) == [.ensureSharedPolicy, .attachPolicy, .deleteCreatedPolicy])
        // And back: its own policy is made and attached; the shared one is left to the integration.
        let perThing = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .active)
        #expect(Self.walk(perThing, from: done) == [.createPolicy, .attachPolicy])
        // Removed, the thing's certificate goes with its attachments; the shared policy stays.
        #expect(Self.walk(plan.with(wanted: .absent), from: done) == [.deleteCertificate, .deleteThing])
    }

    @Test("the gateway: its own policy that only receives downlinks, no group, and a registered certificate replaced when it changes")
    func gateway() throws {
        var integration = Self.integration(perThing: false)
        let plan = ProvisioningPlan(integration: integration, deviceID: ProvisioningJob.gatewayDeviceID, device: nil, wanted: .active)
        #expect(plan.thingName == "conduit-gateway-int_1")
        #expect(plan.policyName == "conduit-gateway@int_1")
        #expect(Self.walk(plan) == [.begin, .createThing, .createKey, .createCertificate, .createPolicy, .attachPolicy, .attachPrincipal])
        var progress = AWSThingProgress()
        progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/conduit-gateway-int_1"
        let document = try #require(plan.policyDocument(progress))
        let statements = try #require((try JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: Any])?["Statement"] as? [NSDictionary])
        let arn = "arn:aws:iot:eu-west-1:123456789012"
        #expect(
            statements == [
                ["Effect": "Allow", "Action": "iot:Connect", "Resource": "\(arn):client/conduit-gateway-int_1"],
                ["Effect": "Allow", "Action": "iot:Subscribe", "Resource": "\(arn):topicfilter/conduit/devices/+/down"],
                ["Effect": "Allow", "Action": "iot:Receive", "Resource": "\(arn):topic/conduit/devices/*/down"],
                // Its things' shadows' changes in AWS, to relay to the devices: update/documents only.
                [
                    "Effect": "Allow", "Action": "iot:Subscribe",
                    "Resource": ["\(arn):topicfilter/$aws/things/+/shadow/update/documents", "\(arn):topicfilter/$aws/things/+/shadow/name/+/update/documents"],
                ],
                [
                    "Effect": "Allow", "Action": "iot:Receive",
                    "Resource": ["\(arn):topic/$aws/things/*/shadow/update/documents", "\(arn):topic/$aws/things/*/shadow/name/*/update/documents"],
                ],
            ] as [NSDictionary]
        )

        // The operator brings a certificate: it is registered instead; another one replaces it;
        // going back to AWS's signs a new one and retires the registered one.
        integration.settings.gatewayCertificate = "PEM-1"
        let registered = ProvisioningPlan(integration: integration, deviceID: ProvisioningJob.gatewayDeviceID, device: nil, wanted: .active)
        #expect(Self.walk(registered) == [.begin, .createThing, .registerCertificate, .createPolicy, .attachPolicy, .attachPrincipal])
        var made = AWSThingProgress()
        made.touched = true
        made.thingArn = progress.thingArn
        made.attributesDigest = plan.attributes.map(ProvisioningPlan.digest)
        made.certificateID = "registered"
        made.certificateArn = "arn:registered"
        made.certificatePem = "PEM-1"
        made.certificateRegistered = true
        made.certificateStatus = .active
        made.createdPolicy = "conduit-gateway@int_1"
        made.policyDocumentDigest = plan.policyDocument(made).map(ProvisioningPlan.digest)
        made.attachedPolicy = "conduit-gateway@int_1"
        made.principalAttached = true
        #expect(registered.nextStep(made) == nil)
        integration.settings.gatewayCertificate = "PEM-2"
        let replaced = ProvisioningPlan(integration: integration, deviceID: ProvisioningJob.gatewayDeviceID, device: nil, wanted: .active)
        #expect(Self.walk(replaced, from: made) == [.replaceCertificate, .registerCertificate, .attachPolicy, .attachPrincipal, .retireCertificate])
        integration.settings.gatewayCertificate = nil
        let signed = ProvisioningPlan(integration: integration, deviceID: ProvisioningJob.gatewayDeviceID, device: nil, wanted: .active)
        #expect(
            Self.walk(signed, from: made) == [.replaceCertificate, .createKey, .createCertificate, .attachPolicy, .attachPrincipal, .retireCertificate]
        )
    }

    @Test("names and attributes follow AWS's rules")
    func names() throws {
        #expect(ProvisioningPlan.thingPolicyName("dev:1") == "conduit-dev.1")
        let attributes = ProvisioningPlan.thingAttributes(of: Self.device, copying: ["model", "missing"])
        #expect(attributes == ["name": "Boiler_room_#2__north_", "model": "X_1"])
        let plan = ProvisioningPlan(integration: Self.integration(), deviceID: "dev:1", device: Self.device, wanted: .active)
        var progress = AWSThingProgress()
        progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
        let document = try #require(plan.policyDocument(progress))
        #expect(document.contains(#""arn:aws:iot:eu-west-1:123456789012:client/dev:1""#))
        #expect(document.contains(#""arn:aws:iot:eu-west-1:123456789012:topic/conduit/dev:1/up/*""#))
        #expect(document.contains(#""arn:aws:iot:eu-west-1:123456789012:topicfilter/conduit/devices/dev:1/down""#))
        #expect(document.contains(#""arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/dev:1/shadow/*""#))
    }

    @Test("a per-thing policy is never widened: a template stored before the rule grants no uplink topic rather than '*'")
    func neverWidened() throws {
        for template in ["fleet/{deviceName}/{subtopic}", "conduit/x{deviceId}/up", "conduit/{deviceId}{subtopic}", "*/{deviceId}"] {
            var integration = Self.integration()
            integration.settings.uplinkTopic = template
            let plan = ProvisioningPlan(integration: integration, deviceID: "dev:1", device: Self.device, wanted: .active)
            var progress = AWSThingProgress()
            progress.thingArn = "arn:aws:iot:eu-west-1:123456789012:thing/dev:1"
            let document = try #require(plan.policyDocument(progress))
            let topics = document.components(separatedBy: "\"").filter { $0.contains(":topic/") }
            #expect(topics == ["arn:aws:iot:eu-west-1:123456789012:topic/$aws/things/dev:1/shadow/*"] || Set(topics).count == 2, "\(template): \(document)")
            #expect(!topics.contains { $0.contains(":topic/") && !$0.contains("dev:1") }, "\(template): \(document)")
            #expect(!document.contains("fleet/*") && !document.contains("topic/*"), "\(template): \(document)")
        }
    }

    @Test("AWS outages and throttling are retried soon; refusals wait longer and show as failed")
    func errors() {
        #expect(!Provisioner.isPermanent(AWSError(code: "ThrottlingException", message: "", statusCode: 429)))
        #expect(!Provisioner.isPermanent(AWSError(code: "ServiceUnavailableException", message: "", statusCode: 503)))
        #expect(!Provisioner.isPermanent(AWSError(code: "DeleteConflictException", message: "", statusCode: 409)))
        #expect(!Provisioner.isPermanent(CancellationError()))
        #expect(Provisioner.isPermanent(AWSError(code: "AccessDeniedException", message: "", statusCode: 403)))
        #expect(Provisioner.isPermanent(AWSCredentialError.invalidConfiguration("no")))
        #expect((1.6...2.4).contains(Provisioner.backoff(attempts: 1, permanent: false)))
        #expect(Provisioner.backoff(attempts: 30, permanent: false) <= 360)
        #expect((24...36).contains(Provisioner.backoff(attempts: 1, permanent: true)))
        #expect(Provisioner.backoff(attempts: 30, permanent: true) <= 4320)
    }
}
