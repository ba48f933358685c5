import Foundation
import Store

/// A node as operators see it: when it last beat, and what it holds.
public struct ClusterNodeView: Sendable, Equatable {
    public var id: String
    public var startedAt: Date
    public var heartbeatAt: Date
    /// Beat within a lease's time.
    public var alive: Bool
    /// Shards of the uplink outbox it forwards.
    public var uplinkShards: Int
    /// Devices whose latest connection it took.
    public var devices: Int
    /// The tenant's integrations whose downlink gateway connection it holds.
    public var gateways: [String]
}

/// The nodes on this database (admins).
public struct Cluster: Sendable {
    let hub: Hub

    /// How long a node counts as alive after its last heartbeat.
    public static let aliveFor: TimeInterval = 15

    /// The nodes, newest heartbeat first, with the shards and the tenant's gateways each holds.
    public func nodes(by principal: Principal) async throws -> [ClusterNodeView] {
        try principal.require(.admin, to: "reading the cluster's nodes")
        let session = self.hub.store.session
        let now = self.hub.now()
        let tenantIntegrations = Set(try await session.integrations.list(tenantID: principal.tenantID).map(\.id))
        let shards = try await session.cluster.shardLeases().filter { $0.value.until >= now }
        let gateways = try await session.gatewayLeases.all().filter { $0.until >= now && tenantIntegrations.contains($0.integrationID) }
        let devices = try await session.deviceSessions.countByNode()
        return try await session.cluster.nodes().map { node in
            ClusterNodeView(
                id: node.id, startedAt: node.startedAt, heartbeatAt: node.heartbeatAt,
                alive: node.heartbeatAt >= now.addingTimeInterval(-Self.aliveFor),
                uplinkShards: shards.values.filter { $0.owner == node.id }.count, devices: devices[node.id] ?? 0,
                gateways: gateways.filter { $0.owner == node.id }.map(\.integrationID)
            )
        }
    }
}
