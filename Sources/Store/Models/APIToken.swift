import Foundation

/// A stored API token: only a hash of the secret is kept, so the token itself cannot be read back.
public struct APIToken: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var role: Role
    /// The SHA-256 of the token, hex.
    public var tokenHash: String
    /// The token's first characters, to tell tokens apart in a list.
    public var hint: String
    public var createdAt: Date
    public var lastUsedAt: Date?

    public init(
        id: String, tenantID: String, name: String, role: Role, tokenHash: String, hint: String,
        createdAt: Date, lastUsedAt: Date? = nil
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.role = role
        self.tokenHash = tokenHash
        self.hint = hint
        self.createdAt = createdAt
        self.lastUsedAt = lastUsedAt
    }
}
