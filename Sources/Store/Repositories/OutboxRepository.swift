import Foundation
import SQLKit

/// The uplink outbox: messages waiting for AWS, per integration and device, in order.
public struct OutboxRepository: Sendable {
    let session: StoreSession

    /// Appends, for the integration, a copy of each of these stored device messages (by their
    /// sequence in `device_messages`), in their order: the payload goes from row to row in the
    /// database, not through Conduit again.
    public func appendCopies(ofMessages sequences: [Int], integrationID: String) async throws {
        guard !sequences.isEmpty else { return }
        var query = SQLQueryString(
            """
            INSERT INTO outbox (tenant_id, integration_id, device_id, message_seq, topic, payload, qos, received_at, attempts)
            SELECT m.tenant_id, \(bind: integrationID), m.device_id, m.seq, m.topic, m.payload, m.qos, m.received_at, 0
            FROM device_messages m WHERE m.seq IN (
            """
        )
        for (index, sequence) in sequences.enumerated() {
            if index > 0 { query.appendLiteral(", ") }
            query.appendInterpolation(bind: sequence)
        }
        // Rows are numbered in the order the SELECT yields them (both engines), so each
        // device's outbox keeps the order of its messages.
        query.appendLiteral(") ORDER BY m.seq")
        try await self.session.sql.raw(query).run()
    }

    /// Appends rules' publishes, each after the device's messages already waiting for its
    /// integration; `messageSequence` is the device message whose reading fired it.
    public func appendPublishes(_ messages: [OutboxMessage]) async throws {
        for message in messages {
            try await self.session.sql.raw(
                """
                INSERT INTO outbox (tenant_id, integration_id, device_id, message_seq, topic, payload, qos, received_at, attempts, aws_topic)
                VALUES (\(bind: message.tenantID), \(bind: message.integrationID), \(bind: message.deviceID), \(bind: message.messageSequence),
                        \(bind: message.topic), \(bind: message.payload.base64EncodedString()), \(bind: message.qos),
                        \(bind: message.receivedAt.storeMilliseconds), 0, \(bind: message.awsTopic))
                """
            ).run()
        }
    }

    /// The (integration, device) pairs with messages waiting for an active integration, by
    /// integration and device, after `after` (a cursor that goes round, so that no queue waits
    /// behind a page of others that cannot move).
    public func queues(after: (integrationID: String, deviceID: String)?, limit: Int) async throws -> [(integrationID: String, deviceID: String)] {
        var query = SQLQueryString(
            """
            SELECT o.integration_id, o.device_id FROM outbox o JOIN integrations i ON i.id = o.integration_id
            WHERE i.active = 1 AND i.status = 'active'
            """
        )
        if let after {
            query.appendLiteral(" AND (o.integration_id > ")
            query.appendInterpolation(bind: after.integrationID)
            query.appendLiteral(" OR (o.integration_id = ")
            query.appendInterpolation(bind: after.integrationID)
            query.appendLiteral(" AND o.device_id > ")
            query.appendInterpolation(bind: after.deviceID)
            query.appendLiteral("))")
        }
        query.appendLiteral(" GROUP BY o.integration_id, o.device_id ORDER BY o.integration_id, o.device_id LIMIT ")
        query.appendInterpolation(bind: limit)
        return try await self.session.sql.raw(query).all().map { row in
            (try row.decode(column: "integration_id", as: String.self), try row.decode(column: "device_id", as: String.self))
        }
    }

    /// The device's next messages for the integration, in order, after the sequence `after`.
    public func next(integrationID: String, deviceID: String, after: Int? = nil, limit: Int) async throws -> [OutboxMessage] {
        try await self.session.sql.raw(
            """
            SELECT * FROM outbox WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID)
              AND seq > \(bind: after ?? 0)
            ORDER BY seq LIMIT \(bind: limit)
            """
        ).all().map(Self.message)
    }

    /// Removes these messages; returns how many were still there.
    @discardableResult
    public func delete(sequences: [Int]) async throws -> Int {
        try await self.deleteFinding(sequences: sequences).count
    }

    /// Deletes these rows and returns the sequences that were there, in statements of up to
    /// 8,192 (both engines' limits on parameters are above it).
    public func deleteFinding(sequences: [Int]) async throws -> Set<Int> {
        var found = Set<Int>()
        var start = 0
        while start < sequences.count {
            let chunk = sequences[start..<min(sequences.count, start + 8192)]
            start = chunk.endIndex
            var query = SQLQueryString("DELETE FROM outbox WHERE seq IN (")
            for (index, sequence) in chunk.enumerated() {
                if index > 0 { query.appendLiteral(", ") }
                query.appendInterpolation(bind: sequence)
            }
            query.appendLiteral(") RETURNING seq")
            for row in try await self.session.sql.raw(query).all() {
                found.insert(try row.decode(column: "seq", as: Int.self))
            }
        }
        return found
    }

    /// Messages waiting, per integration.
    public func countByIntegration() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await self.session.sql.raw("SELECT integration_id, COUNT(*) AS n FROM outbox GROUP BY integration_id").all() {
            counts[try row.decode(column: "integration_id", as: String.self)] = try row.decode(column: "n", as: Int.self)
        }
        return counts
    }

    static func message(_ row: any SQLRow) throws -> OutboxMessage {
        let payload = try row.decode(column: "payload", as: String.self)
        guard let data = Data(base64Encoded: payload) else { throw StoreError.corrupt("outbox payload is not base64") }
        return OutboxMessage(
            sequence: try row.decode(column: "seq", as: Int.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            integrationID: try row.decode(column: "integration_id", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String.self),
            messageSequence: try row.decode(column: "message_seq", as: Int.self),
            topic: try row.decode(column: "topic", as: String.self),
            payload: data,
            qos: try row.decode(column: "qos", as: Int.self),
            receivedAt: Date(storeMilliseconds: try row.decode(column: "received_at", as: Int.self)),
            attempts: try row.decode(column: "attempts", as: Int.self),
            awsTopic: try row.decode(column: "aws_topic", as: String?.self)
        )
    }
}
