import AWS
import AWSIoT
import Foundation
import Logging
import Metrics
import Store

/// AWS IoT Core integrations: their settings (admins only), and each device's provisioning in them.
public struct Integrations: Sendable {
    let hub: Hub

    // MARK: Settings

    /// Creates an integration after AWS accepted its credentials (DescribeEndpoint), and binds the
    /// tenant's devices to it; the provisioner then makes their things.
    public func create(_ draft: IntegrationDraft, by principal: Principal) async throws -> Integration {
        let created = try await self.prepare(draft, by: principal)
        let now = created.createdAt
        try await self.save(created, event: EventType.integrationCreated, by: principal, at: now) { session in
            try await session.integrations.insert(created)
        }
        self.hub.logger.info("integration created", metadata: [LogKey.integrationID: "\(created.id)", LogKey.tenantID: "\(principal.tenantID)"])
        return created
    }

    /// Checks a new integration's fields and asks AWS whether its credentials work, as
    /// ``create(_:by:)`` does, and saves nothing: the account's data endpoint when they do.
    public func verify(_ draft: IntegrationDraft, by principal: Principal) async throws -> String {
        try await self.prepare(draft, by: principal).dataEndpoint ?? ""
    }

    /// A new integration from a draft, its fields checked and its credentials accepted by AWS; not saved.
    private func prepare(_ draft: IntegrationDraft, by principal: Principal) async throws -> Integration {
        try principal.require(.admin, to: "creating integrations")
        guard let name = draft.name else { throw HubError.invalidField("name", "is required") }
        guard draft.region != nil else { throw HubError.invalidField("region", "is required") }
        guard let credentialsInput = draft.credentials else { throw HubError.invalidField("credentials", "is required") }
        guard let bind = draft.bind else {
            throw HubError.invalidField("bind", "is required: {devices: [ids]}, {labels: [labels]} or {all: true}")
        }
        var settings = IntegrationSettings(
            region: "", endpointURL: nil, policyName: nil, perThingPolicy: true, thingGroup: nil, thingAttributes: [],
            uplinkTopic: IntegrationRules.defaultUplinkTopic, payloadFormat: "raw", downlinkPrefix: IntegrationRules.defaultDownlinkPrefix,
            binding: try IntegrationRules.binding(bind)
        )
        let now = self.hub.now()
        var integration = Integration(
            id: Secrets.identifier(prefix: "int_"), tenantID: principal.tenantID, name: try Validation.displayName(name), type: IntegrationRules.type,
            settings: settings, credentials: IntegrationCredentials(kind: .default), active: true, status: .active, dataEndpoint: nil,
            createdGroups: [], createdAt: now, updatedAt: now
        )
        integration.credentials = try await self.credentials(credentialsInput, for: integration.id, by: principal)
        try self.apply(draft, to: &integration, settings: &settings)
        try self.hub.connections.checkEndpoints(settings)
        try PolicyScope.check(settings)
        integration.settings = settings
        try await self.checkGatewayCertificateIsOwn(integration)
        integration.dataEndpoint = try await self.check(integration)
        return integration
    }

    /// Applies the draft's fields but credentials and bind (checked by the caller).
    private func apply(_ draft: IntegrationDraft, to integration: inout Integration, settings: inout IntegrationSettings) throws {
        if let name = draft.name { integration.name = try Validation.displayName(name) }
        if let type = draft.type, type != IntegrationRules.type {
            throw HubError.invalidField("type", "must be \"aws-iot-core\"")
        }
        if let region = draft.region {
            try IntegrationRules.region(region)
            settings.region = region
        }
        if let endpointURL = draft.endpointURL {
            settings.endpointURL = endpointURL
        }
        if let policy = draft.policy {
            switch (policy.name, policy.perThing ?? false, policy.shared ?? false) {
            case (let name?, false, false):
                try IntegrationRules.policyName(name)
                settings.policyMode = .named(name)
            case (nil, true, false):
                settings.policyMode = .perThing
            case (nil, false, true):
                settings.policyMode = .shared
            default:
                throw HubError.invalidField("policy", "give one of {name: an existing AWS IoT policy}, {perThing: true} or {shared: true}")
            }
        }
        if let thingGroup = draft.thingGroup {
            if let group = thingGroup { try IntegrationRules.thingGroup(group) }
            settings.thingGroup = thingGroup
        }
        if let attributes = draft.thingAttributes {
            try IntegrationRules.thingAttributes(attributes)
            settings.thingAttributes = attributes
        }
        if let topic = draft.uplinkTopic {
            try IntegrationRules.uplinkTopic(topic)
            settings.uplinkTopic = topic
        }
        if let topics = draft.ingestTopics {
            settings.ingestTopics = topics.isEmpty ? nil : topics
        }
        try IntegrationRules.ingestTopics(settings.ingestTopics ?? [], uplinkTopic: settings.uplinkTopic)
        if let format = draft.payloadFormat {
            guard IntegrationRules.payloadFormats.contains(format) else {
                throw HubError.invalidField("payloadFormat", "must be raw or envelope")
            }
            settings.payloadFormat = format
        }
        if let prefix = draft.downlinkPrefix {
            try IntegrationRules.downlinkPrefix(prefix)
            settings.downlinkPrefix = prefix
        }
        if let endpoint = draft.mqttEndpoint {
            if let endpoint { try IntegrationRules.mqttEndpoint(endpoint) }
            settings.mqttEndpoint = endpoint
        }
        if let roots = draft.mqttTrustRoots {
            if let roots { try IntegrationRules.mqttTrustRoots(roots) }
            settings.mqttTrustRoots = roots
        }
        if let gateway = draft.gateway {
            if let gateway {
                let (certificate, sealedKey) = try IntegrationRules.gateway(
                    gateway, secrets: self.hub.secrets, binding: .gatewayKey(tenantID: integration.tenantID, integrationID: integration.id),
                    now: self.hub.now()
                )
                settings.gatewayCertificate = certificate
                integration.credentials.sealedGatewayPrivateKey = sealedKey
            } else {
                settings.gatewayCertificate = nil
                integration.credentials.sealedGatewayPrivateKey = nil
            }
        }
        if let active = draft.active { integration.active = active }
    }

