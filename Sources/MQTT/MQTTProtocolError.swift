/// Input that breaks the MQTT specification. The broker answers it with ``reasonCode`` (in a
/// CONNACK or DISCONNECT where the protocol version allows) and closes the connection.
public struct MQTTProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The MQTT 5 reason code that names the failure: malformed packet, protocol error, packet too large, ...
    public let reasonCode: MQTTReasonCode
    /// What exactly was wrong, for logs.
    public let message: String

    public init(_ reasonCode: MQTTReasonCode, _ message: String) {
        self.reasonCode = reasonCode
        self.message = message
    }

    public var description: String { "\(self.reasonCode): \(self.message)" }

    static func malformed(_ message: String) -> MQTTProtocolError { MQTTProtocolError(.malformedPacket, message) }
    static func protocolError(_ message: String) -> MQTTProtocolError { MQTTProtocolError(.protocolError, message) }
}
