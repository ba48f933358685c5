import Foundation
import SQLKit

/// Integrations. Every query is scoped by tenant except those of the background workers.
public struct IntegrationRepository: Sendable {
    let session: StoreSession

    /// Inserts an integration; a name the tenant uses already is ``StoreError/conflict(_:)``.
    public func insert(_ integration: Integration) async throws {
        do {
            try await self.session.sql.raw(
                """
                INSERT INTO integrations (id, tenant_id, name, type, settings, credentials, active, status, data_endpoint,
                                          created_groups, created_at, updated_at)
                VALUES (\(bind: integration.id), \(bind: integration.tenantID), \(bind: integration.name),
                        \(bind: integration.type), \(bind: try StoreJSON.encode(integration.settings)),
                        \(bind: try StoreJSON.encode(integration.credentials)), \(bind: integration.active ? 1 : 0),
                        \(bind: integration.status.rawValue), \(bind: integration.dataEndpoint),
                        \(bind: try StoreJSON.encode(integration.createdGroups)), \(bind: integration.createdAt.storeMilliseconds),
                        \(bind: integration.updatedAt.storeMilliseconds))
                """
            ).run()
        } catch where StoreError.isUniqueViolation(error) {
            throw StoreError.conflict("integration name '\(integration.name)' is in use")
        }
    }

    /// The tenant's integration, locked until the transaction ends when `forUpdate`.
    public func get(tenantID: String, id: String, forUpdate: Bool = false) async throws -> Integration? {
        try await self.session.sql.raw(
            """
            SELECT * FROM integrations WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)\
            \(unsafeRaw: forUpdate ? self.session.dialect.forUpdate : "")
            """
        ).first().map(Self.integration)
    }

    /// The integration with this id in any tenant: for the workers.
    public func get(id: String, forUpdate: Bool = false) async throws -> Integration? {
        try await self.session.sql.raw(
            "SELECT * FROM integrations WHERE id = \(bind: id)\(unsafeRaw: forUpdate ? self.session.dialect.forUpdate : "")"
        ).first().map(Self.integration)
    }

    /// Every integration of the tenant, by name.
    public func list(tenantID: String) async throws -> [Integration] {
        try await self.session.sql.raw(
            "SELECT * FROM integrations WHERE tenant_id = \(bind: tenantID) ORDER BY name"
        ).all().map(Self.integration)
    }

    /// Every integration of every tenant in this status: for the workers.
    public func list(status: IntegrationStatus) async throws -> [Integration] {
        try await self.session.sql.raw(
            "SELECT * FROM integrations WHERE status = \(bind: status.rawValue) ORDER BY id"
        ).all().map(Self.integration)
    }

    /// Writes every field but the id, the tenant and the groups Conduit created (only
    /// ``noteCreatedGroup(_:in:)`` writes those, so that a change of settings never loses one);
    /// a name in use is ``StoreError/conflict(_:)``.
    public func update(_ integration: Integration) async throws {
        do {
            try await self.session.sql.raw(
                """
                UPDATE integrations SET name = \(bind: integration.name), type = \(bind: integration.type),
                    settings = \(bind: try StoreJSON.encode(integration.settings)),
                    credentials = \(bind: try StoreJSON.encode(integration.credentials)),
                    active = \(bind: integration.active ? 1 : 0), status = \(bind: integration.status.rawValue),
                    data_endpoint = \(bind: integration.dataEndpoint),
                    updated_at = \(bind: integration.updatedAt.storeMilliseconds)
                WHERE tenant_id = \(bind: integration.tenantID) AND id = \(bind: integration.id)
                """
            ).run()
        } catch where StoreError.isUniqueViolation(error) {
            throw StoreError.conflict("integration name '\(integration.name)' is in use")
        }
    }

    /// Adds a group to those Conduit created for the integration. Call in a transaction.
    public func noteCreatedGroup(_ group: String, in id: String) async throws {
        guard var integration = try await self.get(id: id, forUpdate: true), !integration.createdGroups.contains(group) else { return }
        integration.createdGroups.append(group)
        try await self.writeCreatedGroups(integration)
    }

    private func writeCreatedGroups(_ integration: Integration) async throws {
        try await self.session.sql.raw(
            "UPDATE integrations SET created_groups = \(bind: try StoreJSON.encode(integration.createdGroups)) WHERE id = \(bind: integration.id)"
        ).run()
    }

    /// Removes the integration and, by cascade, its device rows.
    public func delete(id: String) async throws {
        try await self.session.sql.raw("DELETE FROM integrations WHERE id = \(bind: id)").run()
    }

    static func integration(_ row: any SQLRow) throws -> Integration {
        let id = try row.decode(column: "id", as: String.self)
        let status = try row.decode(column: "status", as: String.self)
        guard let parsedStatus = IntegrationStatus(rawValue: status) else {
            throw StoreError.corrupt("integration '\(id)' has unknown status '\(status)'")
        }
        return Integration(
            id: id,
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            type: try row.decode(column: "type", as: String.self),
            settings: try row.decodeJSON(column: "settings", as: IntegrationSettings.self),
            credentials: try row.decodeJSON(column: "credentials", as: IntegrationCredentials.self),
            active: try row.decode(column: "active", as: Int.self) != 0,
            status: parsedStatus,
            dataEndpoint: try row.decode(column: "data_endpoint", as: String?.self),
            createdGroups: try row.decodeJSON(column: "created_groups", as: [String].self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self))
        )
    }
}
