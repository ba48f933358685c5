import DequeModule
import MQTT
import NIOCore

/// One client's session as the protocol sees it: the messages on their way to the client, the
/// QoS 2 exchanges the client started, its will and its expiry, and the rules each packet and
/// each disconnection follow.
///
/// It never touches a channel, a clock or a lock: time comes in as `now`, and what to write,
/// publish or schedule comes out as values. The broker keeps it under its lock and carries the
/// answers out.
struct MQTTSessionState {
    /// What the broker allows every session.
    struct Limits: Equatable {
        /// QoS 1 and 2 messages in flight to the client at most (its own receive maximum may lower it).
        var maximumInflight: Int
        /// Messages waiting for an offline client at most; a connected one, which holds its
        /// publishers back instead, may have ten times as many.
        var maximumQueued: Int
        /// Payload bytes waiting for an offline client at most (ten times as many when connected).
        var maximumQueuedBytes: Int = 8 << 20
        /// A store keeps persistent sessions: they journal what they take and let go.
        var journaled = false
    }

    /// A change a persistent session's store must hear of, in order.
    enum JournalEntry: Equatable {
        /// A QoS 1 or 2 message the session now holds, or one whose state changed (it was sent
        /// with a packet identifier, or its PUBREC came): the store keeps its latest state.
        case added(Outgoing)
        /// The message with this sequence number is delivered, refused or dropped.
        case removed(UInt64)
    }

    /// How the connected client is reached; nil while it is offline.
    struct Link: Equatable {
        var version: MQTTProtocolVersion
        /// `min(broker's maximum in flight, client's receive maximum)`.
        var window: Int
        /// The largest packet the client accepts [MQTT-3.1.2-24].
        var maximumPacketSize: Int
    }

    /// A QoS 1 or 2 message the client has not finished acknowledging, or one waiting its turn.
    struct Outgoing: Equatable {
        var message: MQTTBrokerMessage
        var qos: MQTTQoS
        var retain: Bool
        var subscriptionIdentifiers: [Int]
        /// QoS 2 after PUBREC: only PUBREL and PUBCOMP remain.
        var released = false
        /// The session's number for it, in the order it came: its key in the store.
        var sequence: UInt64 = 0
        /// The identifier it was sent with; kept, so that after a restart it is sent again
        /// with the same one (a QoS 2 receiver holds on to it until PUBREL).
        var packetIdentifier: UInt16?
    }

    /// Where a QoS 2 message from the client stands, between its PUBLISH and its PUBREL.
    enum IncomingQoS2: Equatable {
        /// First time: route it and store it.
        case new
        /// Routed and stored before: acknowledge it again, nothing more.
        case routedAndStored
        /// Routed, but storing failed: store it again, and do not route it twice; `ticket` is
        /// the journal's for the persistent sessions that took it, to wait on again.
        case routedNotStored(ticket: Int?)
    }

    /// A QoS 2 message from the client between its PUBLISH and its PUBREL.
    struct Incoming: Equatable {
        var stored = false
        /// The journal's ticket for the persistent sessions it was routed to, if any.
        var ticket: Int?
    }

    /// What became of a message meant for the client.
    enum Delivery: Equatable {
        /// Write this PUBLISH now.
        case send(MQTTPublishPacket)
        /// It waits (offline, or the window is full). `slowPublisher`: the queue of a connected
        /// client is long enough that whoever feeds it should be held back.
        case queued(slowPublisher: Bool)
        /// Not kept: QoS 0 to an offline client, or larger than the client accepts.
        case discarded
        /// The queue is at its limit: the message is lost, and that is worth a warning.
        case queueFull
    }

    /// What an acknowledgement from the client leads to.
    struct Acknowledged: Equatable {
        /// The answer to write (PUBREL after PUBREC).
        var reply: MQTTPacket?
        /// The delivery id of a message now fully delivered.
        var delivered: Int?
        /// Messages that moved from the queue into the freed window.
        var send: [MQTTPublishPacket] = []
        /// The queue is short again: publishers held back may go on.
        var releasePublishers = false
    }

