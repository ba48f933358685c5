import Foundation

/// A person who signs in to the console: an email, a bcrypt hash of the password, a tenant and a role.
public struct ConsoleUser: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// Kept lower-cased: one address is one user, whatever its case.
    public var email: String
    /// bcrypt, as `$2b$…`; the password itself is never stored.
    public var passwordHash: String
    public var role: Role
    public var createdAt: Date
    public var lastSignInAt: Date?

    public init(
        id: String, tenantID: String, email: String, passwordHash: String, role: Role, createdAt: Date, lastSignInAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.email = email
        self.passwordHash = passwordHash
        self.role = role
        self.createdAt = createdAt
        self.lastSignInAt = lastSignInAt
    }
}

/// A signed-in console session; the cookie's secret is stored only as its hash.
public struct ConsoleSession: Sendable, Equatable {
    /// SHA-256 of the cookie's secret, hex.
    public var idHash: String
    public var userID: String
    public var createdAt: Date
    public var lastSeenAt: Date
    /// The absolute end, whatever the activity.
    public var expiresAt: Date

    public init(idHash: String, userID: String, createdAt: Date, lastSeenAt: Date, expiresAt: Date) {
        self.idHash = idHash
        self.userID = userID
        self.createdAt = createdAt
        self.lastSeenAt = lastSeenAt
        self.expiresAt = expiresAt
    }
}
