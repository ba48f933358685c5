import Store

/// An operator's lifecycle action on a device.
public enum LifecycleAction: String, Sendable, CaseIterable {
    case accept
    case reject
    case decommission

    /// The status the action leads to.
    public var target: DeviceStatus {
        switch self {
        case .accept: .accepted
        case .reject: .rejected
        case .decommission: .decommissioned
        }
    }

    /// The statuses the action may start from.
    public var allowedFrom: [DeviceStatus] {
        switch self {
        case .accept: [.pending, .rejected]
        case .reject: [.pending, .accepted]
        case .decommission: [.pending, .accepted, .rejected]
        }
    }

    /// The status after applying this action to a device in `status`, or a 409 naming what is allowed.
    ///
    /// `pending -> accepted | rejected`, `accepted <-> rejected`, any -> `decommissioned`, which is final.
    /// Repeating an action (accepting an accepted device) is also refused: it changes nothing and a
    /// caller that believes otherwise should know.
    public func apply(to status: DeviceStatus) throws -> DeviceStatus {
        guard self.allowedFrom.contains(status) else {
            let from = self.allowedFrom.map(\.rawValue).joined(separator: ", ")
            throw HubError.conflict(
                "invalid_transition",
                "cannot \(self.rawValue) a device that is \(status.rawValue): \(self.rawValue) is allowed from \(from)"
            )
        }
        return self.target
    }
}
