import Foundation

/// An isolated space of devices, tokens and integrations. Every other row carries its tenant.
public struct Tenant: Sendable, Equatable, Codable {
    public var id: String
    public var name: String
    public var createdAt: Date

    public init(id: String, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }

    /// The name of the tenant that exists from the first start.
    public static let defaultName = "default"
}
