import Foundation
import SQLKit

/// The append-only event log.
public struct EventRepository: Sendable {
    let session: StoreSession

    /// Which events ``list(tenantID:filter:before:limit:)`` returns.
    public struct Filter: Sendable, Equatable {
        public var deviceID: String?
        public var type: String?

        public init(deviceID: String? = nil, type: String? = nil) {
            self.deviceID = deviceID
            self.type = type
        }
    }

    /// Appends an event, queues it to the tenant's webhooks that take its type, and returns it
    /// with its sequence number.
    @discardableResult
    /// - Parameter toWebhooks: false when the caller knows no webhook of the tenant takes this type.
    public func append(
        tenantID: String, type: String, deviceID: String?, actor: String, data: String, at date: Date, toWebhooks: Bool = true
    ) async throws -> Event {
        let row = try await self.session.sql.raw(
            """
            INSERT INTO events (tenant_id, type, device_id, actor, data, created_at)
            VALUES (\(bind: tenantID), \(bind: type), \(bind: deviceID), \(bind: actor), \(bind: data),
                    \(bind: date.storeMilliseconds))
            RETURNING seq
            """
        ).first()
        guard let sequence = try row?.decode(column: "seq", as: Int.self) else {
            throw StoreError.corrupt("event insert returned no sequence")
        }
        let event = Event(
            sequence: sequence, tenantID: tenantID, type: type, deviceID: deviceID, actor: actor, data: data,
            createdAt: date.truncatedToStorePrecision
        )
        // To the webhooks that take it, in the event's own transaction: kept or lost with it.
        guard toWebhooks else { return event }
        try await self.session.webhooks.enqueueEvent(
            tenantID: tenantID, type: type, deviceID: deviceID, messageID: event.messageID, at: date, body: event.webhookBody
        )
        return event
    }

    /// Up to `limit` of the tenant's events older than `before`, newest first.
    public func list(tenantID: String, filter: Filter = Filter(), before: Int? = nil, limit: Int) async throws -> [Event] {
        var query = SQLQueryString("SELECT * FROM events WHERE tenant_id = ")
        query.appendInterpolation(bind: tenantID)
        if let deviceID = filter.deviceID {
            query.appendLiteral(" AND device_id = ")
            query.appendInterpolation(bind: deviceID)
        }
        if let type = filter.type {
            query.appendLiteral(" AND type = ")
            query.appendInterpolation(bind: type)
        }
        query.appendNewestFirst(before: before, limit: limit)
        return try await self.session.sql.raw(query).all().map(Self.event)
    }

    static func event(_ row: any SQLRow) throws -> Event {
        Event(
            sequence: try row.decode(column: "seq", as: Int.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            type: try row.decode(column: "type", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String?.self),
            actor: try row.decode(column: "actor", as: String.self),
            data: try row.decode(column: "data", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self))
        )
    }
}
