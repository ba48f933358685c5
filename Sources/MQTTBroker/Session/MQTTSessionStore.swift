import Foundation
import MQTT
import NIOCore

/// Keeps persistent sessions (3.1.1 clean session 0, 5.0 session expiry > 0) beyond the
/// process: their subscriptions and the QoS 1 and 2 messages they hold, so that a restart, or a
/// crash, loses neither. Wills and retained messages are not kept.
public protocol MQTTSessionStore: Sendable {
    /// Other brokers keep their sessions in the same store (the nodes of one cluster), so a
    /// client may come back to any of them. A session then lives in the store between its
    /// connections: read when its client connects, not when the broker starts.
    var isShared: Bool { get }
    /// Every session kept, with its messages in order; read once, when the broker starts (not
    /// at all when the store is shared).
    func storedSessions() async throws -> [MQTTSessionRecord]
    /// The session kept for one client, with its messages in order (a shared store).
    func storedSession(clientIdentifier: String) async throws -> MQTTSessionRecord?
    /// Applies these changes, in order, all or none.
    func save(_ changes: [MQTTSessionChange]) async throws
}

/// A persistent session as the store keeps it.
public struct MQTTSessionRecord: Sendable, Codable, Equatable {
    public struct Subscription: Sendable, Codable, Equatable {
        public var filter: String
        public var qos: UInt8
        public var noLocal: Bool
        public var retainAsPublished: Bool
        public var retainHandling: UInt8
        public var identifier: Int?
    }

    public struct Message: Sendable, Codable, Equatable {
        /// The session's number for it, in the order it came.
        public var sequence: UInt64
        public var topic: String
        public var payload: Data
        public var qos: UInt8
        public var retain: Bool
        /// PUBLISH properties, as on the wire.
        public var properties: Data
        public var subscriptionIdentifiers: [Int]
        public var expiresAt: Date?
        public var deliveryID: Int?
        /// The packet identifier it was sent with; nil while it waits in the queue.
        public var packetIdentifier: UInt16?
        /// QoS 2: the client's PUBREC came, only PUBREL and PUBCOMP remain.
        public var released: Bool?
    }

    public var clientIdentifier: String
    public var principal: String
    /// Seconds the session outlives its connection; `UInt32.max` for ever.
    public var expiryInterval: UInt32
    public var subscriptions: [Subscription]
    /// When its connection ended; nil while connected (or when the process stopped under it).
    public var disconnectedAt: Date?
    /// Filled when read back; changes carry messages one by one.
    public var messages: [Message] = []
}

/// One change to the kept sessions.
public enum MQTTSessionChange: Sendable, Equatable {
    /// The session's row, new or changed (its messages are not in it).
    case saveSession(MQTTSessionRecord)
    /// The session ended: it and its messages go.
    case deleteSession(clientIdentifier: String)
    case addMessage(clientIdentifier: String, MQTTSessionRecord.Message)
    case removeMessage(clientIdentifier: String, sequence: UInt64)

    /// The client whose session it changes.
    public var clientIdentifier: String {
        switch self {
        case .saveSession(let record): record.clientIdentifier
        case .deleteSession(let clientIdentifier), .addMessage(let clientIdentifier, _), .removeMessage(let clientIdentifier, _): clientIdentifier
        }
    }
}

extension MQTTSessionRecord.Subscription {
    init(_ subscription: MQTTSubscription) {
        self.init(
            filter: subscription.filter, qos: subscription.qos.rawValue, noLocal: subscription.noLocal,
            retainAsPublished: subscription.retainAsPublished, retainHandling: subscription.retainHandling.rawValue,
            identifier: subscription.identifier
        )
    }

    /// The subscription again; nil for a filter that no longer parses.
    var subscription: MQTTSubscription? {
        guard let parsed = try? MQTTTopic.validateFilter(self.filter), let qos = MQTTQoS(rawValue: self.qos) else { return nil }
        return MQTTSubscription(
            filter: self.filter, topicFilter: parsed.filter, shareGroup: parsed.shareGroup, qos: qos, noLocal: self.noLocal,
            retainAsPublished: self.retainAsPublished,
            retainHandling: MQTTSubscribePacket.RetainHandling(rawValue: self.retainHandling) ?? .sendOnSubscribe,
            identifier: self.identifier
        )
    }
}

extension MQTTSessionRecord.Message {
    /// A message a session holds, as the store keeps it: its expiry as a time of day, which
    /// outlives the process where a deadline does not.
    init(_ outgoing: MQTTSessionState.Outgoing, now: NIODeadline, wallClock: Date) {
        let message = outgoing.message
        self.init(
            sequence: outgoing.sequence, topic: message.topic, payload: Data(message.payload.readableBytesView),
            qos: outgoing.qos.rawValue, retain: outgoing.retain, properties: Data(message.properties.publishEncoded),
            subscriptionIdentifiers: outgoing.subscriptionIdentifiers,
            expiresAt: message.expiresAt.map { wallClock.addingTimeInterval(Double(($0 - now).nanoseconds) / 1e9) },
            deliveryID: message.deliveryID, packetIdentifier: outgoing.packetIdentifier, released: outgoing.released ? true : nil
        )
    }

    /// The message back in a session; nil when it no longer reads back or its expiry passed.
    func outgoing(now: NIODeadline, wallClock: Date) -> MQTTSessionState.Outgoing? {
        let expiresAt = self.expiresAt.map { now + .nanoseconds(Int64($0.timeIntervalSince(wallClock) * 1e9)) }
        guard let qos = MQTTQoS(rawValue: self.qos), let properties = try? MQTTProperties(publishEncoded: Array(self.properties)),
            expiresAt.map({ $0 > now }) ?? true
        else { return nil }
        let message = MQTTBrokerMessage(
            topic: self.topic, payload: ByteBuffer(bytes: self.payload), qos: qos, retain: self.retain, properties: properties,
            expiresAt: expiresAt, deliveryID: self.deliveryID
        )
        return MQTTSessionState.Outgoing(
            message: message, qos: qos, retain: self.retain, subscriptionIdentifiers: self.subscriptionIdentifiers,
            released: self.released ?? false, sequence: self.sequence, packetIdentifier: self.packetIdentifier
        )
    }
}
