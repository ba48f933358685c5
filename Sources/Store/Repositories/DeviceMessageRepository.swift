import Foundation
import SQLKit

/// Each device's recent messages, newest kept, oldest trimmed. Payloads are stored as base64
/// text: the same column type on both engines, and the form the API returns anyway.
public struct DeviceMessageRepository: Sendable {
    let session: StoreSession

    /// Appends a message, trims the device's history to its newest `keep` messages, and returns
    /// the message's sequence number (increasing per device).
    @discardableResult
    public func append(_ message: DeviceMessage, keep: Int) async throws -> Int {
        let sequence = try await self.append([message])[0]
        try await self.trim(tenantID: message.tenantID, deviceID: message.deviceID, keep: keep)
        return sequence
    }

    /// Appends messages of any devices with one statement, and returns their sequence numbers in
    /// the order given. Trimming is left to ``trim(tenantID:deviceID:keep:)``, called as often as
    /// the caller can afford.
    public func append(_ messages: [DeviceMessage]) async throws -> [Int] {
        guard !messages.isEmpty else { return [] }
        // The column only when a message has a source: a device's own (nearly all) leave it NULL,
        // and a bind fewer per row is measurable at ingest's rates.
        let sourced = messages.contains { $0.source != nil }
        var query = SQLQueryString(
            "INSERT INTO device_messages (tenant_id, device_id, topic, payload, qos, retain, received_at\(unsafeRaw: sourced ? ", source" : "")) VALUES "
        )
        for (index, message) in messages.enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            var row: [any Encodable & Sendable] = [
                message.tenantID, message.deviceID, message.topic, message.payload.base64EncodedString(), message.qos, message.retain ? 1 : 0,
                message.receivedAt.storeMilliseconds,
            ]
            if sourced { row.append(message.source) }
            query.appendRow(row)
        }
        query.appendLiteral(" RETURNING seq")
        // Both engines number the rows of one INSERT in the order of its VALUES (SQLite under its
        // write lock, PostgreSQL from the identity's sequence, row by row), though neither
        // promises the order of RETURNING: sorted, the numbers line up with the messages.
        let sequences = try await self.session.sql.raw(query).all().map { try $0.decode(column: "seq", as: Int.self) }.sorted()
        guard sequences.count == messages.count else { throw StoreError.corrupt("\(sequences.count) sequences for \(messages.count) stored messages") }
        return sequences
    }

    /// Deletes all but the device's newest `keep` messages.
    public func trim(tenantID: String, deviceID: String, keep: Int) async throws {
        try await self.session.sql.raw(
            """
            DELETE FROM device_messages
            WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID) AND seq <= (
                SELECT seq FROM device_messages
                WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID)
                ORDER BY seq DESC LIMIT 1 OFFSET \(bind: keep)
            )
            """
        ).run()
    }

    /// Up to `limit` of the device's messages older than `before`, newest first.
    public func list(tenantID: String, deviceID: String, before: Int? = nil, limit: Int) async throws -> [DeviceMessage] {
        var query = SQLQueryString("SELECT * FROM device_messages WHERE tenant_id = ")
        query.appendInterpolation(bind: tenantID)
        query.appendLiteral(" AND device_id = ")
        query.appendInterpolation(bind: deviceID)
        query.appendNewestFirst(before: before, limit: limit)
        return try await self.session.sql.raw(query).all().map(Self.message)
    }

    /// Up to `limit` of the device's messages newer than `after`, oldest first: what a live view has not shown yet.
    public func list(tenantID: String, deviceID: String, after: Int, limit: Int) async throws -> [DeviceMessage] {
        try await self.session.sql.raw(
            """
            SELECT * FROM device_messages
            WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID) AND seq > \(bind: after)
            ORDER BY seq LIMIT \(bind: limit)
            """
        ).all().map(Self.message)
    }

    /// When each of the tenant's devices (of those given) last sent a message; devices without one are absent.
    public func lastReceived(tenantID: String, deviceIDs: [String]) async throws -> [String: Date] {
        guard !deviceIDs.isEmpty else { return [:] }
        // One index seek per device (tenant, device, seq), not a scan of their histories.
        var query = SQLQueryString(
            """
            SELECT d.id AS device_id, (SELECT m.received_at FROM device_messages m
                WHERE m.tenant_id = d.tenant_id AND m.device_id = d.id ORDER BY m.seq DESC LIMIT 1) AS last_at
            FROM devices d WHERE d.tenant_id = \(bind: tenantID) AND d.id IN (
            """
        )
        query.appendBindList(deviceIDs)
        query.appendLiteral(")")
        var result: [String: Date] = [:]
        for row in try await self.session.sql.raw(query).all() {
            if let last = try row.decode(column: "last_at", as: Int?.self) {
                result[try row.decode(column: "device_id", as: String.self)] = Date(storeMilliseconds: last)
            }
        }
        return result
    }

    /// Removes a device's history.
    public func deleteAll(tenantID: String, deviceID: String) async throws {
        try await self.session.sql.raw(
            "DELETE FROM device_messages WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID)"
        ).run()
    }

    static func message(_ row: any SQLRow) throws -> DeviceMessage {
        let payload = try row.decode(column: "payload", as: String.self)
        guard let data = Data(base64Encoded: payload) else { throw StoreError.corrupt("message payload is not base64") }
        return DeviceMessage(
            sequence: try row.decode(column: "seq", as: Int.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String.self),
            topic: try row.decode(column: "topic", as: String.self),
            payload: data,
            qos: try row.decode(column: "qos", as: Int.self),
            retain: try row.decode(column: "retain", as: Int.self) != 0,
            receivedAt: Date(storeMilliseconds: try row.decode(column: "received_at", as: Int.self)),
            source: try row.decode(column: "source", as: String?.self)
        )
    }
}
