import Foundation
import SQLKit

/// The broker's persistent sessions: one row per session and one per message it holds, each a
/// document the broker writes and reads back (the store does not look inside).
public struct MQTTSessionRepository: Sendable {
    let session: StoreSession

    /// Every session's document with its messages' documents, in sequence order.
    public func all() async throws -> [(clientID: String, record: String, messages: [String])] {
        var messages: [String: [String]] = [:]
        for row in try await self.session.sql.raw("SELECT client_id, record FROM mqtt_session_messages ORDER BY client_id, seq").all() {
            messages[try row.decode(column: "client_id", as: String.self), default: []].append(try row.decode(column: "record", as: String.self))
        }
        return try await self.session.sql.raw("SELECT client_id, record FROM mqtt_sessions ORDER BY client_id").all().map { row in
            let clientID = try row.decode(column: "client_id", as: String.self)
            return (clientID, try row.decode(column: "record", as: String.self), messages[clientID] ?? [])
        }
    }

    /// One session's document with its messages' documents, in sequence order.
    public func get(clientID: String) async throws -> (record: String, messages: [String])? {
        guard let row = try await self.session.sql.raw("SELECT record FROM mqtt_sessions WHERE client_id = \(bind: clientID)").first() else {
            return nil
        }
        let messages = try await self.session.sql.raw(
            "SELECT record FROM mqtt_session_messages WHERE client_id = \(bind: clientID) ORDER BY seq"
        ).all().map { try $0.decode(column: "record", as: String.self) }
        return (try row.decode(column: "record", as: String.self), messages)
    }

    /// Removes the sessions whose time ran out while no node held them in memory (PostgreSQL, where
    /// nodes read sessions as their clients connect; elsewhere the broker's own timers end them):
    /// those whose connection ended longer ago than their expiry, and those whose node died under
    /// them (no end noted, and no node alive since `aliveSince` holds their device) whose last
    /// change is older than their expiry. Sessions without expiry stay. Returns how many went.
    public func deleteExpired(now: Date, aliveSince: Date) async throws -> Int {
        guard self.session.dialect == .postgres else { return 0 }
        // The document's dates are seconds since 2001-01-01 (Foundation's reference date). One
        // statement: a session and its messages go together.
        let row = try await self.session.sql.raw(
            """
            WITH gone AS (DELETE FROM mqtt_sessions s
            WHERE (s.record::jsonb ->> 'expiryInterval')::bigint < 4294967295 AND (
                ((s.record::jsonb ->> 'disconnectedAt') IS NOT NULL
                    AND 978307200 + (s.record::jsonb ->> 'disconnectedAt')::float8 + (s.record::jsonb ->> 'expiryInterval')::bigint
                        < \(bind: now.timeIntervalSince1970))
                OR ((s.record::jsonb ->> 'disconnectedAt') IS NULL
                    AND s.updated_at / 1000.0 + (s.record::jsonb ->> 'expiryInterval')::bigint < \(bind: now.timeIntervalSince1970)
                    AND NOT EXISTS (
                        SELECT 1 FROM device_sessions d JOIN cluster_nodes n ON n.id = d.node_id
                        WHERE d.device_id = s.client_id AND n.heartbeat_at >= \(bind: aliveSince.storeMilliseconds)
                    ))
            )
            RETURNING s.client_id),
            messages AS (DELETE FROM mqtt_session_messages WHERE client_id IN (SELECT client_id FROM gone))
            SELECT COUNT(*) AS n FROM gone
            """
        ).first()
        return try row?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Writes the session's document, new or changed.
    public func save(clientID: String, record: String, now: Date) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO mqtt_sessions (client_id, record, updated_at) VALUES (\(bind: clientID), \(bind: record), \(bind: now.storeMilliseconds))
            ON CONFLICT (client_id) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at
            """
        ).run()
    }

    /// Removes the session and every message it held.
    public func delete(clientID: String) async throws {
        try await self.session.sql.raw("DELETE FROM mqtt_session_messages WHERE client_id = \(bind: clientID)").run()
        try await self.session.sql.raw("DELETE FROM mqtt_sessions WHERE client_id = \(bind: clientID)").run()
    }

    /// Keeps a message the session holds.
    public func addMessage(clientID: String, sequence: Int, record: String) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO mqtt_session_messages (client_id, seq, record) VALUES (\(bind: clientID), \(bind: sequence), \(bind: record))
            ON CONFLICT (client_id, seq) DO UPDATE SET record = excluded.record
            """
        ).run()
    }

    /// Forgets a message: delivered, refused or dropped.
    public func removeMessage(clientID: String, sequence: Int) async throws {
        try await self.session.sql.raw(
            "DELETE FROM mqtt_session_messages WHERE client_id = \(bind: clientID) AND seq = \(bind: sequence)"
        ).run()
    }
}
