/// The protocol level a client asked for in its CONNECT.
public enum MQTTProtocolVersion: UInt8, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// MQTT 3.1 (protocol name `MQIsdp`), spoken by old clients; handled as 3.1.1.
    case v3_1 = 3
    /// MQTT 3.1.1.
    case v3_1_1 = 4
    /// MQTT 5.0.
    case v5 = 5

    /// True for 5.0, whose packets carry properties and reason codes.
    public var hasProperties: Bool { self == .v5 }

    /// The protocol name CONNECT carries for this level.
    var protocolName: String { self == .v3_1 ? "MQIsdp" : "MQTT" }

    public var description: String {
        switch self {
        case .v3_1: "3.1"
        case .v3_1_1: "3.1.1"
        case .v5: "5.0"
        }
    }
}

/// Quality of service of a message.
public enum MQTTQoS: UInt8, Sendable, Hashable, Comparable, CaseIterable {
    case atMostOnce = 0
    case atLeastOnce = 1
    case exactlyOnce = 2

    public static func < (lhs: MQTTQoS, rhs: MQTTQoS) -> Bool { lhs.rawValue < rhs.rawValue }
}
