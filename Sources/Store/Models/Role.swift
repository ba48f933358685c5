/// What an API token may do. Each role includes everything the roles below it may do.
public enum Role: String, Sendable, Codable, CaseIterable, Comparable {
    /// Reads devices, events and messages.
    case reader
    /// Also manages devices and their lifecycle.
    case `operator`
    /// Also manages tokens, integrations, credentials and desired state.
    case admin

    private var rank: Int {
        switch self {
        case .reader: 0
        case .operator: 1
        case .admin: 2
        }
    }

    public static func < (lhs: Role, rhs: Role) -> Bool { lhs.rank < rhs.rank }

    /// True when this role may do what `required` may do.
    public func includes(_ required: Role) -> Bool { self >= required }
}
