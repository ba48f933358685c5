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
    /// - Parameter toWebhooks: false when the caller knows no webhook of the tenant takes this type.
    @discardableResult
    public func append(
        tenantID: String, type: String, deviceID: String?, actor: String, data: String, at date: Date, toWebhooks: Bool = true
    ) async throws -> Event {
        try await self.append([NewEvent(tenantID: tenantID, type: type, deviceID: deviceID, actor: actor, data: data, at: date, toWebhooks: toWebhooks)])[0]
    }

    /// Rows in one INSERT: 6 binds each, well inside both engines' limits on binds.
    static let rowsPerStatement = 1000

    /// An event to append.
    public struct NewEvent: Sendable {
        public var tenantID: String
        public var type: String
        public var deviceID: String?
        public var actor: String
        public var data: String
        public var at: Date
        /// False when the caller knows no webhook of the tenant takes this type.
        public var toWebhooks: Bool

        public init(tenantID: String, type: String, deviceID: String?, actor: String, data: String, at: Date, toWebhooks: Bool = true) {
            self.tenantID = tenantID
            self.type = type
            self.deviceID = deviceID
            self.actor = actor
            self.data = data
            self.at = at
            self.toWebhooks = toWebhooks
        }
    }

    /// Appends events with one statement (ingest's rules fire several in a batch), queues each to
    /// the webhooks that take it, and returns them, in the order given.
    public func append(_ events: [NewEvent]) async throws -> [Event] {
        guard events.count <= Self.rowsPerStatement else {
            var appended: [Event] = []
            for start in stride(from: 0, to: events.count, by: Self.rowsPerStatement) {
                appended += try await self.append(Array(events[start..<min(events.count, start + Self.rowsPerStatement)]))
            }
            return appended
        }
        guard !events.isEmpty else { return [] }
        var query = SQLQueryString("INSERT INTO events (tenant_id, type, device_id, actor, data, created_at) VALUES ")
        for (index, event) in events.enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            query.appendRow([event.tenantID, event.type, event.deviceID, event.actor, event.data, event.at.storeMilliseconds])
        }
        query.appendLiteral(" RETURNING seq")
        // Numbered in the order of the VALUES, as device messages are (see DeviceMessageRepository.append).
        let sequences = try await self.session.sql.raw(query).all().map { try $0.decode(column: "seq", as: Int.self) }.sorted()
        guard sequences.count == events.count else { throw StoreError.corrupt("\(sequences.count) sequences for \(events.count) events") }
        var appended: [Event] = []
        for (sequence, new) in zip(sequences, events) {
            let event = Event(
                sequence: sequence, tenantID: new.tenantID, type: new.type, deviceID: new.deviceID, actor: new.actor, data: new.data,
                createdAt: new.at.truncatedToStorePrecision
            )
            // To the webhooks that take it, in the event's own transaction: kept or lost with it.
            if new.toWebhooks {
                try await self.session.webhooks.enqueueEvent(
                    tenantID: new.tenantID, type: new.type, deviceID: new.deviceID, messageID: event.messageID, at: new.at, body: event.webhookBody
                )
            }
            appended.append(event)
        }
        return appended
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
