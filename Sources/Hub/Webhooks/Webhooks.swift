import Foundation
import Store

/// The tenant's webhooks: where events go, signed as Standard Webhooks specifies, through a
/// durable queue in order per device. Admins manage them.
public struct Webhooks: Sendable {
    let hub: Hub

    public static let maximumPerTenant = 20
    public static let maximumEventTypes = 64

    /// Every message a device sends (or that comes from AWS on an ingest topic), as a webhook's event type.
    public static let uplink = "uplink"

    /// The event types a webhook may take: every type of the event log, and every uplink.
    public static var eventTypes: [String] { (EventType.all + [uplink]).sorted() }

    /// A webhook as the hub shows it, with how many deliveries wait.
    public struct View: Sendable, Equatable {
        public var webhook: Webhook
        public var pending: Int
    }

    /// A new webhook, or one whose secret was rotated: the secret, shown this once.
    public struct WithSecret: Sendable {
        public var view: View
        public var secret: String
    }

    public func create(name: String, url: String, events: [String], by principal: Principal) async throws -> WithSecret {
        try principal.require(.admin, to: "changing webhooks")
        let name = try Validation.displayName(name)
        let url = try await self.checkURL(url)
        let events = try Self.checkEvents(events)
        let now = self.hub.now()
        let id = Secrets.identifier(prefix: "whk_")
        let secret = WebhookSignature.newSecret()
        let webhook = Webhook(
            id: id, tenantID: principal.tenantID, name: name, url: url,
            secret: try self.hub.secrets.seal(secret, for: .webhookSecret(tenantID: principal.tenantID, webhookID: id)), events: events,
            createdAt: now, updatedAt: now
        )
        do {
            try await self.hub.store.transaction { session in
                guard try await session.webhooks.count(tenantID: principal.tenantID) < Self.maximumPerTenant else {
                    throw HubError.conflict("too_many_webhooks", "a tenant has at most \(Self.maximumPerTenant) webhooks")
                }
                try await session.webhooks.insert(webhook)
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("webhook_exists", "name: the tenant has a webhook named '\(name)' already")
        }
        return WithSecret(view: View(webhook: webhook, pending: 0), secret: secret)
    }

    public func list(by principal: Principal) async throws -> [View] {
        try principal.require(.admin, to: "reading webhooks")
        let session = self.hub.store.session
        let pending = try await session.webhooks.pendingCounts(tenantID: principal.tenantID)
        return try await session.webhooks.list(tenantID: principal.tenantID).map { View(webhook: $0, pending: pending[$0.id] ?? 0) }
    }

    public func get(_ id: String, by principal: Principal) async throws -> View {
        try principal.require(.admin, to: "reading webhooks")
        let webhook = try await self.stored(id, tenantID: principal.tenantID)
        let pending = try await self.hub.store.session.webhooks.pendingCounts(tenantID: principal.tenantID)
        return View(webhook: webhook, pending: pending[id] ?? 0)
    }

    /// Changes what is given. `paused: false` resumes a paused webhook: its held deliveries go at once.
    public func update(_ id: String, name: String? = nil, url: String? = nil, events: [String]? = nil, paused: Bool? = nil, by principal: Principal) async throws -> View {
        try principal.require(.admin, to: "changing webhooks")
        var webhook = try await self.stored(id, tenantID: principal.tenantID)
        if let name { webhook.name = try Validation.displayName(name) }
        if let url { webhook.url = try await self.checkURL(url) }
        if let events { webhook.events = try Self.checkEvents(events) }
        let resumed = paused == false && webhook.pausedReason != nil
        if paused == false { webhook.pausedReason = nil }
        if paused == true, webhook.pausedReason == nil { webhook.pausedReason = "paused by \(principal.actor)" }
        webhook.updatedAt = self.hub.now()
        let updated = webhook
        do {
            try await self.hub.store.transaction { session in
                try await session.webhooks.update(updated)
                if resumed { try await session.webhooks.releaseHeld(webhookID: updated.id, at: updated.updatedAt) }
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("webhook_exists", "name: the tenant has another webhook named '\(updated.name)'")
        }
        if resumed { self.hub.webhookDoorbell.ring() }
        return try await self.get(id, by: principal)
    }

    /// A new secret, shown this once; the old one keeps signing beside it for a while
    /// (``WebhookEnvironment/previousSecretLifetime``), so that the receiver can switch.
    public func rotateSecret(_ id: String, by principal: Principal) async throws -> WithSecret {
        try principal.require(.admin, to: "changing webhooks")
        var webhook = try await self.stored(id, tenantID: principal.tenantID)
        let secret = WebhookSignature.newSecret()
        let now = self.hub.now()
        webhook.previousSecret = webhook.secret
        webhook.previousSecretUntil = now.addingTimeInterval(self.hub.webhookEnvironment.previousSecretLifetime)
        webhook.secret = try self.hub.secrets.seal(secret, for: .webhookSecret(tenantID: principal.tenantID, webhookID: id))
        webhook.updatedAt = now
        let updated = webhook
        try await self.hub.store.transaction { session in try await session.webhooks.update(updated) }
        return WithSecret(view: try await self.get(id, by: principal), secret: secret)
    }

    /// Deletes the webhook with its queue and log. Rules that call it record a failure when they fire.
    public func delete(_ id: String, by principal: Principal) async throws {
        try principal.require(.admin, to: "changing webhooks")
        _ = try await self.stored(id, tenantID: principal.tenantID)
        try await self.hub.store.transaction { session in try await session.webhooks.delete(tenantID: principal.tenantID, id: id) }
    }

    /// A delivery and its tries.
    public struct Delivery: Sendable, Equatable {
        public var delivery: WebhookDelivery
        public var attempts: [WebhookAttempt]
    }

    /// The delivery log, newest first.
    public func deliveries(_ id: String, state: WebhookDeliveryState? = nil, page: PageRequest, by principal: Principal) async throws -> Page<Delivery> {
        try principal.require(.admin, to: "reading webhooks")
        _ = try await self.stored(id, tenantID: principal.tenantID)
        var before: Int?
        if let cursor = try page.decodedCursor() {
            guard let sequence = Int(cursor) else { throw HubError.invalidField("cursor", "must be a nextCursor returned by this list") }
            before = sequence
        }
        let session = self.hub.store.session
        let fetched = try await session.webhooks.deliveries(tenantID: principal.tenantID, webhookID: id, state: state, before: before, limit: page.limit + 1)
        let attempts = try await session.webhooks.attempts(of: fetched.prefix(page.limit).map(\.sequence))
        let items = fetched.map { Delivery(delivery: $0, attempts: attempts[$0.sequence] ?? []) }
        return PageRequest.page(items, limit: page.limit) { String($0.delivery.sequence) }
    }

    /// Sends a delivery again, as a new delivery of the same message (the same `webhook-id`)
    /// after the device's others. One still pending is going already: a 409.
    public func resend(_ id: String, delivery sequence: Int, by principal: Principal) async throws -> Delivery {
        try principal.require(.admin, to: "changing webhooks")
        _ = try await self.stored(id, tenantID: principal.tenantID)
        let session = self.hub.store.session
        guard let delivery = try await session.webhooks.delivery(tenantID: principal.tenantID, webhookID: id, sequence: sequence) else {
            throw HubError.notFound("delivery", String(sequence))
        }
        guard delivery.state != .pending else {
            throw HubError.conflict("delivery_pending", "delivery \(sequence) is still being sent (try \(delivery.attempts + 1) is next)")
        }
        let now = self.hub.now()
        let new = try await self.hub.store.transaction { session in try await session.webhooks.resend(delivery, at: now) }
        self.hub.webhookDoorbell.ring()
        guard let resent = try await session.webhooks.delivery(tenantID: principal.tenantID, webhookID: id, sequence: new) else {
            throw HubError.notFound("delivery", String(new))
        }
        return Delivery(delivery: resent, attempts: [])
    }

    private func stored(_ id: String, tenantID: String) async throws -> Webhook {
        guard let webhook = try await self.hub.store.session.webhooks.get(tenantID: tenantID, id: id) else { throw HubError.notFound("webhook", id) }
        return webhook
    }

    /// The URL as it will be called, checked against the outbound rules now (as it is again at
    /// every delivery, in case its host's addresses change).
    private func checkURL(_ url: String) async throws -> String {
        do {
            return try await WebhookTarget.resolve(url, environment: self.hub.webhookEnvironment).url.absoluteString
        } catch let error as WebhookError {
            throw HubError.invalidField("url", error.description)
        }
    }

    static func checkEvents(_ events: [String]) throws -> [String] {
        guard !events.isEmpty, events.count <= self.maximumEventTypes else {
            throw HubError.invalidField("events", "give 1 to \(self.maximumEventTypes) event types")
        }
        let known = Set(self.eventTypes)
        for (index, type) in events.enumerated() where !known.contains(type) {
            throw HubError.invalidField("events[\(index)]", "'\(type)' is not an event type; use one of \(self.eventTypes.joined(separator: ", "))")
        }
        return Array(Set(events)).sorted()
    }
}