    /// When the will goes out.
    enum WillTiming: Equatable {
        case none
        case now(MQTTConnectPacket.Will)
        /// After this many seconds, unless the client is back first.
        case after(seconds: UInt32)
    }

    /// What a lost connection leads to.
    struct Ending: Equatable {
        var will: WillTiming
        /// How long the session is kept: 0 ends it now, `UInt32.max` keeps it for ever.
        var keepFor: UInt32
    }

    let clientIdentifier: String
    var principal: String
    let limits: Limits
    /// The filters the client subscribed to, by the filter as it sent it.
    var subscriptions: [String: MQTTSubscription] = [:]
    /// Seconds the session outlives its connection; `UInt32.max` for ever.
    var expiryInterval: UInt32 = 0
    private(set) var will: MQTTConnectPacket.Will?
    private(set) var link: Link?
    private(set) var inflight: [UInt16: Outgoing] = [:]
    /// Packet identifiers in the order they were sent, for redelivery in that order.
    private(set) var inflightOrder: Deque<UInt16> = []
    /// In flight before a reconnect but not sent again yet: the new connection's window was
    /// smaller. They go before anything queued as acknowledgements free the window.
    private(set) var awaitingResend: Deque<UInt16> = []
    private(set) var queue: Deque<Outgoing> = []
    /// QoS 2 packet identifiers from the client whose PUBREL has not come, and where the
    /// message behind each stands.
    private(set) var incomingQoS2: [UInt16: Incoming] = [:]
    private var lastPacketIdentifier: UInt16 = 0
    /// Payload bytes in `queue`.
    private(set) var queuedBytes = 0
    private var lastSequence: UInt64 = 0
    /// What the store has not heard yet; kept only for a persistent session.
    private(set) var journal: [JournalEntry] = []

    init(clientIdentifier: String, principal: String, limits: Limits) {
        self.clientIdentifier = clientIdentifier
        self.principal = principal
        self.limits = limits
    }

    var isConnected: Bool { self.link != nil }

    /// A session that outlives its connection is kept in the store too, when the broker has one.
    var isPersistent: Bool { self.expiryInterval > 0 }

    /// A session as the store kept it, back after a restart, offline: the messages that had
    /// been sent are in flight again with their packet identifiers (and their PUBREC, for
    /// QoS 2), to go again on reconnecting; the others are queued; all in their order.
    init(restoring clientIdentifier: String, principal: String, expiryInterval: UInt32, subscriptions: [MQTTSubscription], messages: [Outgoing], limits: Limits) {
        self.init(clientIdentifier: clientIdentifier, principal: principal, limits: limits)
        self.expiryInterval = expiryInterval
        for subscription in subscriptions { self.subscriptions[subscription.filter] = subscription }
        for outgoing in messages.sorted(by: { $0.sequence < $1.sequence }) {
            if let identifier = outgoing.packetIdentifier, self.inflight[identifier] == nil {
                self.inflight[identifier] = outgoing
                self.inflightOrder.append(identifier)
                self.lastPacketIdentifier = identifier
            } else {
                var queued = outgoing
                queued.packetIdentifier = nil
                queued.released = false
                self.queue.append(queued)
                self.queuedBytes += outgoing.message.payload.readableBytes
            }
        }
        self.lastSequence = messages.map(\.sequence).max() ?? 0
    }

    /// Hands over what the store has not heard yet.
    mutating func takeJournal() -> [JournalEntry] {
        defer { self.journal = [] }
        return self.journal
    }

    private mutating func record(_ entry: JournalEntry) {
        if self.limits.journaled && self.isPersistent { self.journal.append(entry) }
    }

    /// Delivery ids of the messages queued or in flight: what the hub need not send again.
    var pendingDeliveryIDs: Set<Int> {
        Set(self.inflight.values.compactMap(\.message.deliveryID) + self.queue.compactMap(\.message.deliveryID))
    }

    // MARK: Connections

