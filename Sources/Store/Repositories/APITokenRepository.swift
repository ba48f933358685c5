import Foundation
import SQLKit

/// API tokens, looked up by the hash of the presented secret.
public struct APITokenRepository: Sendable {
    let session: StoreSession

    public func insert(_ token: APIToken) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO api_tokens (id, tenant_id, name, role, token_hash, hint, created_at, last_used_at)
            VALUES (\(bind: token.id), \(bind: token.tenantID), \(bind: token.name), \(bind: token.role.rawValue),
                    \(bind: token.tokenHash), \(bind: token.hint), \(bind: token.createdAt.storeMilliseconds),
                    \(bind: token.lastUsedAt?.storeMilliseconds))
            """
        ).run()
    }

    /// The token whose secret hashes to `hash`, of any tenant.
    public func withHash(_ hash: String) async throws -> APIToken? {
        try await self.session.sql.raw("SELECT * FROM api_tokens WHERE token_hash = \(bind: hash)").first().map(Self.token)
    }

    public func get(tenantID: String, id: String) async throws -> APIToken? {
        try await self.session.sql.raw(
            "SELECT * FROM api_tokens WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)"
        ).first().map(Self.token)
    }

    /// A tenant's tokens, oldest first.
    public func list(tenantID: String) async throws -> [APIToken] {
        try await self.session.sql.raw(
            "SELECT * FROM api_tokens WHERE tenant_id = \(bind: tenantID) ORDER BY created_at, id"
        ).all().map(Self.token)
    }

    /// Removes a token; false when the tenant has no such token.
    public func delete(tenantID: String, id: String) async throws -> Bool {
        try await self.session.sql.raw(
            "DELETE FROM api_tokens WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id) RETURNING id"
        ).first() != nil
    }

    /// How many tokens exist in the whole store.
    public func count() async throws -> Int {
        try await self.session.sql.raw("SELECT COUNT(*) AS n FROM api_tokens").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Records a use, at most once a minute per token so that reads do not turn into writes.
    public func touch(id: String, at date: Date) async throws {
        let now = date.storeMilliseconds
        try await self.session.sql.raw(
            """
            UPDATE api_tokens SET last_used_at = \(bind: now)
            WHERE id = \(bind: id) AND (last_used_at IS NULL OR last_used_at < \(bind: now - 60_000))
            """
        ).run()
    }

    static func token(_ row: any SQLRow) throws -> APIToken {
        let role = try row.decode(column: "role", as: String.self)
        guard let parsed = Role(rawValue: role) else { throw StoreError.corrupt("token has unknown role '\(role)'") }
        return APIToken(
            id: try row.decode(column: "id", as: String.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            role: parsed,
            tokenHash: try row.decode(column: "token_hash", as: String.self),
            hint: try row.decode(column: "hint", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            lastUsedAt: try row.decode(column: "last_used_at", as: Int?.self).map(Date.init(storeMilliseconds:))
        )
    }
}
