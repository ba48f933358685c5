import Foundation
import Hub
import Hummingbird

/// `/v1/devices/{id}/shadow` and `/shadows`: the device's AWS IoT shadows, without AWS's metadata.
struct ShadowRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("devices/{id}/shadow", use: self.get)
        group.patch("devices/{id}/shadow", use: self.update)
        group.delete("devices/{id}/shadow", use: self.delete)
        group.get("devices/{id}/shadows", use: self.list)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> ShadowRepresentation {
        let principal = try context.requirePrincipal()
        let shadow = try await self.hub.shadows.get(
            deviceID: try context.parameters.require("id"), integrationID: try Self.integration(request), name: try Self.name(request), by: principal
        )
        return ShadowRepresentation(shadow)
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> ShadowRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing a device's desired state")
        let body = try await JSONBody(request: request, context: context, allowed: ["desired", "version", "reported"])
        if body.has("reported") {
            throw HubError.invalidField("reported", "is the device's to report and cannot be written from the API; change desired")
        }
        guard let desired = try body.anyObject("desired") else { throw HubError.invalidField("desired", "is required: an object") }
        let shadow = try await self.hub.shadows.updateDesired(
            deviceID: try context.parameters.require("id"), integrationID: try Self.integration(request), name: try Self.name(request),
            desired: desired, version: try body.int("version"), by: principal
        )
        return ShadowRepresentation(shadow)
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> HTTPResponse.Status {
        let principal = try context.requirePrincipal()
        try await self.hub.shadows.delete(
            deviceID: try context.parameters.require("id"), integrationID: try Self.integration(request), name: try Self.name(request), by: principal
        )
        return .noContent
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ShadowListRepresentation {
        let principal = try context.requirePrincipal()
        let names = try await self.hub.shadows.list(
            deviceID: try context.parameters.require("id"), integrationID: try Self.integration(request), by: principal
        )
        return ShadowListRepresentation(items: names)
    }
}

extension ShadowRoutes {
    /// `?integration=`, checked as the document states it.
    static func integration(_ request: Request) throws -> String? {
        try request.query("integration", rule: FieldRules.opaqueIdentifier)
    }

    /// `?name=`, a named shadow's, checked as the document states it.
    static func name(_ request: Request) throws -> String? {
        try request.query("name", rule: FieldRules.shadowName)
    }
}

/// `{"desired", "reported", "delta"?, "version"?, "timestamp"?}`.
struct ShadowRepresentation: ResponseEncodable {
    let desired: [String: JSONValue]
    let reported: [String: JSONValue]
    let delta: [String: JSONValue]?
    let version: Int?
    let timestamp: Int?
    /// The integration whose thing's shadow it is: the device's shadow integration unless `?integration=` named another.
    let integration: String?

    init(_ shadow: ShadowDocument) {
        self.integration = shadow.integrationID
        self.desired = shadow.desired
        self.reported = shadow.reported
        self.delta = shadow.delta
        self.version = shadow.version
        self.timestamp = shadow.timestamp
    }
}

/// The names of a device's named shadows.
struct ShadowListRepresentation: ResponseEncodable {
    let items: [String]
}
