import Foundation
import SQLKit

/// The uplink outbox: messages waiting for AWS, per integration and device, in order.
public struct OutboxRepository: Sendable {
    let session: StoreSession

    public func append(_ message: OutboxMessage) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO outbox (tenant_id, integration_id, device_id, message_seq, topic, payload, qos, received_at, attempts)
            VALUES (\(bind: message.tenantID), \(bind: message.integrationID), \(bind: message.deviceID), \(bind: message.messageSequence),
                    \(bind: message.topic), \(bind: message.payload.base64EncodedString()), \(bind: message.qos),
                    \(bind: message.receivedAt.storeMilliseconds), 0)
            """
        ).run()
    }

    /// The (integration, device) pairs with messages waiting, each with its oldest, oldest first.
    public func queues(limit: Int) async throws -> [(integrationID: String, deviceID: String, oldest: Int)] {
        try await self.session.sql.raw(
            """
            SELECT integration_id, device_id, MIN(seq) AS oldest FROM outbox
            GROUP BY integration_id, device_id ORDER BY oldest LIMIT \(bind: limit)
            """
        ).all().map { row in
            (
                try row.decode(column: "integration_id", as: String.self), try row.decode(column: "device_id", as: String.self),
                try row.decode(column: "oldest", as: Int.self)
            )
        }
    }

    /// The device's next messages for the integration, in order.
    public func next(integrationID: String, deviceID: String, limit: Int) async throws -> [OutboxMessage] {
        try await self.session.sql.raw(
            """
            SELECT * FROM outbox WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID)
            ORDER BY seq LIMIT \(bind: limit)
            """
        ).all().map(Self.message)
    }

    /// Removes a device's messages for an integration up to and including `sequence`.
    public func delete(integrationID: String, deviceID: String, upTo sequence: Int) async throws {
        try await self.session.sql.raw(
            """
            DELETE FROM outbox WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID)
              AND seq <= \(bind: sequence)
            """
        ).run()
    }

    /// Removes a message AWS accepted.
    public func delete(sequence: Int) async throws {
        try await self.session.sql.raw("DELETE FROM outbox WHERE seq = \(bind: sequence)").run()
    }

    /// Counts one more failed try of a message.
    public func recordFailure(sequence: Int) async throws {
        try await self.session.sql.raw("UPDATE outbox SET attempts = attempts + 1 WHERE seq = \(bind: sequence)").run()
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
            attempts: try row.decode(column: "attempts", as: Int.self)
        )
    }
}
