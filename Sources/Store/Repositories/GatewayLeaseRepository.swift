import Foundation
import SQLKit

/// Which node holds each integration's downlink gateway connection: AWS IoT lets one connection
/// per client id live, so nodes on one database take turns by lease instead of taking it from
/// each other.
public struct GatewayLeaseRepository: Sendable {
    let session: StoreSession

    /// Takes or renews the lease until `until`: true when `owner` holds it now (it was free,
    /// lapsed, or `owner`'s already).
    public func acquire(integrationID: String, owner: String, now: Date, until: Date) async throws -> Bool {
        try await self.session.sql.raw(
            """
            INSERT INTO gateway_leases (integration_id, owner, lease_until)
            VALUES (\(bind: integrationID), \(bind: owner), \(bind: until.storeMilliseconds))
            ON CONFLICT (integration_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
            WHERE gateway_leases.owner = excluded.owner OR gateway_leases.lease_until < \(bind: now.storeMilliseconds)
            RETURNING owner
            """
        ).first() != nil
    }

    /// Gives the lease up, if `owner` holds it, so that another node takes over at once.
    public func release(integrationID: String, owner: String) async throws {
        try await self.session.sql.raw(
            "DELETE FROM gateway_leases WHERE integration_id = \(bind: integrationID) AND owner = \(bind: owner)"
        ).run()
    }

    /// Who holds the lease and until when; nil when no one does.
    public func holder(integrationID: String) async throws -> (owner: String, until: Date)? {
        guard let row = try await self.session.sql.raw(
            "SELECT owner, lease_until FROM gateway_leases WHERE integration_id = \(bind: integrationID)"
        ).first() else { return nil }
        return (try row.decode(column: "owner", as: String.self), Date(storeMilliseconds: try row.decode(column: "lease_until", as: Int.self)))
    }

    /// Every lease: integration, owner and until when.
    public func all() async throws -> [(integrationID: String, owner: String, until: Date)] {
        try await self.session.sql.raw("SELECT integration_id, owner, lease_until FROM gateway_leases ORDER BY integration_id").all().map { row in
            (
                try row.decode(column: "integration_id", as: String.self), try row.decode(column: "owner", as: String.self),
                Date(storeMilliseconds: try row.decode(column: "lease_until", as: Int.self))
            )
        }
    }
}
