import Foundation
import MQTTBroker
import Store

/// The broker's persistent sessions, kept in the hub's store (SQLite or PostgreSQL) as JSON
/// documents: one per session, one per message it holds.
///
/// In a cluster only the node holding a device's latest connection writes its session: a node
/// that has just lost the device to another (a takeover) may still have journal entries of it on
/// their way, and they must not land over what the new holder resumed.
public struct StoreMQTTSessions: MQTTSessionStore {
    let hub: Hub
    var store: SQLStore { self.hub.store }

    public init(hub: Hub) {
        self.hub = hub
    }

    /// PostgreSQL is where the nodes of a cluster meet: a session may be resumed on any of them.
    public var isShared: Bool { self.store.dialect == .postgres }

    public func storedSessions() async throws -> [MQTTSessionRecord] {
        let decoder = JSONDecoder()
        return try await self.store.session.mqttSessions.all().map { try Self.record($0.record, $0.messages, decoder) }
    }

    public func storedSession(clientIdentifier: String) async throws -> MQTTSessionRecord? {
        // The session and its messages as of one moment.
        guard let row = try await self.store.transaction({ try await $0.mqttSessions.get(clientID: clientIdentifier) }) else { return nil }
        return try Self.record(row.record, row.messages, JSONDecoder())
    }

    private static func record(_ document: String, _ messages: [String], _ decoder: JSONDecoder) throws -> MQTTSessionRecord {
        var record = try decoder.decode(MQTTSessionRecord.self, from: Data(document.utf8))
        record.messages = try messages.map { try decoder.decode(MQTTSessionRecord.Message.self, from: Data($0.utf8)) }
        return record
    }

    public func save(_ changes: [MQTTSessionChange]) async throws {
        let now = Date()
        // This node's id while it is one of a cluster on a shared store; nil alone.
        let node = self.isShared ? self.hub.clusterNode.withLock { $0 } : nil
        try await self.store.transaction { session in
            let sessions = session.mqttSessions
            let encoder = JSONEncoder()
            // A client is its device. The rows read stay locked until this commits, so a
            // takeover noted meanwhile waits, and the new holder then reads what this wrote.
            var elsewhere: Set<String> = []
            if let node { elsewhere = try await session.deviceSessions.heldElsewhere(Set(changes.map(\.clientIdentifier)), than: node) }
            for change in changes where !elsewhere.contains(change.clientIdentifier) {
                switch change {
                case .saveSession(let record):
                    try await sessions.save(clientID: record.clientIdentifier, record: Self.text(record, encoder), now: now)
                case .deleteSession(let clientIdentifier):
                    try await sessions.delete(clientID: clientIdentifier)
                case .addMessage(let clientIdentifier, let message):
                    try await sessions.addMessage(clientID: clientIdentifier, sequence: Int(message.sequence), record: Self.text(message, encoder))
                case .removeMessage(let clientIdentifier, let sequence):
                    try await sessions.removeMessage(clientID: clientIdentifier, sequence: Int(sequence))
                }
            }
        }
    }

    private static func text(_ value: some Encodable, _ encoder: JSONEncoder) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
