import DequeModule
import MQTT
import NIOCore

/// The broker's state for one client identifier: it outlives connections while its expiry allows.
/// Accessed only under the broker's lock.
final class MQTTSession {
    /// A message on its way to the client that the client has not finished acknowledging.
    struct Inflight {
        var message: MQTTBrokerMessage
        var qos: MQTTQoS
        var retain: Bool
        var subscriptionIdentifiers: [Int]
        /// QoS 2 after PUBREC: only PUBREL/PUBCOMP remain.
        var released: Bool
    }

    /// A message waiting for the connection or for room in the in-flight window.
    struct Queued {
        var message: MQTTBrokerMessage
        var qos: MQTTQoS
        var retain: Bool
        var subscriptionIdentifiers: [Int]
    }

    let clientIdentifier: String
    var principal: String
    var connection: MQTTConnectionHandle?
    var subscriptions: [String: MQTTSubscription] = [:]
    /// Seconds the session lives after its connection ends; `UInt32.max` for ever.
    var expiryInterval: UInt32 = 0
    var expiryTimer: Scheduled<Void>?
    var inflight: [UInt16: Inflight] = [:]
    /// Packet identifiers in the order they were sent, for redelivery in order.
    var inflightOrder: [UInt16] = []
    var queue: Deque<Queued> = []
    /// QoS 2 packet identifiers received from the client whose PUBREL has not come yet, and
    /// whether the observer has stored each message.
    var incomingQoS2: [UInt16: Bool] = [:]
    /// Publishers paused because this session's queue is long; resumed when it drains.
    var waiters: [MQTTConnectionHandle] = []
    var will: MQTTConnectPacket.Will?
    var willTimer: Scheduled<Void>?
    private var lastPacketIdentifier: UInt16 = 0

    init(clientIdentifier: String, principal: String) {
        self.clientIdentifier = clientIdentifier
        self.principal = principal
    }

    /// The next packet identifier not in flight.
    func nextPacketIdentifier() -> UInt16 {
        repeat {
            self.lastPacketIdentifier = self.lastPacketIdentifier == .max ? 1 : self.lastPacketIdentifier + 1
        } while self.inflight[self.lastPacketIdentifier] != nil
        return self.lastPacketIdentifier
    }

    func removeInflight(_ identifier: UInt16) -> Inflight? {
        guard let removed = self.inflight.removeValue(forKey: identifier) else { return nil }
        if let index = self.inflightOrder.firstIndex(of: identifier) { self.inflightOrder.remove(at: index) }
        return removed
    }
}
