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