    /// Each gateway needs a certificate of its own: removing one integration's would detach and
    /// delete the other's.
    private func checkGatewayCertificateIsOwn(_ integration: Integration) async throws {
        guard let certificate = integration.settings.gatewayCertificate else { return }
        let session = self.hub.store.session
        for status in [IntegrationStatus.active, .deleting] {
            for other in try await session.integrations.list(status: status)
            where other.id != integration.id && other.settings.gatewayCertificate == certificate {
                throw HubError.conflict(
                    "gateway_certificate_in_use", "gateway.certificatePem: another integration's gateway uses this certificate; give each its own"
                )
            }
        }
    }

    /// The credentials as given, within what the tenant may use: Conduit's own credentials are
    /// the installation's, for its default tenant (and the CLI) only; another tenant's role must
    /// expect the tenant's id as its ExternalId, so that no tenant can have Conduit assume a role
    /// meant for another (the confused deputy AWS warns about).
    private func credentials(
        _ input: IntegrationDraft.Credentials, for integrationID: String, by principal: Principal
    ) async throws -> IntegrationCredentials {
        var input = input
        let tenant = try await self.hub.store.session.tenants.get(id: principal.tenantID)
        let isInstallation = principal.actor == "cli" || tenant?.name == Tenant.defaultName
        if !isInstallation {
            if input.source != nil {
                throw HubError.forbidden("credentials.source: Conduit's own AWS credentials are for the installation's default tenant only")
            }
            if input.roleARN != nil {
                guard input.externalID == nil || input.externalID == principal.tenantID else {
                    throw HubError.invalidField(
                        "credentials.externalId", "must be this tenant's id, \(principal.tenantID) (or left out): the role's trust policy should expect it"
                    )
                }
                input.externalID = principal.tenantID
            }
        }
        return try IntegrationRules.credentials(
            input, secrets: self.hub.secrets, binding: .awsSecretKey(tenantID: principal.tenantID, integrationID: integrationID)
        )
    }

    /// Asks AWS for the account's data endpoint with the integration's credentials: the check
    /// that they work. A refusal is a 400 with AWS's reason.
    private func check(_ integration: Integration) async throws -> String {
        var client: AWSIoTClient
        do {
            client = try self.hub.connections.makeClient(
                settings: integration.settings, credentials: integration.credentials, owner: integration, retryPolicy: AWSRetryPolicy(maximumAttempts: 2),
                requestTimeout: .seconds(4)
            )
            return try await client.describeEndpoint()
        } catch let error as HubError {
            throw error
        } catch let error as AWSError {
            throw HubError.invalidField("credentials", "AWS refused them: \(error.code): \(error.message)")
        } catch let error as AWSCredentialError {
            throw HubError.invalidField("credentials", error.message)
        } catch {
            let url = integration.settings.endpointURL ?? "https://iot.\(integration.settings.region).amazonaws.com"
            // Not the error itself: which one it was (refused, reset, timed out) would tell a
            // tenant which ports answer at an address the rule let through.
            self.hub.logger.info("integration check could not reach AWS IoT", metadata: ["conduit.endpoint": "\(url)", "error": "\(error)"])
            throw HubError.invalidField("endpointUrl", "cannot reach AWS IoT at \(url): no answer from AWS IoT there")
        }
    }

