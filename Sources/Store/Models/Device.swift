import Foundation

/// A device in the registry. Its id is global (it is the MQTT client id and the AWS IoT thing name).
public struct Device: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var status: DeviceStatus
    /// Sorted, without duplicates.
    public var labels: [String]
    public var attributes: [String: String]
    /// The salted hash of the broker password; never shown.
    public var secretHash: String
    public var createdAt: Date
    public var updatedAt: Date
    public var statusChangedAt: Date

    public init(
        id: String, tenantID: String, name: String, status: DeviceStatus, labels: [String],
        attributes: [String: String], secretHash: String, createdAt: Date, updatedAt: Date, statusChangedAt: Date
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.status = status
        self.labels = labels
        self.attributes = attributes
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.statusChangedAt = statusChangedAt
    }
}
