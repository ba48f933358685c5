import Store

/// Who is calling: a token's tenant and role, or the installation's own admin commands.
public struct Principal: Sendable, Equatable {
    public var tenantID: String
    public var role: Role
    /// Written to the event log: `token:{id}` or `cli`.
    public var actor: String

    public init(tenantID: String, role: Role, actor: String) {
        self.tenantID = tenantID
        self.role = role
        self.actor = actor
    }

    /// Throws 403 unless this principal's role includes `role`.
    public func require(_ role: Role, to action: String) throws {
        guard self.role.includes(role) else {
            let who = self.actor.hasPrefix("user:") ? "your role is" : "this token is"
            throw HubError.forbidden("\(action) needs the \(role.rawValue) role; \(who) \(self.role.rawValue)")
        }
    }
}
