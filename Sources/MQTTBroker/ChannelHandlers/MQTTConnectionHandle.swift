import MQTT
import NIOCore

/// What the broker keeps of a live connection: where to send packets and how to close it.
/// Safe to use from any thread: each call hops to the connection's event loop.
struct MQTTConnectionHandle: Sendable {
    let identifier: ObjectIdentifier
    let version: MQTTProtocolVersion
    /// How many QoS 1 and 2 messages may be in flight to this client.
    let receiveMaximum: Int
    /// The largest packet the client accepts.
    let maximumPacketSize: Int
    private let send: @Sendable ([MQTTPacket]) -> Void
    private let closeConnection: @Sendable (MQTTReasonCode?) -> Void

    init(
        identifier: ObjectIdentifier, version: MQTTProtocolVersion, receiveMaximum: Int, maximumPacketSize: Int,
        send: @escaping @Sendable ([MQTTPacket]) -> Void, close: @escaping @Sendable (MQTTReasonCode?) -> Void
    ) {
        self.identifier = identifier
        self.version = version
        self.receiveMaximum = receiveMaximum
        self.maximumPacketSize = maximumPacketSize
        self.send = send
        self.closeConnection = close
    }

    func write(_ packets: [MQTTPacket]) {
        guard !packets.isEmpty else { return }
        self.send(packets)
    }

    /// Closes the connection, after a DISCONNECT with `reason` on 5.0.
    func close(reason: MQTTReasonCode?) {
        self.closeConnection(reason)
    }
}