    /// The AWS topic a device's message on `devices/{id}/{subtopic}` goes to under this template.
    public static func uplinkTopic(_ template: String, deviceID: String, deviceName: String, subtopic: String) -> String {
        UplinkFormat.topic(template, deviceID: deviceID, deviceName: deviceName, mqttTopic: "devices/\(deviceID)/\(subtopic)")
    }

    /// The thing name (and MQTT client id, and policy name) of an integration's downlink gateway.
    public static func gatewayThingName(_ integrationID: String) -> String {
        ProvisioningPlan.gatewayThingName(integrationID)
    }

    /// The tenant's integrations, by name.
    public func list(by principal: Principal) async throws -> [Integration] {
        try await self.hub.store.session.integrations.list(tenantID: principal.tenantID)
    }

    /// The tenant's integrations, each with how many devices it holds in each state.
    public func summaries(by principal: Principal) async throws -> [(integration: Integration, stateCounts: [AWSProvisioningState: Int])] {
        var result: [(Integration, [AWSProvisioningState: Int])] = []
        for integration in try await self.list(by: principal) {
            result.append((integration, try await self.hub.store.session.awsThings.countByState(integrationID: integration.id)))
        }
        return result
    }

    /// The tenant's integration, or a 404.
    public func get(_ id: String, by principal: Principal) async throws -> Integration {
        guard Validation.isOpaqueIdentifier(id), let integration = try await self.hub.store.session.integrations.get(tenantID: principal.tenantID, id: id)
        else {
            throw HubError.notFound("integration", id)
        }
        return integration
    }

    /// An integration with the devices it pipes, how many are in each state, and the latest errors.
    public struct Overview: Sendable {
        public var integration: Integration
        public var stateCounts: [AWSProvisioningState: Int]
        public var deviceCount: Int
        /// The first devices by id (at most ``Integrations/overviewDeviceLimit``).
        public var devices: [ProvisioningJob]
        public var latestErrors: [ProvisioningJob]
        /// The downlink gateway's thing, certificate and policy in AWS.
        public var gateway: ProvisioningJob?
        /// Its connection to the data endpoint, when this process runs one.
        public var gatewayConnection: DownlinkGatewayStatus?
    }

    public static let overviewDeviceLimit = 100

    public func overview(_ id: String, by principal: Principal) async throws -> Overview {
        let integration = try await self.get(id, by: principal)
        let session = self.hub.store.session
        let counts = try await session.awsThings.countByState(integrationID: id)
        return Overview(
            integration: integration, stateCounts: counts, deviceCount: counts.values.reduce(0, +),
            devices: try await session.awsThings.list(integrationID: id, limit: Self.overviewDeviceLimit),
            latestErrors: try await session.awsThings.latestErrors(integrationID: id, limit: 10),
            gateway: try await session.awsThings.get(integrationID: id, deviceID: ProvisioningJob.gatewayDeviceID),
            gatewayConnection: self.hub.gatewayStatus(integrationID: id)
        )
    }

    /// Changes an integration. New credentials are checked against AWS first; a new binding or
    /// new settings reach every device's job.
    public func update(_ id: String, with draft: IntegrationDraft, by principal: Principal) async throws -> Integration {
        try principal.require(.admin, to: "changing integrations")
        var integration = try await self.get(id, by: principal)
        let original = integration
        // While it is being deleted, only its credentials may change (so that a removal stuck on
        // revoked credentials can finish).
        guard integration.status == .active || draft.changesOnlyCredentials else {
            throw HubError.conflict("integration_deleting", "integration '\(id)' is being deleted; only its credentials can change")
        }
        var settings = integration.settings
        try self.apply(draft, to: &integration, settings: &settings)
        if let bind = draft.bind { settings.binding = try IntegrationRules.binding(bind) }
        try self.hub.connections.checkEndpoints(settings)
        do {
            try PolicyScope.check(settings)
        } catch let error as HubError where error.field == "uplinkTopic" && (draft.policy == nil || draft.uplinkTopic == nil) {
            // The template or the policy is the stored one: it is the request against the integration
            // as it is that conflicts, which the request alone cannot show (the document can't either).
            throw HubError(kind: .conflict, code: "uplink_topic_out_of_scope", message: error.message, field: error.field)
        }
        let reachChanged = settings.region != integration.settings.region || settings.endpointURL != integration.settings.endpointURL
        integration.settings = settings
        if draft.gateway != nil { try await self.checkGatewayCertificateIsOwn(integration) }
        if let credentials = draft.credentials {
            let gatewayKey = integration.credentials.sealedGatewayPrivateKey
            integration.credentials = try await self.credentials(credentials, for: integration.id, by: principal)
            integration.credentials.sealedGatewayPrivateKey = gatewayKey
        }
        if draft.credentials != nil || reachChanged {
            integration.dataEndpoint = try await self.check(integration)
        }
        // Another region, endpoint or account would leave everything made so far where it is,
        // out of Conduit's reach: only an integration holding nothing in AWS may move (in
        // practice, one whose gateway is not made yet).
        let moved = reachChanged || integration.dataEndpoint != original.dataEndpoint
        if moved, try await self.hub.store.session.awsThings.holdsResources(integrationID: id) {
            throw HubError.conflict(
                "integration_in_use",
                "region, endpointUrl and the AWS account can change only while the integration holds nothing in AWS, and its downlink gateway is there from the start: create another integration (and delete this one) instead"
            )
        }
        let now = self.hub.now()
        integration.updatedAt = now
        let updated = integration
        let changedSettings = draft.credentials != nil || reachChanged
        try await self.save(updated, event: EventType.integrationUpdated, by: principal, at: now) { session in
            // Refused if someone changed or deleted it since it was read: their change would be lost.
            guard let current = try await session.integrations.get(tenantID: principal.tenantID, id: updated.id, forUpdate: true),
                current.updatedAt == original.updatedAt, current.status == original.status
            else {
                throw HubError.conflict("integration_changed", "integration '\(updated.id)' changed meanwhile; read it again and retry")
            }
            try await session.integrations.update(updated)
            if changedSettings {
                // Jobs that failed under the old settings may pass now: try them at once.
                try await session.awsThings.retryNow(integrationID: updated.id, now: now)
            }
        }
        return updated
    }

