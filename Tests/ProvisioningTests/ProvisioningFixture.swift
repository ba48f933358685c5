import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Store

/// A hub over a fresh store, an admin of its default tenant, and a fresh moto account whose
/// role the integrations assume.
struct ProvisioningFixture {
    let hub: Hub
    let admin: Principal
    let account: MotoPeer.Account
    let iot: AWSIoTClient

    static func run(
        _ database: TestDatabase, quotas: [String: Double] = AWSRateLimiter.awsIoTQuotas, allowing: [String] = [],
        _ body: @escaping @Sendable (ProvisioningFixture) async throws -> Void
    ) async throws {
        try await database.withHub(aws: try MotoPeer.environment(quotas: quotas, allowing: allowing)) { hub in
            let tenant = try await hub.access.tenant(named: Tenant.defaultName)
            let account = MotoPeer.Account()
            try await body(
                ProvisioningFixture(
                    hub: hub, admin: Principal(tenantID: tenant.id, role: .admin, actor: "test"), account: account, iot: try account.iot()
                )
            )
        }
    }

    /// An integration into this fixture's account; `configure` adjusts the draft.
    func createIntegration(
        name: String = "moto", bind: IntegrationDraft.Bind = .init(labels: ["fleet"]), _ configure: (inout IntegrationDraft) -> Void = { _ in }
    ) async throws -> Integration {
        var draft = IntegrationDraft()
        draft.name = name
        draft.region = "us-east-1"
        draft.endpointURL = .some(try MotoPeer.url().absoluteString)
        draft.credentials = .init(roleARN: self.account.roleARN, externalID: "conduit-test")
        draft.policy = .init(perThing: true)
        draft.thingGroup = .some("conduit-fleet")
        draft.thingAttributes = ["model"]
        draft.bind = bind
        configure(&draft)
        return try await self.hub.integrations.create(draft, by: self.admin)
    }

    @discardableResult
    func createDevice(_ id: String, labels: [String] = ["fleet"], attributes: [String: String] = ["model": "m-1"]) async throws -> Device {
        try await self.hub.devices.create(.init(id: id, name: "Sensor \(id)", labels: labels, attributes: attributes), by: self.admin).device
    }

    func record(_ deviceID: String, in integration: Integration) async throws -> ProvisioningJob? {
        try await self.hub.store.session.awsThings.get(integrationID: integration.id, deviceID: deviceID)
    }

    /// Every device's thing name in the account: all but the integrations' downlink gateways.
    func thingNames() async throws -> Set<String> {
        Set(try await self.iot.listThings().map(\.thingName).filter { !$0.hasPrefix(Self.gatewayPrefix) })
    }

    static let gatewayPrefix = "conduit-gateway-"

    /// Every certificate in the account but those the gateway things hold (a gateway's
    /// certificate left behind by a crash is counted).
    func certificates() async throws -> [AWSIoTClient.CertificateSummary] {
        var gatewayCertificates = Set<String>()
        for thing in try await self.iot.listThings() where thing.thingName.hasPrefix(Self.gatewayPrefix) {
            gatewayCertificates.formUnion(try await self.iot.listThingPrincipals(thing: thing.thingName))
        }
        return try await self.iot.listCertificates().filter { !gatewayCertificates.contains($0.certificateArn) }
    }

    /// Every policy in the account but the gateways'.
    func devicePolicies() async throws -> Set<String> {
        Set(try await self.iot.listPolicies().filter { !$0.hasPrefix("conduit-gateway@") })
    }

    /// The integration's gateway in AWS: its thing's certificate, as described, and its policy.
    func gateway(of integration: Integration) async throws -> (certificate: AWSIoTClient.Certificate, policy: String) {
        let name = "conduit-gateway-\(integration.id)"
        let principals = try await self.iot.listThingPrincipals(thing: name)
        guard principals.count == 1, let arn = principals.first, let id = arn.split(separator: "/").last else {
            throw TestSetupError("the gateway thing \(name) holds \(principals)")
        }
        let policies = try await self.iot.listAttachedPolicies(target: arn)
        let policy = "conduit-gateway@\(integration.id)"
        guard policies == [policy], let document = try await self.iot.getPolicy(name: policy).policyDocument else {
            throw TestSetupError("the gateway's certificate holds the policies \(policies)")
        }
        return (try await self.iot.describeCertificate(id: String(id)), document)
    }

    /// True when the policy exists in the account.
    func policyExists(_ name: String) async throws -> Bool {
        try await Self.exists { _ = try await self.iot.getPolicy(name: name) }
    }

    func groupExists(_ name: String) async throws -> Bool {
        try await Self.exists { _ = try await self.iot.describeThingGroup(name: name) }
    }

    /// False when `describe` finds nothing (AWS's not-found), true when it finds it.
    static func exists(_ describe: () async throws -> Void) async throws -> Bool {
        do {
            try await describe()
            return true
        } catch let error as AWSError where error.isNotFound {
            return false
        }
    }
}
