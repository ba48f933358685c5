import Foundation
import SQLKit

/// A node of Conduit on this database, as its heartbeats show it.
public struct ClusterNode: Sendable, Equatable {
    public var id: String
    public var startedAt: Date
    public var heartbeatAt: Date
}

/// The nodes sharing one database, and which node forwards each shard of the uplink outbox.
///
/// A device's outbox rows belong to one shard (by its id), and a shard is forwarded by the node
/// holding its lease: one node at a time publishes a device's messages, in order, and a node
/// that dies gives its shards up when their leases lapse.
public struct ClusterRepository: Sendable {
    let session: StoreSession

    /// Notes that the node is alive now; `startedAt` is when its process started.
    public func heartbeat(nodeID: String, startedAt: Date, now: Date) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO cluster_nodes (id, started_at, heartbeat_at)
            VALUES (\(bind: nodeID), \(bind: startedAt.storeMilliseconds), \(bind: now.storeMilliseconds))
            ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
            """
        ).run()
    }

    /// Every node that ever beat, newest heartbeat first; a node that stopped cleanly is gone.
    public func nodes() async throws -> [ClusterNode] {
        try await self.session.sql.raw("SELECT id, started_at, heartbeat_at FROM cluster_nodes ORDER BY heartbeat_at DESC, id").all().map { row in
            ClusterNode(
                id: try row.decode(column: "id", as: String.self),
                startedAt: Date(storeMilliseconds: try row.decode(column: "started_at", as: Int.self)),
                heartbeatAt: Date(storeMilliseconds: try row.decode(column: "heartbeat_at", as: Int.self))
            )
        }
    }

    /// Removes the node's row (a clean stop), and those of nodes silent since `before`.
    public func forget(nodeID: String?, silentSince before: Date) async throws {
        try await self.session.sql.raw(
            "DELETE FROM cluster_nodes WHERE id = \(bind: nodeID ?? "") OR heartbeat_at < \(bind: before.storeMilliseconds)"
        ).run()
    }

    // MARK: Uplink shards

    /// Every shard's lease: owner and until when.
    public func shardLeases() async throws -> [Int: (owner: String, until: Date)] {
        var leases: [Int: (owner: String, until: Date)] = [:]
        for row in try await self.session.sql.raw("SELECT shard, owner, lease_until FROM uplink_shard_leases").all() {
            leases[try row.decode(column: "shard", as: Int.self)] = (
                try row.decode(column: "owner", as: String.self), Date(storeMilliseconds: try row.decode(column: "lease_until", as: Int.self))
            )
        }
        return leases
    }

    /// Extends every lease `owner` holds that has not lapsed to `until`; returns those shards.
    public func renewShards(owner: String, now: Date, until: Date) async throws -> Set<Int> {
        Set(
            try await self.session.sql.raw(
                """
                UPDATE uplink_shard_leases SET lease_until = \(bind: until.storeMilliseconds)
                WHERE owner = \(bind: owner) AND lease_until >= \(bind: now.storeMilliseconds)
                RETURNING shard
                """
            ).all().map { try $0.decode(column: "shard", as: Int.self) }
        )
    }

    /// Takes the shard's lease until `until` when it is free or lapsed (or `owner`'s already).
    public func acquireShard(_ shard: Int, owner: String, now: Date, until: Date) async throws -> Bool {
        try await self.session.sql.raw(
            """
            INSERT INTO uplink_shard_leases (shard, owner, lease_until)
            VALUES (\(bind: shard), \(bind: owner), \(bind: until.storeMilliseconds))
            ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
            WHERE uplink_shard_leases.owner = excluded.owner OR uplink_shard_leases.lease_until < \(bind: now.storeMilliseconds)
            RETURNING shard
            """
        ).first() != nil
    }

    /// Gives the shards up, if `owner` holds them, so that another node takes them at once.
    public func releaseShards(_ shards: [Int], owner: String) async throws {
        guard !shards.isEmpty else { return }
        var query = SQLQueryString("DELETE FROM uplink_shard_leases WHERE owner = \(bind: owner) AND shard IN (")
        query.appendBindList(shards)
        query.appendLiteral(")")
        try await self.session.sql.raw(query).run()
    }
}
