import Foundation
import SQLKit

/// What one node tells another of a device: it holds the device's connection, and must act.
public struct NodeMail: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Downlinks wait in the device's queue: send them.
        case downlink
        /// The device's access ended (rejected, decommissioned, deleted, a new secret or
        /// certificate): disconnect it.
        case revoke
        /// The device connected to another node (with this epoch): close the connection here.
        case takeover
        /// The device was deleted or decommissioned: disconnect it, and forget the retained
        /// messages it left on this node. Every node gets it, the holder or not.
        case forget
        /// Messages of the device's shadow (`body`: what to send it): send them.
        case shadow
    }

    public var sequence: Int
    public var kind: Kind
    public var deviceID: String
    public var epoch: Int
    /// What the mail carries beyond ids (the shadow's messages), as the sender wrote it.
    public var body: String?
}

/// Which node holds each device's connection, with an epoch that grows with each connection (the
/// newest wins), and the mail nodes leave each other about devices held elsewhere.
public struct DeviceSessionRepository: Sendable {
    let session: StoreSession

    /// Notes that `nodeID` holds the device's connection now; returns the connection's epoch and
    /// the node that held it before, if another. On PostgreSQL (where nodes share the store) one
    /// statement: a fleet reconnecting after a node died makes one round trip per device.
    public func connected(deviceID: String, nodeID: String, now: Date) async throws -> (epoch: Int, previous: String?) {
        // PostgreSQL's subquery sees the row as it was before this statement changed it; SQLite's
        // would see the new one, so there the holder is read first.
        let before = self.session.dialect == .postgres ? nil : try await self.holder(deviceID: deviceID)?.nodeID
        let row = try await self.session.sql.raw(
            """
            INSERT INTO device_sessions (device_id, node_id, epoch, connected_at)
            VALUES (\(bind: deviceID), \(bind: nodeID), 1, \(bind: now.storeMilliseconds))
            ON CONFLICT (device_id) DO UPDATE SET node_id = excluded.node_id, epoch = device_sessions.epoch + 1, connected_at = excluded.connected_at
            RETURNING epoch, (SELECT b.node_id FROM device_sessions b WHERE b.device_id = \(bind: deviceID)) AS previous
            """
        ).first()
        let epoch = try row?.decode(column: "epoch", as: Int.self) ?? 1
        let previous = self.session.dialect == .postgres ? try row?.decode(column: "previous", as: String?.self) : before
        return (epoch, previous == nodeID ? nil : previous)
    }

    /// The node holding the device's latest connection, and its epoch.
    public func holder(deviceID: String) async throws -> (nodeID: String, epoch: Int)? {
        guard let row = try await self.session.sql.raw(
            "SELECT node_id, epoch FROM device_sessions WHERE device_id = \(bind: deviceID)"
        ).first() else { return nil }
        return (try row.decode(column: "node_id", as: String.self), try row.decode(column: "epoch", as: Int.self))
    }

    /// Of these devices, those whose latest connection a node other than `nodeID` holds. On
    /// PostgreSQL every row read stays locked (`FOR SHARE`) until the transaction ends, so a
    /// connection noted meanwhile, on any node, waits for what this transaction writes: call it in
    /// the transaction that writes what only the holder may write (a session's journal).
    public func heldElsewhere(_ deviceIDs: Set<String>, than nodeID: String) async throws -> Set<String> {
        guard !deviceIDs.isEmpty else { return [] }
        var query = SQLQueryString("SELECT device_id, node_id FROM device_sessions WHERE device_id IN (")
        query.appendBindList(deviceIDs.sorted())
        // One order for every locker: two journals locking rows in turn cannot wait on each other.
        query.appendLiteral(self.session.dialect == .postgres ? ") ORDER BY device_id FOR SHARE" : ")")
        var elsewhere: Set<String> = []
        for row in try await self.session.sql.raw(query).all() where try row.decode(column: "node_id", as: String.self) != nodeID {
            elsewhere.insert(try row.decode(column: "device_id", as: String.self))
        }
        return elsewhere
    }

    /// Devices whose latest connection each node holds.
    public func countByNode() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for row in try await self.session.sql.raw("SELECT node_id, COUNT(*) AS n FROM device_sessions GROUP BY node_id").all() {
            counts[try row.decode(column: "node_id", as: String.self)] = try row.decode(column: "n", as: Int.self)
        }
        return counts
    }

    /// Leaves mail for a node.
    public func post(_ kind: NodeMail.Kind, deviceID: String, epoch: Int, body: String? = nil, to nodeID: String, now: Date) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO node_mail (node_id, kind, device_id, epoch, body, created_at)
            VALUES (\(bind: nodeID), \(bind: kind.rawValue), \(bind: deviceID), \(bind: epoch), \(bind: body), \(bind: now.storeMilliseconds))
            """
        ).run()
    }

    /// Takes the node's mail, oldest first: read and removed at once.
    public func take(for nodeID: String, limit: Int) async throws -> [NodeMail] {
        try await self.session.sql.raw(
            """
            DELETE FROM node_mail WHERE seq IN (
                SELECT seq FROM node_mail WHERE node_id = \(bind: nodeID) ORDER BY seq LIMIT \(bind: limit)
            )
            RETURNING seq, kind, device_id, epoch, body
            """
        ).all().compactMap { row in
            guard let kind = NodeMail.Kind(rawValue: try row.decode(column: "kind", as: String.self)) else { return nil }
            return NodeMail(
                sequence: try row.decode(column: "seq", as: Int.self), kind: kind, deviceID: try row.decode(column: "device_id", as: String.self),
                epoch: try row.decode(column: "epoch", as: Int.self), body: try row.decode(column: "body", as: String?.self)
            )
        }.sorted { $0.sequence < $1.sequence }
    }

    /// Removes mail left for nodes gone: those not in `nodes`.
    public func dropMail(except nodes: [String]) async throws {
        guard !nodes.isEmpty else { return }
        var query = SQLQueryString("DELETE FROM node_mail WHERE node_id NOT IN (")
        query.appendBindList(nodes)
        query.appendLiteral(")")
        try await self.session.sql.raw(query).run()
    }
}
