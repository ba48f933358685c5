import Foundation
import Hub
import Hummingbird

/// `/v1/cluster`: the nodes on this database and what each holds (admin only).
struct ClusterRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("cluster", use: self.get)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> ClusterRepresentation {
        let nodes = try await self.hub.cluster.nodes(by: try context.requirePrincipal())
        return ClusterRepresentation(
            uplinkShards: UplinkShards.count,
            nodes: nodes.map {
                .init(
                    id: $0.id, startedAt: $0.startedAt, heartbeatAt: $0.heartbeatAt, alive: $0.alive, uplinkShards: $0.uplinkShards, devices: $0.devices,
                    gateways: $0.gateways
                )
            }
        )
    }
}

struct ClusterRepresentation: ResponseEncodable {
    struct Node: Encodable {
        let id: String
        let startedAt: Date
        let heartbeatAt: Date
        let alive: Bool
        let uplinkShards: Int
        let devices: Int
        let gateways: [String]
    }

    /// Shards of the uplink outbox in all.
    let uplinkShards: Int
    let nodes: [Node]
}