    /// Deletes an integration: every device it made in AWS is removed (certificate, policy,
    /// thing), then its thing group if Conduit made it, then the integration. Returns it as
    /// `deleting`; it disappears when AWS is clean.
    public func delete(_ id: String, by principal: Principal) async throws -> Integration {
        try principal.require(.admin, to: "deleting integrations")
        var integration = try await self.get(id, by: principal)
        guard integration.status == .active else { return integration }
        let now = self.hub.now()
        integration.status = .deleting
        integration.updatedAt = now
        let deleting = integration
        try await self.save(deleting, event: EventType.integrationDeleted, by: principal, at: now) { session in
            try await session.integrations.update(deleting)
        }
        return deleting
    }

    /// Writes the integration (`write`), brings every device's job in line with it and records
    /// the event, in one transaction; then wakes the provisioner.
    private func save(
        _ integration: Integration, event: String, by principal: Principal, at now: Date,
        write: @escaping @Sendable (StoreSession) async throws -> Void
    ) async throws {
        do {
            try await self.hub.store.transaction { session in
                try await write(session)
                try await AWSBindings.sync(integration: integration, in: session, now: now)
                try await session.events.append(
                    tenantID: principal.tenantID, type: event, deviceID: nil, actor: principal.actor,
                    data: EventLog.json(["integrationId": integration.id, "name": integration.name]), at: now
                )
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("integration_exists", "name: the tenant has an integration named '\(integration.name)' already")
        }
        self.hub.provisioningDoorbell.ring()
        self.hub.gatewayDoorbell.ring()
    }

    /// Gives every active integration its downlink gateway row, for integrations made before
    /// gateways were, and brings a gateway made by an earlier version up to what this one makes
    /// (its policy, say); the provisioner then does the work in AWS. Run when gateways start.
    public func ensureGateways() async {
        do {
            let now = self.hub.now()
            var work = false
            for integration in try await self.hub.store.session.integrations.list(status: .active) {
                if var gateway = try await self.hub.store.session.awsThings.get(integrationID: integration.id, deviceID: ProvisioningJob.gatewayDeviceID) {
                    // A gateway made by an earlier version whose policy (or anything else the
                    // plan holds) is not what this version makes: brought up to date.
                    let plan = ProvisioningPlan(integration: integration, deviceID: gateway.deviceID, device: nil, wanted: gateway.wanted)
                    if !gateway.needsWork, gateway.leaseOwner == nil, plan.nextStep(gateway.progress) != nil {
                        gateway.needsWork = true
                        gateway.nextAttemptAt = now
                        try await self.hub.store.session.awsThings.update(gateway)
                        work = true
                    }
                    continue
                }
                work =
                    try await self.hub.store.transaction { session in
                        try await AWSBindings.sync(
                            deviceID: ProvisioningJob.gatewayDeviceID, tenantID: integration.tenantID, device: nil, integration: integration,
                            in: session, now: now
                        )
                    } || work
            }
            if work { self.hub.provisioningDoorbell.ring() }
        } catch {
            self.hub.logger.warning("cannot set up the integrations' downlink gateways", metadata: ["error": "\(error)"])
        }
    }

    /// Notes that Conduit is about to create a thing group for the integration, so that it deletes it with the integration.
    func noteCreatedGroup(_ group: String, in id: String) async throws {
        try await self.hub.store.transaction { session in try await session.integrations.noteCreatedGroup(group, in: id) }
    }
}
