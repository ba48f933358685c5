import Foundation

/// A rule of a tenant as the store keeps it: its definition is the hub's, kept as JSON.
public struct Rule: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// Unique in the tenant.
    public var name: String
    /// The definition, JSON.
    public var definition: String
    public var enabled: Bool
    public var createdAt: Date
    public var updatedAt: Date

    public init(id: String, tenantID: String, name: String, definition: String, enabled: Bool, createdAt: Date, updatedAt: Date) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.definition = definition
        self.enabled = enabled
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Where one device stands in one rule, as JSON the hub reads.
public struct RuleStateRecord: Sendable, Equatable {
    public var ruleID: String
    public var deviceID: String
    public var tenantID: String
    public var state: String
    public var updatedAt: Date

    public init(ruleID: String, deviceID: String, tenantID: String, state: String, updatedAt: Date) {
        self.ruleID = ruleID
        self.deviceID = deviceID
        self.tenantID = tenantID
        self.state = state
        self.updatedAt = updatedAt
    }
}
