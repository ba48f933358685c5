import Foundation
import SQLKit

/// Tenants: created by an operator of the installation (`conduit tenants create`), never by the API.
public struct TenantRepository: Sendable {
    let session: StoreSession

    /// Inserts a tenant; a taken name is ``StoreError/conflict(_:)``.
    public func insert(_ tenant: Tenant) async throws {
        do {
            try await self.session.sql.raw(
                """
                INSERT INTO tenants (id, name, created_at)
                VALUES (\(bind: tenant.id), \(bind: tenant.name), \(bind: tenant.createdAt.storeMilliseconds))
                """
            ).run()
        } catch where StoreError.isUniqueViolation(error) {
            throw StoreError.conflict("tenant '\(tenant.name)' exists already")
        }
    }

    /// Inserts the tenant unless one of that name exists; returns the stored one, and whether
    /// this call inserted it (exactly one of several concurrent callers does).
    public func insertIfAbsent(_ tenant: Tenant) async throws -> (tenant: Tenant, inserted: Bool) {
        let inserted = try await self.session.sql.raw(
            """
            INSERT INTO tenants (id, name, created_at)
            VALUES (\(bind: tenant.id), \(bind: tenant.name), \(bind: tenant.createdAt.storeMilliseconds))
            ON CONFLICT (name) DO NOTHING
            RETURNING id
            """
        ).first() != nil
        guard let stored = try await self.named(tenant.name) else {
            throw StoreError.corrupt("tenant '\(tenant.name)' vanished after insert")
        }
        return (stored, inserted)
    }

    public func named(_ name: String) async throws -> Tenant? {
        try await self.session.sql.raw("SELECT * FROM tenants WHERE name = \(bind: name)").first().map(Self.tenant)
    }

    public func get(id: String) async throws -> Tenant? {
        try await self.session.sql.raw("SELECT * FROM tenants WHERE id = \(bind: id)").first().map(Self.tenant)
    }

    /// Every tenant, by name.
    public func list() async throws -> [Tenant] {
        try await self.session.sql.raw("SELECT * FROM tenants ORDER BY name").all().map(Self.tenant)
    }

    static func tenant(_ row: any SQLRow) throws -> Tenant {
        Tenant(
            id: try row.decode(column: "id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self))
        )
    }
}
