import Foundation
import MQTTBroker
import Store

/// The broker's persistent sessions, kept in the hub's store (SQLite or PostgreSQL) as JSON
/// documents: one per session, one per message it holds.
public struct StoreMQTTSessions: MQTTSessionStore {
    let store: SQLStore

    public init(hub: Hub) {
        self.store = hub.store
    }

    public func storedSessions() async throws -> [MQTTSessionRecord] {
        let decoder = JSONDecoder()
        return try await self.store.session.mqttSessions.all().map { row in
            var record = try decoder.decode(MQTTSessionRecord.self, from: Data(row.record.utf8))
            record.messages = try row.messages.map { try decoder.decode(MQTTSessionRecord.Message.self, from: Data($0.utf8)) }
            return record
        }
    }

    public func save(_ changes: [MQTTSessionChange]) async throws {
        // Encoded before the transaction, which then only writes.
        enum Write {
            case session(String, String)
            case delete(String)
            case add(String, Int, String)
            case remove(String, Int)
        }
        let encoder = JSONEncoder()
        func text(_ value: some Encodable) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let writes: [Write] = try changes.map { change in
            switch change {
            case .saveSession(let record): .session(record.clientIdentifier, try text(record))
            case .deleteSession(let clientIdentifier): .delete(clientIdentifier)
            case .addMessage(let clientIdentifier, let message): .add(clientIdentifier, Int(message.sequence), try text(message))
            case .removeMessage(let clientIdentifier, let sequence): .remove(clientIdentifier, Int(sequence))
            }
        }
        let now = Date()
        try await self.store.transaction { session in
            let sessions = session.mqttSessions
            for write in writes {
                switch write {
                case .session(let clientID, let record): try await sessions.save(clientID: clientID, record: record, now: now)
                case .delete(let clientID): try await sessions.delete(clientID: clientID)
                case .add(let clientID, let sequence, let record): try await sessions.addMessage(clientID: clientID, sequence: sequence, record: record)
                case .remove(let clientID, let sequence): try await sessions.removeMessage(clientID: clientID, sequence: sequence)
                }
            }
        }
    }
}
