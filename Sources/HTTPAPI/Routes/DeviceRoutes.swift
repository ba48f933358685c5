import Foundation
import Hub
import Hummingbird

/// `/v1/devices`: the registry and each device's lifecycle.
struct DeviceRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("devices", use: self.create)
        group.get("devices", use: self.list)
        group.get("devices/{id}", use: self.get)
        group.patch("devices/{id}", use: self.update)
        group.delete("devices/{id}", use: self.delete)
        group.post("devices/{id}/secret", use: self.rotateSecret)
        group.get("devices/{id}/messages", use: self.messages)
        group.post("devices/{id}/downlinks", use: self.queueDownlink)
        group.get("devices/{id}/downlinks", use: self.downlinks)
        group.delete("devices/{id}/downlinks", use: self.clearDownlinks)
        for action in LifecycleAction.allCases {
            group.post("devices/{id}/\(action.rawValue)") { request, context in
                try await self.perform(action, request: request, context: context)
            }
        }
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<DeviceRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "creating devices")
        let body = try await JSONBody(request: request, context: context, allowed: ["id", "name", "labels", "attributes"])
        let creation = DeviceRegistry.Creation(
            id: try body.string("id"),
            name: try body.requiredString("name"),
            labels: try body.stringArray("labels") ?? [],
            attributes: try body.stringMap("attributes")?.compactMapValues { $0 } ?? [:]
        )
        let created = try await self.hub.devices.create(creation, by: principal)
        var response = EditedResponse(status: .created, response: DeviceRepresentation(created.device, secret: created.secret))
        response.headers[.location] = "/v1/devices/\(created.device.id)"
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<DeviceRepresentation> {
        let principal = try context.requirePrincipal()
        var filter = DeviceFilter(label: try request.query("label", rule: FieldRules.label))
        if let status = try request.query("status", oneOf: DeviceStatus.allCases.map(\.rawValue)) {
            filter.status = DeviceStatus(rawValue: status)
        }
        let page = try await self.hub.devices.list(filter: filter, page: try request.pageRequest(cursor: FieldRules.deviceCursor), by: principal)
        return ListRepresentation(items: page.items.map { DeviceRepresentation($0) }, nextCursor: page.nextCursor)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> DeviceRepresentation {
        let principal = try context.requirePrincipal()
        return DeviceRepresentation(try await self.hub.devices.get(try context.parameters.require("id"), by: principal))
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> DeviceRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "changing devices")
        let body = try await JSONBody(
            request: request, context: context, allowed: ["name", "labels", "attributes", "id", "status"]
        )
        if body.has("id") { throw HubError.invalidField("id", "cannot be changed; create a new device instead") }
        if body.has("status") {
            throw HubError.invalidField("status", "cannot be patched; POST /v1/devices/{id}/accept, /reject or /decommission")
        }
        if body.has("name"), try body.string("name") == nil { throw HubError.invalidField("name", "must be a string") }
        if body.isNull("attributes") {
            throw HubError.invalidField("attributes", "must be an object; a null value inside it removes that attribute")
        }
        let attributes = try body.stringMap("attributes", nullable: true)
        // Every name is checked, those whose null removes nothing too: the document states the rule for all.
        for key in (attributes?.keys).map(Array.init)?.sorted() ?? [] {
            try Validation.attributeKey(key, field: "attributes.\(key)")
        }
        let patch = DeviceRegistry.Patch(
            name: try body.string("name"),
            labels: body.has("labels") ? (try body.stringArray("labels") ?? []) : nil,
            attributes: attributes
        )
        return DeviceRepresentation(try await self.hub.devices.update(try context.parameters.require("id"), with: patch, by: principal))
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try await self.hub.devices.delete(try context.parameters.require("id"), by: principal)
        return Response(status: .noContent)
    }

    @Sendable func rotateSecret(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<DeviceRepresentation> {
        let principal = try context.requirePrincipal()
        let rotated = try await self.hub.devices.rotateSecret(of: try context.parameters.require("id"), by: principal)
        var response = EditedResponse(status: .ok, response: DeviceRepresentation(rotated.device, secret: rotated.secret))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func messages(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<MessageRepresentation> {
        let principal = try context.requirePrincipal()
        let page = try await self.hub.messages.list(
            deviceID: try context.parameters.require("id"), page: try request.pageRequest(cursor: FieldRules.sequenceCursor), by: principal
        )
        return ListRepresentation(items: page.items.map(MessageRepresentation.init), nextCursor: page.nextCursor)
    }

    @Sendable func queueDownlink(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<DownlinkRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "queueing downlinks")
        let body = try await JSONBody(request: request, context: context, allowed: ["payload_raw", "confirmed", "port"])
        let encoded = try body.requiredString("payload_raw")
        try FieldRules.downlinkPayload.check(encoded, field: "payload_raw")
        guard let payload = Data(base64Encoded: encoded) else { throw HubError.invalidField("payload_raw", "must be base64") }
        let downlink = try await self.hub.downlinks.queue(
            .init(payload: payload, confirmed: try body.bool("confirmed") ?? false, port: try body.int("port")),
            to: try context.parameters.require("id"), by: principal
        )
        return EditedResponse(status: .created, response: DownlinkRepresentation(downlink))
    }

    @Sendable func downlinks(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<DownlinkRepresentation> {
        let principal = try context.requirePrincipal()
        let queued = try await self.hub.downlinks.list(deviceID: try context.parameters.require("id"), by: principal)
        return ListRepresentation(items: queued.map(DownlinkRepresentation.init), nextCursor: nil)
    }

    @Sendable func clearDownlinks(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        _ = try await self.hub.downlinks.clear(deviceID: try context.parameters.require("id"), by: principal)
        return Response(status: .noContent)
    }

    func perform(_ action: LifecycleAction, request: Request, context: ConduitRequestContext) async throws -> DeviceRepresentation {
        let principal = try context.requirePrincipal()
        return DeviceRepresentation(try await self.hub.devices.perform(action, on: try context.parameters.require("id"), by: principal))
    }
}
