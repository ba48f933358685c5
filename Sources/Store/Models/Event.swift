import Foundation

/// One entry of a tenant's event log: every change to a device, a token or (later) an integration.
public struct Event: Sendable, Equatable {
    /// Increases with every event of the store; the event's id.
    public var sequence: Int
    public var tenantID: String
    /// Dotted, e.g. `device.created`.
    public var type: String
    public var deviceID: String?
    /// Who did it: `token:{id}`, `cli`, or `system`.
    public var actor: String
    /// The event's details, a JSON object.
    public var data: String
    public var createdAt: Date

    public init(
        sequence: Int, tenantID: String, type: String, deviceID: String?, actor: String, data: String, createdAt: Date
    ) {
        self.sequence = sequence
        self.tenantID = tenantID
        self.type = type
        self.deviceID = deviceID
        self.actor = actor
        self.data = data
        self.createdAt = createdAt
    }
}