    /// A connection (new, resumed or taking over) attached with `will`: returns what the session
    /// owes the client, to write after the CONNACK. Unacknowledged messages go again, in their
    /// order and marked DUP, PUBREL for those already received [MQTT-4.4.0-1]; then the queue.
    mutating func connected(_ link: Link, will: MQTTConnectPacket.Will?, expiryInterval: UInt32, now: NIODeadline) -> [MQTTPacket] {
        self.link = link
        self.will = will
        let wasPersistent = self.isPersistent
        self.expiryInterval = expiryInterval
        if !wasPersistent && self.isPersistent {
            // Persistent from now on: the store hears of what the session already holds.
            for identifier in self.inflightOrder { if let outgoing = self.inflight[identifier] { self.record(.added(outgoing)) } }
            for outgoing in self.queue { self.record(.added(outgoing)) }
        }
        // As many as the new connection's window takes go now; the rest as it frees up. One
        // the client no longer accepts (its maximum packet size shrank) is dropped.
        var packets: [MQTTPacket] = []
        self.awaitingResend = []
        var resent = 0
        for identifier in Array(self.inflightOrder) {
            guard let outgoing = self.inflight[identifier] else { continue }
            if outgoing.released {
                packets.append(.pubrel(MQTTAckPacket(packetIdentifier: identifier)))
                resent += 1
            } else if resent >= link.window {
                self.awaitingResend.append(identifier)
            } else if let packet = self.resend(identifier, outgoing, link, now: now) {
                packets.append(.publish(packet))
                resent += 1
            }
        }
        packets += self.drain(now: now).map { .publish($0) }
        return packets
    }

    /// An unacknowledged message again, with DUP; nil (and dropped) when the client no longer
    /// accepts its size.
    private mutating func resend(_ identifier: UInt16, _ outgoing: Outgoing, _ link: Link, now: NIODeadline) -> MQTTPublishPacket? {
        let packet = outgoing.message.publishPacket(
            qos: outgoing.qos, retain: outgoing.retain, packetIdentifier: identifier,
            subscriptionIdentifiers: outgoing.subscriptionIdentifiers, duplicate: true, now: now
        )
        guard Self.fits(packet, link) else {
            _ = self.removeInflight(identifier)
            return nil
        }
        return packet
    }

    /// Another connection of the same client arrives while this session lives. Returns the will
    /// to publish now: a takeover ends the old connection, whose will goes unless it was to wait
    /// (the new connection is that wait's end) [MQTT-3.1.3-9]; a clean start ends the session,
    /// and a session's end sends a waiting will at once.
    mutating func replaced(cleanStart: Bool) -> MQTTConnectPacket.Will? {
        defer {
            self.will = nil
            self.link = nil
        }
        guard let will = self.will else { return nil }
        let delayed = (will.properties.willDelayInterval ?? 0) > 0
        if self.link != nil && !delayed { return will }
        return cleanStart ? will : nil
    }

    /// The connection ended. `publishWill` is false after a normal DISCONNECT (and for an
    /// administrative one): the will is then discarded [MQTT-3.1.2-8].
    mutating func disconnected(publishWill: Bool) -> Ending {
        self.link = nil
        guard publishWill, let will = self.will else {
            self.will = nil
            return Ending(will: .none, keepFor: self.expiryInterval)
        }
        // The will waits at most as long as the session lives [MQTT-3.1.3-9].
        let delay = min(will.properties.willDelayInterval ?? 0, self.expiryInterval)
        if delay == 0 {
            self.will = nil
            return Ending(will: .now(will), keepFor: self.expiryInterval)
        }
        return Ending(will: .after(seconds: delay), keepFor: self.expiryInterval)
    }

    /// The will delay ran out with the client still away: the will to publish, if still due.
    mutating func willDelayElapsed() -> MQTTConnectPacket.Will? {
        guard self.link == nil else { return nil }
        defer { self.will = nil }
        return self.will
    }

    /// The session ends (expiry, clean start, revocation): a will still waiting goes now.
    mutating func ended() -> MQTTConnectPacket.Will? {
        defer {
            self.will = nil
            self.link = nil
        }
        return self.link == nil ? self.will : nil
    }

    /// Forgets the will: an administrative disconnect sends none.
    mutating func discardWill() { self.will = nil }

