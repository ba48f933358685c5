import Foundation
import Hub
import Hummingbird

/// `/v1/things`: Para's IoT things API, for AWS (`serviceBroker: "AWS"`), over Conduit's devices.
struct ThingRoutes {
    let hub: Hub

    /// Fields a Para client sends with every object; accepted and left alone.
    static let paraFields: Set<String> = [
        "id", "appid", "parentid", "creatorid", "timestamp", "updated", "tags", "votes", "version", "stored", "indexed", "cached",
        "plural", "objectURI", "deviceMetadata", "deviceDetails",
    ]

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("things", use: self.create)
        group.get("things", use: self.list)
        group.get("things/{id}", use: self.get)
        group.patch("things/{id}", use: self.update)
        group.delete("things/{id}", use: self.delete)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<ThingRepresentation> {
        let principal = try context.requirePrincipal()
        let body = try await JSONBody(
            request: request, context: context, allowed: Self.paraFields.union(["name", "type", "serviceBroker", "integrationId", "deviceState"])
        )
        if let type = try body.string("type"), type != "thing" { throw HubError.invalidField("type", "must be \"thing\"") }
        let name = try body.requiredString("name")
        guard let broker = try body.string("serviceBroker") else { throw HubError.invalidField("serviceBroker", "is required: \"AWS\"") }
        let state = try body.anyObject("deviceState") ?? [:]
        let thing = try await self.hub.things.create(
            name: name, serviceBroker: broker, integrationID: try body.string("integrationId"), deviceState: state, by: principal
        )
        var response = EditedResponse(status: .created, response: ThingRepresentation(thing))
        response.headers[.location] = "/v1/things/\(thing.device.id)"
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> ThingRepresentation {
        let principal = try context.requirePrincipal()
        return ThingRepresentation(try await self.hub.things.get(try context.parameters.require("id"), by: principal))
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ThingListRepresentation {
        let principal = try context.requirePrincipal()
        let page = try request.pageRequest(limit: "limit", cursor: "lastKey", "cursor", rule: FieldRules.deviceCursor)
        let (things, total) = try await self.hub.things.list(page: page, by: principal)
        return ThingListRepresentation(items: things.items.map(ThingRepresentation.init), totalHits: total, lastKey: things.nextCursor)
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> ThingRepresentation {
        let principal = try context.requirePrincipal()
        let body = try await JSONBody(request: request, context: context, allowed: Self.paraFields.union(["name", "type", "serviceBroker", "deviceState"]))
        guard let state = try body.anyObject("deviceState") else { throw HubError.invalidField("deviceState", "is required: an object") }
        return ThingRepresentation(try await self.hub.things.updateState(try context.parameters.require("id"), deviceState: state, by: principal))
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> HTTPResponse.Status {
        let principal = try context.requirePrincipal()
        try await self.hub.things.delete(try context.parameters.require("id"), by: principal)
        return .ok
    }
}

/// A thing as Para shows it: `deviceDetails` only in the answer to its creation.
struct ThingRepresentation: ResponseEncodable {
    struct Details: Encodable {
        let thingId: String
        let thingName: String
        let thingARN: String?
        let clientId: String
        let clientCertId: String
        let clientCertARN: String
        let clientCert: String
        let privateKey: String
        let publicKey: String?
        let region: String
        let port: Int
        let host: String?
    }

    let id: String
    /// When it was created, milliseconds since 1970, as Para counts.
    let timestamp: Int
    let type = "thing"
    let name: String
    let serviceBroker = "AWS"
    let deviceState: [String: JSONValue]
    let deviceDetails: Details?

    init(_ thing: Things.Thing) {
        self.id = thing.device.id
        self.timestamp = Int((thing.device.createdAt.timeIntervalSince1970 * 1000).rounded(.down))
        self.name = thing.device.name
        self.deviceState = thing.deviceState
        // Para's names for the device's credentials.
        self.deviceDetails = thing.details.map { bundle in
            Details(
                thingId: bundle.deviceID, thingName: bundle.thingName, thingARN: bundle.thingArn, clientId: bundle.clientID,
                clientCertId: bundle.certificateID, clientCertARN: bundle.certificateArn, clientCert: bundle.certificatePem,
                privateKey: bundle.privateKey, publicKey: bundle.publicKey, region: bundle.region, port: bundle.port, host: bundle.endpoint
            )
        }
    }
}

/// Para's page: `{"items", "totalHits", "lastKey"?}`.
struct ThingListRepresentation: ResponseEncodable {
    let items: [ThingRepresentation]
    let totalHits: Int
    let lastKey: String?
}
