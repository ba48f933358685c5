import Foundation
import Hub
import Hummingbird

/// `/v1/webhooks`: webhook integrations (admin): where events go, their secrets, the delivery
/// log, and sending a delivery again.
struct WebhookRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("webhooks", use: self.create)
        group.get("webhooks", use: self.list)
        group.get("webhooks/{id}", use: self.get)
        group.patch("webhooks/{id}", use: self.update)
        group.delete("webhooks/{id}", use: self.delete)
        group.post("webhooks/{id}/secret", use: self.rotate)
        group.get("webhooks/{id}/deliveries", use: self.deliveries)
        group.post("webhooks/{id}/deliveries/{deliveryId}/resend", use: self.resend)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<WebhookRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing webhooks")
        let body = try await JSONBody(request: request, context: context, allowed: ["name", "url", "events", "type"])
        if let type = try body.string("type"), type != "webhook" { throw HubError.invalidField("type", "must be \"webhook\"") }
        let created = try await self.hub.webhooks.create(
            name: try body.requiredString("name"), url: try body.requiredString("url"),
            events: try body.stringArray("events") ?? { throw HubError.invalidField("events", "is required: the event types it takes") }(), by: principal
        )
        var response = EditedResponse(status: .created, response: WebhookRepresentation(created.view, secret: created.secret))
        response.headers[.location] = "/v1/webhooks/\(created.view.webhook.id)"
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<WebhookRepresentation> {
        let principal = try context.requirePrincipal()
        return ListRepresentation(items: try await self.hub.webhooks.list(by: principal).map { WebhookRepresentation($0) }, nextCursor: nil)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> WebhookRepresentation {
        let principal = try context.requirePrincipal()
        return WebhookRepresentation(try await self.hub.webhooks.get(try context.parameters.require("id"), by: principal))
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> WebhookRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing webhooks")
        let body = try await JSONBody(request: request, context: context, allowed: ["name", "url", "events", "paused"])
        for field in ["name", "url", "events", "paused"] where body.isNull(field) { throw HubError.invalidField(field, "cannot be null") }
        let view = try await self.hub.webhooks.update(
            try context.parameters.require("id"), name: try body.string("name"), url: try body.string("url"), events: try body.stringArray("events"),
            paused: try body.bool("paused"), by: principal
        )
        return WebhookRepresentation(view)
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try await self.hub.webhooks.delete(try context.parameters.require("id"), by: principal)
        return Response(status: .noContent)
    }

    @Sendable func rotate(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<WebhookRepresentation> {
        let principal = try context.requirePrincipal()
        let rotated = try await self.hub.webhooks.rotateSecret(try context.parameters.require("id"), by: principal)
        var response = EditedResponse(status: .ok, response: WebhookRepresentation(rotated.view, secret: rotated.secret))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func deliveries(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<WebhookDeliveryRepresentation> {
        let principal = try context.requirePrincipal()
        let state = try request.query("state", oneOf: WebhookDeliveryState.allCases.map(\.rawValue)).flatMap(WebhookDeliveryState.init(rawValue:))
        let page = try await self.hub.webhooks.deliveries(
            try context.parameters.require("id"), state: state, page: try request.pageRequest(cursor: FieldRules.sequenceCursor), by: principal
        )
        return ListRepresentation(items: page.items.map(WebhookDeliveryRepresentation.init), nextCursor: page.nextCursor)
    }

    @Sendable func resend(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<WebhookDeliveryRepresentation> {
        let principal = try context.requirePrincipal()
        let text = try context.parameters.require("deliveryId")
        guard let sequence = Int(text), sequence > 0 else { throw HubError.notFound("delivery", text) }
        let delivery = try await self.hub.webhooks.resend(try context.parameters.require("id"), delivery: sequence, by: principal)
        return EditedResponse(status: .accepted, response: WebhookDeliveryRepresentation(delivery))
    }
}

/// A webhook as the API shows it: its secret only in the answer that made it.
struct WebhookRepresentation: ResponseEncodable {
    let id: String
    let type = "webhook"
    let name: String
    let url: String
    let events: [String]
    let paused: Bool
    let pausedReason: String?
    /// Deliveries waiting.
    let pending: Int
    /// Until when the secret before the last rotation still signs beside the new one.
    let previousSecretUntil: Date?
    let createdAt: Date
    let updatedAt: Date
    let secret: String?

    init(_ view: Webhooks.View, secret: String? = nil) {
        let webhook = view.webhook
        self.id = webhook.id
        self.name = webhook.name
        self.url = webhook.url
        self.events = webhook.events
        self.paused = webhook.pausedReason != nil
        self.pausedReason = webhook.pausedReason
        self.pending = view.pending
        self.previousSecretUntil = webhook.previousSecretUntil.flatMap { $0 > Date() ? $0 : nil }
        self.createdAt = webhook.createdAt
        self.updatedAt = webhook.updatedAt
        self.secret = secret
    }

    private enum Keys: String, CodingKey {
        case id, type, name, url, events, paused, pausedReason, pending, previousSecretUntil, createdAt, updatedAt, secret
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.type, forKey: .type)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.url, forKey: .url)
        try container.encode(self.events, forKey: .events)
        try container.encode(self.paused, forKey: .paused)
        try container.encode(self.pausedReason, forKey: .pausedReason)
        try container.encode(self.pending, forKey: .pending)
        try container.encode(self.previousSecretUntil, forKey: .previousSecretUntil)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.updatedAt, forKey: .updatedAt)
        try container.encodeIfPresent(self.secret, forKey: .secret)
    }
}

/// A delivery in the log, with every try.
struct WebhookDeliveryRepresentation: ResponseEncodable {
    struct Try: Encodable {
        var attempt: Int
        var at: Date
        var status: Int?
        var latencyMs: Int
        var error: String?

        private enum Keys: String, CodingKey { case attempt, at, status, latencyMs, error }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(self.attempt, forKey: .attempt)
            try container.encode(self.at, forKey: .at)
            try container.encode(self.status, forKey: .status)
            try container.encode(self.latencyMs, forKey: .latencyMs)
            try container.encode(self.error, forKey: .error)
        }
    }

    let id: Int
    let messageId: String
    let eventType: String
    let deviceId: String?
    let state: String
    let attempts: Int
    let nextAttemptAt: Date?
    let lastStatus: Int?
    let lastError: String?
    let createdAt: Date
    let finishedAt: Date?
    let body: JSONValue
    let tries: [Try]

    init(_ entry: Webhooks.Delivery) {
        let delivery = entry.delivery
        self.id = delivery.sequence
        self.messageId = delivery.messageID
        self.eventType = delivery.eventType
        self.deviceId = delivery.deviceID.isEmpty ? nil : delivery.deviceID
        self.state = delivery.state.rawValue
        self.attempts = delivery.attempts
        self.nextAttemptAt = delivery.state == .pending ? delivery.nextAttemptAt : nil
        self.lastStatus = delivery.lastStatus
        self.lastError = delivery.lastError
        self.createdAt = delivery.createdAt
        self.finishedAt = delivery.finishedAt
        self.body = (try? JSONDecoder().decode(JSONValue.self, from: Data(delivery.body.utf8))) ?? .string(delivery.body)
        self.tries = entry.attempts.map { Try(attempt: $0.attempt, at: $0.at, status: $0.status, latencyMs: $0.latencyMilliseconds, error: $0.error) }
    }

    private enum Keys: String, CodingKey {
        case id, messageId, eventType, deviceId, state, attempts, nextAttemptAt, lastStatus, lastError, createdAt, finishedAt, body, tries
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.messageId, forKey: .messageId)
        try container.encode(self.eventType, forKey: .eventType)
        try container.encode(self.deviceId, forKey: .deviceId)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.attempts, forKey: .attempts)
        try container.encode(self.nextAttemptAt, forKey: .nextAttemptAt)
        try container.encode(self.lastStatus, forKey: .lastStatus)
        try container.encode(self.lastError, forKey: .lastError)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.finishedAt, forKey: .finishedAt)
        try container.encode(self.body, forKey: .body)
        try container.encode(self.tries, forKey: .tries)
    }
}