    // MARK: Messages to the client

    /// A message for the client, at the QoS and with the retain flag its subscription grants.
    mutating func deliver(
        _ message: MQTTBrokerMessage, qos: MQTTQoS, retain: Bool, subscriptionIdentifiers: [Int], now: NIODeadline
    ) -> Delivery {
        guard let link = self.link else {
            // Offline: QoS 1 and 2 wait; QoS 0 is not kept [MQTT-3.1.2-5 allows either].
            guard qos != .atMostOnce else { return .discarded }
            self.lastSequence += 1
            return self.enqueue(
                Outgoing(message: message, qos: qos, retain: retain, subscriptionIdentifiers: subscriptionIdentifiers, sequence: self.lastSequence)
            )
        }
        if qos == .atMostOnce {
            let packet = message.publishPacket(
                qos: .atMostOnce, retain: retain, packetIdentifier: nil, subscriptionIdentifiers: subscriptionIdentifiers, now: now
            )
            return Self.fits(packet, link) ? .send(packet) : .discarded
        }
        self.lastSequence += 1
        let outgoing = Outgoing(
            message: message, qos: qos, retain: retain, subscriptionIdentifiers: subscriptionIdentifiers, sequence: self.lastSequence
        )
        // Behind a queue, a new message waits its turn: nothing overtakes what is queued.
        if self.queue.isEmpty && self.inflight.count < link.window {
            guard let packet = self.send(outgoing, link, now: now) else { return .discarded }
            return .send(packet)
        }
        let queued = self.enqueue(outgoing)
        guard queued == .queued(slowPublisher: false) else { return queued }
        return .queued(slowPublisher: self.queue.count >= self.limits.maximumQueued / 2)
    }

    private mutating func enqueue(_ outgoing: Outgoing) -> Delivery {
        let factor = self.link == nil ? 1 : 10
        let bytes = outgoing.message.payload.readableBytes
        guard self.queue.count < self.limits.maximumQueued * factor,
            self.queuedBytes + bytes <= self.limits.maximumQueuedBytes * factor
        else { return .queueFull }
        var outgoing = outgoing
        outgoing.message = outgoing.message.compacted()
        self.queue.append(outgoing)
        self.queuedBytes += bytes
        self.record(.added(outgoing))
        return .queued(slowPublisher: false)
    }

    /// Gives the message a packet identifier and puts it in flight (the store hears of it
    /// with its identifier); nil when it is larger than the client accepts, and so never sent.
    private mutating func send(_ outgoing: Outgoing, _ link: Link, now: NIODeadline) -> MQTTPublishPacket? {
        let identifier = self.nextPacketIdentifier()
        let packet = outgoing.message.publishPacket(
            qos: outgoing.qos, retain: outgoing.retain, packetIdentifier: identifier,
            subscriptionIdentifiers: outgoing.subscriptionIdentifiers, now: now
        )
        guard Self.fits(packet, link) else { return nil }
        var sent = outgoing
        sent.packetIdentifier = identifier
        self.inflight[identifier] = sent
        self.inflightOrder.append(identifier)
        self.record(.added(sent))
        return packet
    }

    private static func fits(_ packet: MQTTPublishPacket, _ link: Link) -> Bool {
        guard link.maximumPacketSize != .max else { return true }
        return MQTTPacket.publish(packet).encodedSize(version: link.version) <= link.maximumPacketSize
    }

    /// Moves queued messages into the window while there is room; expired ones are dropped.
    private mutating func drain(now: NIODeadline) -> [MQTTPublishPacket] {
        guard let link = self.link else { return [] }
        var packets: [MQTTPublishPacket] = []
        while self.inflight.count < link.window, let next = self.queue.popFirst() {
            self.queuedBytes -= next.message.payload.readableBytes
            guard !next.message.isExpired(at: now), let packet = self.send(next, link, now: now) else {
                self.record(.removed(next.sequence))
                continue
            }
            packets.append(packet)
        }
        return packets
    }

