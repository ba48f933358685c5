import Foundation
import SQLKit

/// Console users. Emails are unique across tenants: signing in names no tenant.
public struct UserRepository: Sendable {
    let session: StoreSession

    /// Inserts a user; an email in use is ``StoreError/conflict(_:)``.
    public func insert(_ user: ConsoleUser) async throws {
        do {
            try await self.session.sql.raw(
                """
                INSERT INTO users (id, tenant_id, email, password_hash, role, created_at, last_sign_in_at)
                VALUES (\(bind: user.id), \(bind: user.tenantID), \(bind: user.email), \(bind: user.passwordHash),
                        \(bind: user.role.rawValue), \(bind: user.createdAt.storeMilliseconds), \(bind: user.lastSignInAt?.storeMilliseconds))
                """
            ).run()
        } catch where StoreError.isUniqueViolation(error) {
            throw StoreError.conflict("email '\(user.email)' is in use")
        }
    }

    /// The user with this (lower-cased) email, of any tenant: for signing in.
    public func withEmail(_ email: String) async throws -> ConsoleUser? {
        try await self.session.sql.raw("SELECT * FROM users WHERE email = \(bind: email)").first().map(Self.user)
    }

    public func get(id: String) async throws -> ConsoleUser? {
        try await self.session.sql.raw("SELECT * FROM users WHERE id = \(bind: id)").first().map(Self.user)
    }

    /// The tenant's users, by email.
    public func list(tenantID: String) async throws -> [ConsoleUser] {
        try await self.session.sql.raw("SELECT * FROM users WHERE tenant_id = \(bind: tenantID) ORDER BY email").all().map(Self.user)
    }

    /// Every user of every tenant, by email: for the installation's own CLI.
    public func listAll() async throws -> [ConsoleUser] {
        try await self.session.sql.raw("SELECT * FROM users ORDER BY email").all().map(Self.user)
    }

    /// How many users exist in the whole store.
    public func count() async throws -> Int {
        try await self.session.sql.raw("SELECT COUNT(*) AS n FROM users").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// How many admins the tenant has; with `lockingThem`, their rows stay locked until the
    /// transaction ends, so that two admins removing each other at once cannot both pass.
    public func countAdmins(tenantID: String, lockingThem: Bool = false) async throws -> Int {
        try await self.session.sql.raw(
            """
            SELECT id FROM users WHERE tenant_id = \(bind: tenantID) AND role = \(bind: Role.admin.rawValue)\
            \(unsafeRaw: lockingThem ? self.session.dialect.forUpdate : "")
            """
        ).all().count
    }

    public func setRole(tenantID: String, id: String, role: Role) async throws -> Bool {
        try await self.session.sql.raw(
            "UPDATE users SET role = \(bind: role.rawValue) WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id) RETURNING id"
        ).first() != nil
    }

    public func setPasswordHash(id: String, hash: String) async throws {
        try await self.session.sql.raw("UPDATE users SET password_hash = \(bind: hash) WHERE id = \(bind: id)").run()
    }

    public func recordSignIn(id: String, at date: Date) async throws {
        try await self.session.sql.raw("UPDATE users SET last_sign_in_at = \(bind: date.storeMilliseconds) WHERE id = \(bind: id)").run()
    }

    /// Removes a user and (by cascade) its sessions; false when the tenant has no such user.
    public func delete(tenantID: String, id: String) async throws -> Bool {
        try await self.session.sql.raw(
            "DELETE FROM users WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id) RETURNING id"
        ).first() != nil
    }

    static func user(_ row: any SQLRow) throws -> ConsoleUser {
        let role = try row.decode(column: "role", as: String.self)
        guard let parsed = Role(rawValue: role) else { throw StoreError.corrupt("user has unknown role '\(role)'") }
        return ConsoleUser(
            id: try row.decode(column: "id", as: String.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            email: try row.decode(column: "email", as: String.self),
            passwordHash: try row.decode(column: "password_hash", as: String.self),
            role: parsed,
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            lastSignInAt: try row.decode(column: "last_sign_in_at", as: Int?.self).map(Date.init(storeMilliseconds:))
        )
    }
}
