import Foundation
import SQLKit

/// Webhooks, the event types each takes, and their deliveries: a durable queue per webhook and
/// device, and the log of every try.
public struct WebhookRepository: Sendable {
    let session: StoreSession

    // MARK: Webhooks

    public func insert(_ webhook: Webhook) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO webhooks (id, tenant_id, name, url, secret, previous_secret, previous_secret_until, events, paused_reason, created_at, updated_at)
            VALUES (\(bind: webhook.id), \(bind: webhook.tenantID), \(bind: webhook.name), \(bind: webhook.url), \(bind: webhook.secret),
                    \(bind: webhook.previousSecret), \(bind: webhook.previousSecretUntil?.storeMilliseconds), \(bind: try StoreJSON.encode(webhook.events)),
                    \(bind: webhook.pausedReason), \(bind: webhook.createdAt.storeMilliseconds), \(bind: webhook.updatedAt.storeMilliseconds))
            """
        ).run()
        try await self.subscribe(webhook)
    }

    /// Writes everything but the id, the tenant and when it was made.
    public func update(_ webhook: Webhook) async throws {
        try await self.session.sql.raw(
            """
            UPDATE webhooks SET name = \(bind: webhook.name), url = \(bind: webhook.url), secret = \(bind: webhook.secret),
                previous_secret = \(bind: webhook.previousSecret), previous_secret_until = \(bind: webhook.previousSecretUntil?.storeMilliseconds),
                events = \(bind: try StoreJSON.encode(webhook.events)), paused_reason = \(bind: webhook.pausedReason),
                updated_at = \(bind: webhook.updatedAt.storeMilliseconds)
            WHERE tenant_id = \(bind: webhook.tenantID) AND id = \(bind: webhook.id)
            """
        ).run()
        try await self.session.sql.raw("DELETE FROM webhook_subscriptions WHERE webhook_id = \(bind: webhook.id)").run()
        try await self.subscribe(webhook)
    }

    private func subscribe(_ webhook: Webhook) async throws {
        guard !webhook.events.isEmpty else { return }
        var query = SQLQueryString("INSERT INTO webhook_subscriptions (tenant_id, event_type, webhook_id) VALUES ")
        for (index, type) in Set(webhook.events).sorted().enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            query.appendRow([webhook.tenantID, type, webhook.id])
        }
        try await self.session.sql.raw(query).run()
    }

    /// Holds its deliveries (it answered 410 Gone), or lets them go again (nil).
    public func setPaused(id: String, reason: String?, at date: Date) async throws {
        try await self.session.sql.raw(
            "UPDATE webhooks SET paused_reason = \(bind: reason), updated_at = \(bind: date.storeMilliseconds) WHERE id = \(bind: id)"
        ).run()
    }

    /// Makes every pending delivery of the webhook due now: it was resumed.
    public func releaseHeld(webhookID: String, at date: Date) async throws {
        try await self.session.sql.raw(
            """
            UPDATE webhook_deliveries SET next_attempt_at = \(bind: date.storeMilliseconds)
            WHERE webhook_id = \(bind: webhookID) AND state = 'pending' AND next_attempt_at > \(bind: date.storeMilliseconds)
            """
        ).run()
    }

    /// Deletes it with its subscriptions, deliveries and their log.
    public func delete(tenantID: String, id: String) async throws {
        try await self.session.sql.raw(
            "DELETE FROM webhook_attempts WHERE delivery_seq IN (SELECT seq FROM webhook_deliveries WHERE webhook_id = \(bind: id) AND tenant_id = \(bind: tenantID))"
        ).run()
        try await self.session.sql.raw("DELETE FROM webhook_deliveries WHERE webhook_id = \(bind: id) AND tenant_id = \(bind: tenantID)").run()
        try await self.session.sql.raw("DELETE FROM webhook_subscriptions WHERE webhook_id = \(bind: id) AND tenant_id = \(bind: tenantID)").run()
        try await self.session.sql.raw("DELETE FROM webhooks WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)").run()
    }

    public func get(tenantID: String, id: String) async throws -> Webhook? {
        try await self.session.sql.raw("SELECT * FROM webhooks WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)").first().map(Self.webhook)
    }

    /// Any tenant's: for the dispatcher, which found its id on a delivery.
    public func get(id: String) async throws -> Webhook? {
        try await self.session.sql.raw("SELECT * FROM webhooks WHERE id = \(bind: id)").first().map(Self.webhook)
    }

    public func list(tenantID: String) async throws -> [Webhook] {
        try await self.session.sql.raw("SELECT * FROM webhooks WHERE tenant_id = \(bind: tenantID) ORDER BY name").all().map(Self.webhook)
    }

    public func count(tenantID: String) async throws -> Int {
        try await self.session.sql.raw("SELECT COUNT(*) AS n FROM webhooks WHERE tenant_id = \(bind: tenantID)").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    // MARK: Queueing

    /// Queues a delivery of an event to every webhook of the tenant that takes its type, in one
    /// statement (none when no webhook takes it).
    public func enqueueEvent(tenantID: String, type: String, deviceID: String?, messageID: String, at date: Date, body: String) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO webhook_deliveries (webhook_id, tenant_id, message_id, device_id, event_type, body, created_at, state, attempts, next_attempt_at)
            SELECT webhook_id, tenant_id, \(bind: messageID), \(bind: deviceID ?? ""), event_type, \(bind: body), \(bind: date.storeMilliseconds),
                   'pending', 0, \(bind: date.storeMilliseconds)
            FROM webhook_subscriptions WHERE tenant_id = \(bind: tenantID) AND event_type = \(bind: type)
            """
        ).run()
    }

    /// Queues one delivery to one webhook, unless it has that message already (it takes the
    /// event's type, and the event's append queued it).
    public func enqueue(
        webhookID: String, tenantID: String, type: String, deviceID: String?, messageID: String, body: String, at date: Date
    ) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO webhook_deliveries (webhook_id, tenant_id, message_id, device_id, event_type, body, created_at, state, attempts, next_attempt_at)
            SELECT \(bind: webhookID), \(bind: tenantID), \(bind: messageID), \(bind: deviceID ?? ""), \(bind: type), \(bind: body),
                   \(bind: date.storeMilliseconds), 'pending', 0, \(bind: date.storeMilliseconds)
            WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE webhook_id = \(bind: webhookID) AND message_id = \(bind: messageID))
            """
        ).run()
    }

    /// The webhooks that take every uplink, by tenant.
    public func uplinkSubscribers() async throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for row in try await self.session.sql.raw(
            "SELECT tenant_id, webhook_id FROM webhook_subscriptions WHERE event_type = 'uplink' ORDER BY tenant_id, webhook_id"
        ).all() {
            result[try row.decode(column: "tenant_id", as: String.self), default: []].append(try row.decode(column: "webhook_id", as: String.self))
        }
        return result
    }

    /// The event types some webhook takes, by tenant (uplinks aside).
    public func subscribedEventTypes() async throws -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        for row in try await self.session.sql.raw(
            "SELECT DISTINCT tenant_id, event_type FROM webhook_subscriptions WHERE event_type <> 'uplink'"
        ).all() {
            result[try row.decode(column: "tenant_id", as: String.self), default: []].insert(try row.decode(column: "event_type", as: String.self))
        }
        return result
    }

    /// A delivery to queue.
    public struct NewDelivery: Sendable {
        public var webhookID: String
        public var tenantID: String
        public var messageID: String
        public var deviceID: String
        public var type: String
        public var body: String
        public var at: Date

        public init(webhookID: String, tenantID: String, messageID: String, deviceID: String, type: String, body: String, at: Date) {
            self.webhookID = webhookID
            self.tenantID = tenantID
            self.messageID = messageID
            self.deviceID = deviceID
            self.type = type
            self.body = body
            self.at = at
        }
    }

    /// Queues deliveries, up to 100 in one statement.
    public func enqueue(_ deliveries: [NewDelivery]) async throws {
        var start = 0
        while start < deliveries.count {
            let chunk = deliveries[start..<min(deliveries.count, start + 100)]
            start = chunk.endIndex
            var query = SQLQueryString(
                "INSERT INTO webhook_deliveries (webhook_id, tenant_id, message_id, device_id, event_type, body, created_at, state, attempts, next_attempt_at) VALUES "
            )
            for (index, delivery) in chunk.enumerated() {
                if index > 0 { query.appendLiteral(", ") }
                let at = delivery.at.storeMilliseconds
                query.appendRow([delivery.webhookID, delivery.tenantID, delivery.messageID, delivery.deviceID, delivery.type, delivery.body, at, "pending", 0, at])
            }
            try await self.session.sql.raw(query).run()
        }
    }

    /// Sends a delivery again: a new pending one of the same message, after the device's others.
    public func resend(_ delivery: WebhookDelivery, at date: Date) async throws -> Int {
        let row = try await self.session.sql.raw(
            """
            INSERT INTO webhook_deliveries (webhook_id, tenant_id, message_id, device_id, event_type, body, created_at, state, attempts, next_attempt_at)
            VALUES (\(bind: delivery.webhookID), \(bind: delivery.tenantID), \(bind: delivery.messageID), \(bind: delivery.deviceID),
                    \(bind: delivery.eventType), \(bind: delivery.body), \(bind: date.storeMilliseconds), 'pending', 0, \(bind: date.storeMilliseconds))
            RETURNING seq
            """
        ).first()
        guard let sequence = try row?.decode(column: "seq", as: Int.self) else { throw StoreError.corrupt("delivery insert returned no sequence") }
        return sequence
    }

    // MARK: Dispatching

    /// Deliveries due now that head their device's queue, of webhooks not paused, oldest first.
    public func due(at date: Date, limit: Int) async throws -> [WebhookDelivery] {
        try await self.session.sql.raw(
            """
            SELECT d.* FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE d.state = 'pending' AND d.next_attempt_at <= \(bind: date.storeMilliseconds) AND w.paused_reason IS NULL
              AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries p
                WHERE p.webhook_id = d.webhook_id AND p.device_id = d.device_id AND p.state = 'pending' AND p.seq < d.seq
              )
            ORDER BY d.seq LIMIT \(bind: limit)
            """
        ).all().map(Self.delivery)
    }

    /// Takes a delivery for one try: moves its next try to `until` (when it is tried again, should
    /// this node die mid-try) if it is still as `delivery` read it. False when another took it.
    public func claim(_ delivery: WebhookDelivery, until date: Date) async throws -> Bool {
        try await self.session.sql.raw(
            """
            UPDATE webhook_deliveries SET next_attempt_at = \(bind: date.storeMilliseconds)
            WHERE seq = \(bind: delivery.sequence) AND state = 'pending' AND attempts = \(bind: delivery.attempts)
              AND next_attempt_at = \(bind: delivery.nextAttemptAt.storeMilliseconds)
            RETURNING seq
            """
        ).first() != nil
    }

    /// Records a try and where the delivery stands after it.
    public func record(_ attempt: WebhookAttempt, state: WebhookDeliveryState, nextAttemptAt: Date, finishedAt: Date?) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO webhook_attempts (delivery_seq, attempt, at, status, latency_ms, error)
            VALUES (\(bind: attempt.deliverySequence), \(bind: attempt.attempt), \(bind: attempt.at.storeMilliseconds), \(bind: attempt.status),
                    \(bind: attempt.latencyMilliseconds), \(bind: attempt.error))
            """
        ).run()
        try await self.session.sql.raw(
            """
            UPDATE webhook_deliveries SET state = \(bind: state.rawValue), attempts = \(bind: attempt.attempt),
                next_attempt_at = \(bind: nextAttemptAt.storeMilliseconds), last_status = \(bind: attempt.status), last_error = \(bind: attempt.error),
                finished_at = \(bind: finishedAt?.storeMilliseconds)
            WHERE seq = \(bind: attempt.deliverySequence)
            """
        ).run()
    }

    // MARK: The delivery log

    /// A webhook's deliveries, newest first, in one state or all.
    public func deliveries(tenantID: String, webhookID: String, state: WebhookDeliveryState? = nil, before: Int? = nil, limit: Int) async throws -> [WebhookDelivery] {
        var query = SQLQueryString("SELECT * FROM webhook_deliveries WHERE tenant_id = \(bind: tenantID) AND webhook_id = \(bind: webhookID)")
        if let state {
            query.appendLiteral(" AND state = ")
            query.appendInterpolation(bind: state.rawValue)
        }
        query.appendNewestFirst(before: before, limit: limit)
        return try await self.session.sql.raw(query).all().map(Self.delivery)
    }

    public func delivery(tenantID: String, webhookID: String, sequence: Int) async throws -> WebhookDelivery? {
        try await self.session.sql.raw(
            "SELECT * FROM webhook_deliveries WHERE tenant_id = \(bind: tenantID) AND webhook_id = \(bind: webhookID) AND seq = \(bind: sequence)"
        ).first().map(Self.delivery)
    }

    /// The tries of these deliveries, by delivery, in order.
    public func attempts(of sequences: [Int]) async throws -> [Int: [WebhookAttempt]] {
        guard !sequences.isEmpty else { return [:] }
        var query = SQLQueryString("SELECT * FROM webhook_attempts WHERE delivery_seq IN (")
        for (index, sequence) in sequences.enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            query.appendInterpolation(bind: sequence)
        }
        query.appendLiteral(") ORDER BY delivery_seq, attempt")
        var result: [Int: [WebhookAttempt]] = [:]
        for row in try await self.session.sql.raw(query).all() {
            let attempt = WebhookAttempt(
                deliverySequence: try row.decode(column: "delivery_seq", as: Int.self), attempt: try row.decode(column: "attempt", as: Int.self),
                at: Date(storeMilliseconds: try row.decode(column: "at", as: Int.self)), status: try row.decode(column: "status", as: Int?.self),
                latencyMilliseconds: try row.decode(column: "latency_ms", as: Int.self), error: try row.decode(column: "error", as: String?.self)
            )
            result[attempt.deliverySequence, default: []].append(attempt)
        }
        return result
    }

    /// Pending deliveries by webhook, for the list.
    public func pendingCounts(tenantID: String) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await self.session.sql.raw(
            "SELECT webhook_id, COUNT(*) AS n FROM webhook_deliveries WHERE tenant_id = \(bind: tenantID) AND state = 'pending' GROUP BY webhook_id"
        ).all() {
            counts[try row.decode(column: "webhook_id", as: String.self)] = try row.decode(column: "n", as: Int.self)
        }
        return counts
    }

    static func webhook(_ row: any SQLRow) throws -> Webhook {
        Webhook(
            id: try row.decode(column: "id", as: String.self), tenantID: try row.decode(column: "tenant_id", as: String.self),
            name: try row.decode(column: "name", as: String.self), url: try row.decode(column: "url", as: String.self),
            secret: try row.decode(column: "secret", as: String.self), previousSecret: try row.decode(column: "previous_secret", as: String?.self),
            previousSecretUntil: try row.decode(column: "previous_secret_until", as: Int?.self).map { Date(storeMilliseconds: $0) },
            events: try row.decodeJSON(column: "events", as: [String].self),
            pausedReason: try row.decode(column: "paused_reason", as: String?.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self))
        )
    }

    static func delivery(_ row: any SQLRow) throws -> WebhookDelivery {
        let state = try row.decode(column: "state", as: String.self)
        return WebhookDelivery(
            sequence: try row.decode(column: "seq", as: Int.self), webhookID: try row.decode(column: "webhook_id", as: String.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self), messageID: try row.decode(column: "message_id", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String.self), eventType: try row.decode(column: "event_type", as: String.self),
            body: try row.decode(column: "body", as: String.self), createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            state: WebhookDeliveryState(rawValue: state) ?? .pending, attempts: try row.decode(column: "attempts", as: Int.self),
            nextAttemptAt: Date(storeMilliseconds: try row.decode(column: "next_attempt_at", as: Int.self)),
            lastStatus: try row.decode(column: "last_status", as: Int?.self), lastError: try row.decode(column: "last_error", as: String?.self),
            finishedAt: try row.decode(column: "finished_at", as: Int?.self).map { Date(storeMilliseconds: $0) }
        )
    }
}

extension Event {
    /// The `webhook-id` of the event's deliveries.
    public var messageID: String { "evt_\(self.sequence)" }

    /// The event as a webhook receives it, as Standard Webhooks suggests: its type, when it
    /// happened, and its data (the event's own, with its id, device and actor).
    public var webhookBody: String {
        var data = (try? JSONSerialization.jsonObject(with: Data(self.data.utf8))) as? [String: Any] ?? [:]
        data["eventId"] = self.messageID
        data["actor"] = self.actor
        if let deviceID = self.deviceID { data["deviceId"] = deviceID }
        return WebhookBody.encode(type: self.type, at: self.createdAt, data: data)
    }
}

/// A webhook's body as Standard Webhooks suggests: `{type, timestamp, data}`, sorted keys.
public enum WebhookBody {
    /// Made once: a formatter per message cost the uplink path.
    private static let timestamp = Date.ISO8601FormatStyle(includingFractionalSeconds: true)

    public static func encode(type: String, at date: Date, data: [String: Any]) -> String {
        let body: [String: Any] = ["type": type, "timestamp": date.formatted(self.timestamp), "data": data]
        let encoded = (try? JSONSerialization.data(withJSONObject: body, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: encoded, as: UTF8.self)
    }
}