    private mutating func nextPacketIdentifier() -> UInt16 {
        repeat {
            self.lastPacketIdentifier = self.lastPacketIdentifier == .max ? 1 : self.lastPacketIdentifier + 1
        } while self.inflight[self.lastPacketIdentifier] != nil
        return self.lastPacketIdentifier
    }

    private mutating func removeInflight(_ identifier: UInt16) -> Outgoing? {
        guard let removed = self.inflight.removeValue(forKey: identifier) else { return nil }
        if let index = self.inflightOrder.firstIndex(of: identifier) { self.inflightOrder.remove(at: index) }
        if let index = self.awaitingResend.firstIndex(of: identifier) { self.awaitingResend.remove(at: index) }
        self.record(.removed(removed.sequence))
        return removed
    }

    private mutating func freed(_ removed: Outgoing?, now: NIODeadline) -> Acknowledged {
        var send: [MQTTPublishPacket] = []
        if let link = self.link {
            // What waited to be sent again goes first, as the window allows.
            while self.inflight.count - self.awaitingResend.count < link.window, let identifier = self.awaitingResend.popFirst() {
                if let outgoing = self.inflight[identifier], let packet = self.resend(identifier, outgoing, link, now: now) {
                    send.append(packet)
                }
            }
        }
        send += self.drain(now: now)
        return Acknowledged(
            delivered: removed?.message.deliveryID, send: send,
            releasePublishers: self.queue.count < self.limits.maximumQueued / 4
        )
    }

    /// PUBACK: a QoS 1 message is delivered.
    mutating func pubackReceived(_ identifier: UInt16, now: NIODeadline) -> Acknowledged {
        guard self.inflight[identifier]?.qos == .atLeastOnce else { return Acknowledged() }
        return self.freed(self.removeInflight(identifier), now: now)
    }

    /// PUBREC: the client has a QoS 2 message; PUBREL follows. A refusal (reason ≥ 0x80) ends
    /// the exchange [MQTT-4.3.3].
    mutating func pubrecReceived(_ identifier: UInt16, reasonCode: MQTTReasonCode, now: NIODeadline) -> Acknowledged {
        guard self.inflight[identifier]?.qos == .exactlyOnce else {
            return Acknowledged(reply: .pubrel(MQTTAckPacket(packetIdentifier: identifier, reasonCode: .packetIdentifierNotFound)))
        }
        if reasonCode.isFailure {
            _ = self.removeInflight(identifier)
            return self.freed(nil, now: now)
        }
        self.inflight[identifier]?.released = true
        if let released = self.inflight[identifier] { self.record(.added(released)) }
        return Acknowledged(reply: .pubrel(MQTTAckPacket(packetIdentifier: identifier)))
    }

    /// PUBCOMP: a QoS 2 message is delivered.
    mutating func pubcompReceived(_ identifier: UInt16, now: NIODeadline) -> Acknowledged {
        guard self.inflight[identifier]?.released == true else { return Acknowledged() }
        return self.freed(self.removeInflight(identifier), now: now)
    }

    // MARK: QoS 2 messages from the client

    /// A QoS 2 PUBLISH from the client, first time or again.
    mutating func qos2PublishReceived(_ identifier: UInt16) -> IncomingQoS2 {
        guard let incoming = self.incomingQoS2[identifier] else {
            self.incomingQoS2[identifier] = Incoming()
            return .new
        }
        return incoming.stored ? .routedAndStored : .routedNotStored(ticket: incoming.ticket)
    }

    /// The QoS 2 message with this identifier was routed; persistent sessions took it under
    /// the journal's `ticket`.
    mutating func qos2Routed(_ identifier: UInt16, ticket: Int?) {
        self.incomingQoS2[identifier]?.ticket = ticket
    }

    /// The hub stored the QoS 2 message with this identifier.
    mutating func qos2Stored(_ identifier: UInt16) {
        self.incomingQoS2[identifier]?.stored = true
    }

    /// PUBREL from the client (or a refusal that ends the exchange): false when the identifier
    /// was unknown.
    mutating func qos2Released(_ identifier: UInt16) -> Bool {
        self.incomingQoS2.removeValue(forKey: identifier) != nil
    }
}
