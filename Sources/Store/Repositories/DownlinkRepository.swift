import Foundation
import SQLKit

/// Each device's downlink queue, oldest first.
public struct DownlinkRepository: Sendable {
    let session: StoreSession

    /// Appends a downlink and returns it with its sequence number.
    public func append(_ downlink: Downlink) async throws -> Downlink {
        let row = try await self.session.sql.raw(
            """
            INSERT INTO downlinks (tenant_id, device_id, payload, confirmed, port, source, created_at)
            VALUES (\(bind: downlink.tenantID), \(bind: downlink.deviceID), \(bind: downlink.payload.base64EncodedString()),
                    \(bind: downlink.confirmed ? 1 : 0), \(bind: downlink.port), \(bind: downlink.source),
                    \(bind: downlink.createdAt.storeMilliseconds))
            RETURNING seq
            """
        ).first()
        var stored = downlink
        stored.sequence = try row?.decode(column: "seq", as: Int.self) ?? 0
        return stored
    }

    /// The device's queue, oldest first, at most `limit`.
    public func list(tenantID: String, deviceID: String, limit: Int) async throws -> [Downlink] {
        try await self.session.sql.raw(
            """
            SELECT * FROM downlinks WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID)
            ORDER BY seq LIMIT \(bind: limit)
            """
        ).all().map(Self.downlink)
    }

    /// Removes one delivered downlink; false when it was not there.
    @discardableResult
    public func delete(deviceID: String, sequence: Int) async throws -> Bool {
        try await self.session.sql.raw(
            "DELETE FROM downlinks WHERE device_id = \(bind: deviceID) AND seq = \(bind: sequence) RETURNING seq"
        ).first() != nil
    }

    /// Empties the device's queue; returns how many went.
    @discardableResult
    public func deleteAll(tenantID: String, deviceID: String) async throws -> Int {
        try await self.session.sql.raw(
            "DELETE FROM downlinks WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID) RETURNING seq"
        ).all().count
    }

    static func downlink(_ row: any SQLRow) throws -> Downlink {
        let payload = try row.decode(column: "payload", as: String.self)
        guard let data = Data(base64Encoded: payload) else { throw StoreError.corrupt("downlink payload is not base64") }
        return Downlink(
            sequence: try row.decode(column: "seq", as: Int.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String.self),
            payload: data,
            confirmed: try row.decode(column: "confirmed", as: Int.self) != 0,
            port: try row.decode(column: "port", as: Int?.self),
            source: try row.decode(column: "source", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self))
        )
    }
}
