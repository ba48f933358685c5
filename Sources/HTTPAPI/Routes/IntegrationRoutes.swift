import Hub
import Hummingbird

/// `/v1/integrations`: AWS IoT Core integrations (admin), and each device's state in them.
struct IntegrationRoutes {
    let hub: Hub

    static let fields: Set<String> = [
        "name", "type", "region", "endpointUrl", "credentials", "policy", "thingGroup", "thingAttributes", "uplinkTopic",
        "payloadFormat", "downlinkPrefix", "active", "bind", "mqttEndpoint", "mqttTrustRoots", "gateway", "ingestTopics",
    ]

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("integrations", use: self.create)
        group.get("integrations", use: self.list)
        group.get("integrations/{id}", use: self.get)
        group.patch("integrations/{id}", use: self.update)
        group.delete("integrations/{id}", use: self.delete)
        group.post("integrations/{id}/reconcile", use: self.reconcile)
        group.get("devices/{id}/aws", use: self.deviceStatus)
        group.post("devices/{id}/aws/{integrationId}/credentials", use: self.credentials)
        group.post("devices/{id}/aws/{integrationId}/rotate", use: self.rotate)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<IntegrationRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "creating integrations")
        let body = try await JSONBody(request: request, context: context, allowed: Self.fields)
        let integration = try await self.hub.integrations.create(try Self.draft(body), by: principal)
        var response = EditedResponse(status: .created, response: IntegrationRepresentation(integration))
        response.headers[.location] = "/v1/integrations/\(integration.id)"
        return response
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<IntegrationRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "listing integrations")
        let integrations = try await self.hub.integrations.list(by: principal)
        return ListRepresentation(items: integrations.map { IntegrationRepresentation($0) }, nextCursor: nil)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> IntegrationRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "reading integrations")
        let overview = try await self.hub.integrations.overview(try context.parameters.require("id"), by: principal)
        return IntegrationRepresentation(overview.integration, overview: overview)
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> IntegrationRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing integrations")
        let body = try await JSONBody(request: request, context: context, allowed: Self.fields)
        if body.has("type") { throw HubError.invalidField("type", "cannot be changed; create a new integration instead") }
        for required in [
            "name", "region", "credentials", "bind", "uplinkTopic", "downlinkPrefix", "payloadFormat", "active", "policy", "thingAttributes",
        ]
        where body.isNull(required) {
            throw HubError.invalidField(required, "cannot be null")
        }
        let integration = try await self.hub.integrations.update(try context.parameters.require("id"), with: try Self.draft(body), by: principal)
        return IntegrationRepresentation(integration)
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<IntegrationRepresentation> {
        let principal = try context.requirePrincipal()
        let integration = try await self.hub.integrations.delete(try context.parameters.require("id"), by: principal)
        return EditedResponse(status: .accepted, response: IntegrationRepresentation(integration))
    }

    @Sendable func reconcile(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<DriftRepresentation> {
        let principal = try context.requirePrincipal()
        let drift = try await self.hub.integrations.reconcile(try context.parameters.require("id"), by: principal)
        return ListRepresentation(items: drift.map { DriftRepresentation(deviceId: $0.deviceID, repairs: $0.repairs) }, nextCursor: nil)
    }

    @Sendable func deviceStatus(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<DeviceAWSRepresentation> {
        let principal = try context.requirePrincipal()
        let statuses = try await self.hub.integrations.awsStatus(of: try context.parameters.require("id"), by: principal)
        return ListRepresentation(items: statuses.map(DeviceAWSRepresentation.init), nextCursor: nil)
    }

    @Sendable func credentials(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<CredentialsRepresentation> {
        let principal = try context.requirePrincipal()
        let bundle = try await self.hub.integrations.issueCredentials(
            deviceID: try context.parameters.require("id"), integrationID: try context.parameters.require("integrationId"), by: principal
        )
        var response = EditedResponse(status: .ok, response: CredentialsRepresentation(bundle))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func rotate(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<DeviceAWSRepresentation> {
        let principal = try context.requirePrincipal()
        let status = try await self.hub.integrations.rotateCredentials(
            deviceID: try context.parameters.require("id"), integrationID: try context.parameters.require("integrationId"), by: principal
        )
        // 202 while the new certificate is still being made.
        return EditedResponse(status: status.record.needsWork ? .accepted : .ok, response: DeviceAWSRepresentation(status))
    }

    /// Reads a create or patch body into a draft; field rules are the hub's.
    static func draft(_ body: JSONBody) throws -> IntegrationDraft {
        var draft = IntegrationDraft()
        draft.name = try body.string("name")
        draft.type = try body.string("type")
        draft.region = try body.string("region")
        if body.has("endpointUrl") { draft.endpointURL = .some(try body.string("endpointUrl")) }
        if let credentials = try body.object("credentials", allowed: ["accessKeyId", "secretAccessKey", "roleArn", "externalId", "source"]) {
            draft.credentials = .init(
                accessKeyID: try credentials.string("accessKeyId"), secretAccessKey: try credentials.string("secretAccessKey"),
                roleARN: try credentials.string("roleArn"), externalID: try credentials.string("externalId"), source: try credentials.string("source")
            )
        }
        if let policy = try body.object("policy", allowed: ["name", "perThing", "shared"]) {
            draft.policy = .init(name: try policy.string("name"), perThing: try policy.bool("perThing"), shared: try policy.bool("shared"))
        }
        if body.has("thingGroup") { draft.thingGroup = .some(try body.string("thingGroup")) }
        draft.thingAttributes = try body.stringArray("thingAttributes")
        draft.uplinkTopic = try body.string("uplinkTopic")
        draft.payloadFormat = try body.string("payloadFormat")
        draft.downlinkPrefix = try body.string("downlinkPrefix")
        if body.has("ingestTopics") { draft.ingestTopics = try body.stringArray("ingestTopics") ?? [] }
        draft.active = try body.bool("active")
        if body.has("mqttEndpoint") { draft.mqttEndpoint = .some(try body.string("mqttEndpoint")) }
        if body.has("mqttTrustRoots") { draft.mqttTrustRoots = .some(try body.string("mqttTrustRoots")) }
        if body.has("gateway") {
            draft.gateway = .some(
                try body.object("gateway", allowed: ["certificatePem", "privateKey"]).map { gateway in
                    IntegrationDraft.Gateway(certificatePEM: try gateway.string("certificatePem"), privateKeyPEM: try gateway.string("privateKey"))
                }
            )
        }
        if let bind = try body.object("bind", allowed: ["devices", "labels", "all"]) {
            draft.bind = .init(devices: try bind.stringArray("devices"), labels: try bind.stringArray("labels"), all: try bind.bool("all"))
        }
        return draft
    }
}
