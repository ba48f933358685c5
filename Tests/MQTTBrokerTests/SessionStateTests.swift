import MQTT
import NIOCore
import Testing

@testable import MQTTBroker

/// A session's rules, called directly: no socket, no clock, no broker.
@Suite("Session state machine")
struct SessionStateTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)

    static func session(maximumQueued: Int = 100) -> MQTTSessionState {
        MQTTSessionState(clientIdentifier: "c1", principal: "c1", limits: .init(maximumInflight: 20, maximumQueued: maximumQueued))
    }

    static func link(_ version: MQTTProtocolVersion, window: Int = 20, maximumPacketSize: Int = .max) -> MQTTSessionState.Link {
        .init(version: version, window: window, maximumPacketSize: maximumPacketSize)
    }

    static func message(_ text: String, qos: MQTTQoS = .atLeastOnce, deliveryID: Int? = nil, expiresAt: NIODeadline? = nil) -> MQTTBrokerMessage {
        MQTTBrokerMessage(topic: "t/\(text)", payload: ByteBuffer(string: text), qos: qos, expiresAt: expiresAt, deliveryID: deliveryID)
    }

    static func will(delay: UInt32 = 0) -> MQTTConnectPacket.Will {
        .init(topic: "status/c1", payload: ByteBuffer(string: "gone"), qos: .atLeastOnce, properties: delay > 0 ? [.willDelayInterval(delay)] : .none)
    }

    /// The PUBLISH the client should get, as the session builds it.
    static func publish(_ text: String, qos: MQTTQoS = .atLeastOnce, id: UInt16?, duplicate: Bool = false) -> MQTTPublishPacket {
        MQTTPublishPacket(topic: "t/\(text)", payload: ByteBuffer(string: text), qos: qos, duplicate: duplicate, packetIdentifier: id)
    }

    static func deliver(_ state: inout MQTTSessionState, _ text: String, qos: MQTTQoS = .atLeastOnce, deliveryID: Int? = nil) -> MQTTSessionState.Delivery {
        state.deliver(Self.message(text, qos: qos, deliveryID: deliveryID), qos: qos, retain: false, subscriptionIdentifiers: [], now: Self.t0)
    }

    @Test("QoS 1 out: PUBLISH with the next identifier, PUBACK delivers it and names its delivery id", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func qos1Out(version: MQTTProtocolVersion) {
        var state = Self.session()
        #expect(state.connected(Self.link(version), will: nil, expiryInterval: 0, now: Self.t0) == [])
        #expect(Self.deliver(&state, "a", deliveryID: 7) == .send(Self.publish("a", id: 1)))
        #expect(Self.deliver(&state, "b") == .send(Self.publish("b", id: 2)))
        #expect(state.pubackReceived(1, now: Self.t0) == .init(delivered: 7, releasePublishers: true))
        // A PUBACK for an identifier not in flight, or a PUBCOMP for a QoS 1 message, changes nothing.
        #expect(state.pubackReceived(1, now: Self.t0) == .init())
        #expect(state.pubcompReceived(2, now: Self.t0) == .init())
        #expect(state.inflight.keys.sorted() == [2])
    }

    @Test("QoS 2 out: PUBREC gets PUBREL, PUBCOMP delivers; an unknown PUBREC gets PUBREL 0x92; a refusing PUBREC ends it", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func qos2Out(version: MQTTProtocolVersion) {
        var state = Self.session()
        _ = state.connected(Self.link(version), will: nil, expiryInterval: 0, now: Self.t0)
        #expect(Self.deliver(&state, "a", qos: .exactlyOnce, deliveryID: 3) == .send(Self.publish("a", qos: .exactlyOnce, id: 1)))
        // PUBCOMP before PUBREC is out of order: ignored.
        #expect(state.pubcompReceived(1, now: Self.t0) == .init())
        #expect(state.pubrecReceived(1, reasonCode: .success, now: Self.t0) == .init(reply: .pubrel(MQTTAckPacket(packetIdentifier: 1))))
        #expect(state.pubcompReceived(1, now: Self.t0) == .init(delivered: 3, releasePublishers: true))
        #expect(
            state.pubrecReceived(9, reasonCode: .success, now: Self.t0)
                == .init(reply: .pubrel(MQTTAckPacket(packetIdentifier: 9, reasonCode: .packetIdentifierNotFound)))
        )
        #expect(Self.deliver(&state, "b", qos: .exactlyOnce) == .send(Self.publish("b", qos: .exactlyOnce, id: 2)))
        #expect(state.pubrecReceived(2, reasonCode: .quotaExceeded, now: Self.t0) == .init(releasePublishers: true))
        #expect(state.inflight.isEmpty)
    }

    @Test("a full window queues; each acknowledgement lets the next one out, in order", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func window(version: MQTTProtocolVersion) {
        var state = Self.session()
        _ = state.connected(Self.link(version, window: 2), will: nil, expiryInterval: 0, now: Self.t0)
        #expect(Self.deliver(&state, "a") == .send(Self.publish("a", id: 1)))
        #expect(Self.deliver(&state, "b") == .send(Self.publish("b", id: 2)))
        #expect(Self.deliver(&state, "c") == .queued(slowPublisher: false))
        #expect(Self.deliver(&state, "d") == .queued(slowPublisher: false))
        // QoS 0 is never held back by the window.
        #expect(Self.deliver(&state, "z", qos: .atMostOnce) == .send(Self.publish("z", qos: .atMostOnce, id: nil)))
        #expect(state.pubackReceived(2, now: Self.t0).send == [Self.publish("c", id: 3)])
        #expect(state.pubackReceived(1, now: Self.t0).send == [Self.publish("d", id: 4)])
    }

    @Test("a connected client's long queue asks to hold its publishers back; an offline one's queue is capped")
    func flowControl() {
        var state = Self.session(maximumQueued: 4)
        _ = state.connected(Self.link(.v5, window: 1), will: nil, expiryInterval: 60, now: Self.t0)
        #expect(Self.deliver(&state, "a") == .send(Self.publish("a", id: 1)))
        #expect(Self.deliver(&state, "b") == .queued(slowPublisher: false))
        #expect(Self.deliver(&state, "c") == .queued(slowPublisher: true))
        #expect(state.disconnected(publishWill: false) == .init(will: .none, keepFor: 60))
        #expect(Self.deliver(&state, "d") == .queued(slowPublisher: false))
        #expect(Self.deliver(&state, "e") == .queued(slowPublisher: false))
        #expect(Self.deliver(&state, "f") == .queueFull)
        // QoS 0 is not kept for an offline client.
        #expect(Self.deliver(&state, "g", qos: .atMostOnce) == .discarded)
    }

    @Test("redelivery after reconnecting: unacknowledged PUBLISHes again with DUP and PUBREL for received ones, in order, then the queue; newer messages wait behind", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func redeliveryNotOvertaken(version: MQTTProtocolVersion) {
        var state = Self.session()
        _ = state.connected(Self.link(version, window: 3), will: nil, expiryInterval: 300, now: Self.t0)
        _ = Self.deliver(&state, "a")
        _ = Self.deliver(&state, "b", qos: .exactlyOnce)
        _ = Self.deliver(&state, "c")
        _ = state.pubrecReceived(2, reasonCode: .success, now: Self.t0)
        _ = state.disconnected(publishWill: true)
        // Offline, more arrive: they queue.
        #expect(Self.deliver(&state, "d") == .queued(slowPublisher: false))
        #expect(Self.deliver(&state, "e") == .queued(slowPublisher: false))
        let owed = state.connected(Self.link(version, window: 4), will: nil, expiryInterval: 300, now: Self.t0)
        #expect(
            owed == [
                .publish(Self.publish("a", id: 1, duplicate: true)), .pubrel(MQTTAckPacket(packetIdentifier: 2)),
                .publish(Self.publish("c", id: 3, duplicate: true)), .publish(Self.publish("d", id: 4)),
            ]
        )
        // A new message does not overtake "e", still queued.
        #expect(Self.deliver(&state, "f") == .queued(slowPublisher: false))
        #expect(state.pubackReceived(1, now: Self.t0).send == [Self.publish("e", id: 5)])
        #expect(state.pubackReceived(3, now: Self.t0).send == [Self.publish("f", id: 6)])
    }

    @Test("a queued message whose expiry passed is not sent; one larger than the client accepts is not either")
    func expiredAndTooLarge() {
        var state = Self.session()
        _ = state.disconnected(publishWill: false)
        _ = state.deliver(Self.message("old", expiresAt: Self.t0 + .seconds(5)), qos: .atLeastOnce, retain: false, subscriptionIdentifiers: [], now: Self.t0)
        _ = Self.deliver(&state, "new")
        let owed = state.connected(Self.link(.v5), will: nil, expiryInterval: 0, now: Self.t0 + .seconds(10))
        #expect(owed == [.publish(Self.publish("new", id: 1))])
        var small = Self.session()
        _ = small.connected(Self.link(.v5, maximumPacketSize: 20), will: nil, expiryInterval: 0, now: Self.t0)
        #expect(small.deliver(Self.message(String(repeating: "x", count: 40)), qos: .atLeastOnce, retain: false, subscriptionIdentifiers: [], now: Self.t0) == .discarded)
        #expect(small.inflight.isEmpty)
    }

    @Test("a QoS 2 message from the client: new, then (storing failed) stored but not routed again, then only acknowledged; PUBREL frees the id")
    func qos2ResendAfterFailedStore() {
        var state = Self.session()
        _ = state.connected(Self.link(.v5), will: nil, expiryInterval: 0, now: Self.t0)
        #expect(state.qos2PublishReceived(7) == .new)
        state.qos2Routed(7, ticket: 42)
        // The hub's store failed: the connection closed unacknowledged; the client sends it again.
        _ = state.disconnected(publishWill: true)
        _ = state.connected(Self.link(.v5), will: nil, expiryInterval: 0, now: Self.t0)
        // Not routed again; its acknowledgement waits again for the sessions that took it.
        #expect(state.qos2PublishReceived(7) == .routedNotStored(ticket: 42))
        state.qos2Stored(7)
        #expect(state.qos2PublishReceived(7) == .routedAndStored)
        let released = state.qos2Released(7)
        let releasedAgain = state.qos2Released(7)
        #expect(released && !releasedAgain)
        #expect(state.qos2PublishReceived(7) == .new)
    }

    @Test("takeover mid-flight: the old connection's will goes now, what it had in flight goes to the new one with DUP", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func takeoverMidFlight(version: MQTTProtocolVersion) {
        var state = Self.session()
        _ = state.connected(Self.link(version), will: Self.will(), expiryInterval: .max, now: Self.t0)
        _ = Self.deliver(&state, "a")
        #expect(state.replaced(cleanStart: false) == Self.will())
        #expect(state.connected(Self.link(version), will: nil, expiryInterval: .max, now: Self.t0) == [.publish(Self.publish("a", id: 1, duplicate: true))])
        // A will with a delay is not sent on takeover: the new connection is the end of the wait.
        _ = state.connected(Self.link(version), will: Self.will(delay: 30), expiryInterval: .max, now: Self.t0)
        #expect(state.replaced(cleanStart: false) == nil)
    }

    @Test("a will under will delay: it waits, it is dropped when the client is back in time, and a clean start (the session's end) sends it at once")
    func willDelay() {
        var state = Self.session()
        _ = state.connected(Self.link(.v5), will: Self.will(delay: 30), expiryInterval: 60, now: Self.t0)
        #expect(state.disconnected(publishWill: true) == .init(will: .after(seconds: 30), keepFor: 60))
        // Back in time, same session: no will, and none when the delay runs out later.
        #expect(state.replaced(cleanStart: false) == nil)
        _ = state.connected(Self.link(.v5), will: Self.will(delay: 30), expiryInterval: 60, now: Self.t0)
        #expect(state.willDelayElapsed() == nil)

        #expect(state.disconnected(publishWill: true) == .init(will: .after(seconds: 30), keepFor: 60))
        #expect(state.replaced(cleanStart: true) == Self.will(delay: 30))

        // The delay is cut to the session's life; a session that ends at once sends it at once.
        var short = Self.session()
        _ = short.connected(Self.link(.v5), will: Self.will(delay: 30), expiryInterval: 10, now: Self.t0)
        #expect(short.disconnected(publishWill: true) == .init(will: .after(seconds: 10), keepFor: 10))
        #expect(short.willDelayElapsed() == Self.will(delay: 30))
        #expect(short.ended() == nil)
        var none = Self.session()
        _ = none.connected(Self.link(.v5), will: Self.will(delay: 30), expiryInterval: 0, now: Self.t0)
        #expect(none.disconnected(publishWill: true) == .init(will: .now(Self.will(delay: 30)), keepFor: 0))
        // Expiry ends a session whose will still waits: it goes then.
        var expiring = Self.session()
        _ = expiring.connected(Self.link(.v5), will: Self.will(delay: 300), expiryInterval: 60, now: Self.t0)
        _ = expiring.disconnected(publishWill: true)
        #expect(expiring.ended() == Self.will(delay: 300))
    }

    @Test("a normal DISCONNECT discards the will; 3.1.1 sends it at once after a lost connection", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func willOnDisconnect(version: MQTTProtocolVersion) {
        var state = Self.session()
        _ = state.connected(Self.link(version), will: Self.will(), expiryInterval: 0, now: Self.t0)
        #expect(state.disconnected(publishWill: false) == .init(will: .none, keepFor: 0))
        _ = state.connected(Self.link(version), will: Self.will(), expiryInterval: .max, now: Self.t0)
        #expect(state.disconnected(publishWill: true) == .init(will: .now(Self.will()), keepFor: .max))
        #expect(state.ended() == nil)
    }
}

@Suite("Session state machine: what the store hears")
struct SessionJournalTests {
    static func session() -> MQTTSessionState {
        MQTTSessionState(clientIdentifier: "c1", principal: "c1", limits: .init(maximumInflight: 20, maximumQueued: 100, journaled: true))
    }

    @Test("a persistent session journals each QoS 1/2 message it takes and each it lets go; a clean session, or a broker without a store, journals nothing")
    func journal() {
        var state = Self.session()
        _ = state.connected(SessionStateTests.link(.v5, window: 1), will: nil, expiryInterval: 3600, now: SessionStateTests.t0)
        _ = SessionStateTests.deliver(&state, "a")
        _ = SessionStateTests.deliver(&state, "b")
        _ = SessionStateTests.deliver(&state, "z", qos: .atMostOnce)
        #expect(state.takeJournal().map(Self.describe) == ["+1 t/a #1", "+2 t/b"])
        _ = state.pubackReceived(1, now: SessionStateTests.t0)
        // b leaves the queue for the window: the store learns its packet identifier.
        #expect(state.takeJournal().map(Self.describe) == ["-1", "+2 t/b #2"])
        #expect(state.takeJournal().isEmpty)

        var clean = Self.session()
        _ = clean.connected(SessionStateTests.link(.v5), will: nil, expiryInterval: 0, now: SessionStateTests.t0)
        _ = SessionStateTests.deliver(&clean, "a")
        #expect(clean.takeJournal().isEmpty)
        var storeless = SessionStateTests.session()
        _ = storeless.connected(SessionStateTests.link(.v5), will: nil, expiryInterval: 3600, now: SessionStateTests.t0)
        _ = SessionStateTests.deliver(&storeless, "a")
        #expect(storeless.takeJournal().isEmpty)
    }

    @Test("a session restored from the store resumes with its queue in order and numbers new messages after it")
    func restored() {
        let kept = [2, 1].map { sequence in
            MQTTSessionState.Outgoing(message: SessionStateTests.message("k\(sequence)"), qos: .atLeastOnce, retain: false, subscriptionIdentifiers: [], sequence: UInt64(sequence))
        }
        var state = MQTTSessionState(restoring: "c1", principal: "c1", expiryInterval: 60, subscriptions: [], messages: kept, limits: .init(maximumInflight: 20, maximumQueued: 100, journaled: true))
        #expect(!state.isConnected)
        let owed = state.connected(SessionStateTests.link(.v3_1_1), will: nil, expiryInterval: 60, now: SessionStateTests.t0)
        #expect(owed == [.publish(SessionStateTests.publish("k1", id: 1)), .publish(SessionStateTests.publish("k2", id: 2))])
        _ = SessionStateTests.deliver(&state, "new")
        #expect(state.takeJournal().map(Self.describe) == ["+1 t/k1 #1", "+2 t/k2 #2", "+3 t/new #3"])
    }

    @Test("after a restart, what had been sent goes again with its own packet identifier (PUBREL for a received QoS 2), and no new message takes one of those identifiers")
    func restoredInFlight() {
        func kept(_ text: String, _ sequence: UInt64, qos: MQTTQoS, id: UInt16?, released: Bool = false) -> MQTTSessionState.Outgoing {
            .init(
                message: SessionStateTests.message(text, qos: qos), qos: qos, retain: false, subscriptionIdentifiers: [], released: released,
                sequence: sequence, packetIdentifier: id
            )
        }
        var state = MQTTSessionState(
            restoring: "c1", principal: "c1", expiryInterval: 60, subscriptions: [],
            messages: [kept("q", 3, qos: .atLeastOnce, id: nil), kept("r", 2, qos: .exactlyOnce, id: 7, released: true), kept("s", 1, qos: .atLeastOnce, id: 9)],
            limits: .init(maximumInflight: 20, maximumQueued: 100, journaled: true)
        )
        let owed = state.connected(SessionStateTests.link(.v5), will: nil, expiryInterval: 60, now: SessionStateTests.t0)
        #expect(
            owed == [
                .publish(SessionStateTests.publish("s", id: 9, duplicate: true)), .pubrel(MQTTAckPacket(packetIdentifier: 7)),
                .publish(SessionStateTests.publish("q", id: 8)),
            ]
        )
        // 9 is still in flight: the next message skips it.
        #expect(SessionStateTests.deliver(&state, "t") == .send(SessionStateTests.publish("t", id: 10)))
        #expect(state.pubcompReceived(7, now: SessionStateTests.t0) == .init(releasePublishers: true))
    }

    @Test("a resumed session resends no more than the new connection's window; the rest follow as acknowledgements come, before anything queued", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func redeliveryWithinWindow(version: MQTTProtocolVersion) {
        var state = SessionStateTests.session()
        _ = state.connected(SessionStateTests.link(version, window: 3), will: nil, expiryInterval: 60, now: SessionStateTests.t0)
        for text in ["a", "b", "c", "d"] { _ = SessionStateTests.deliver(&state, text) }
        _ = state.disconnected(publishWill: false)
        // The client comes back with a Receive Maximum of 1.
        let owed = state.connected(SessionStateTests.link(version, window: 1), will: nil, expiryInterval: 60, now: SessionStateTests.t0)
        #expect(owed == [.publish(SessionStateTests.publish("a", id: 1, duplicate: true))])
        #expect(state.pubackReceived(1, now: SessionStateTests.t0).send == [SessionStateTests.publish("b", id: 2, duplicate: true)])
        #expect(state.pubackReceived(2, now: SessionStateTests.t0).send == [SessionStateTests.publish("c", id: 3, duplicate: true)])
        #expect(state.pubackReceived(3, now: SessionStateTests.t0).send == [SessionStateTests.publish("d", id: 4)])
    }

    @Test("a queued message keeps its own few bytes, not the 64 KiB read it was sliced from")
    func queuedPayloadIsCompact() {
        var read = ByteBuffer(repeating: 0x41, count: 65_536)
        let slice = read.readSlice(length: 10)!
        var state = SessionStateTests.session()
        _ = state.disconnected(publishWill: false)
        let message = MQTTBrokerMessage(topic: "t/x", payload: slice, qos: .atLeastOnce)
        #expect(state.deliver(message, qos: .atLeastOnce, retain: false, subscriptionIdentifiers: [], now: SessionStateTests.t0) == .queued(slowPublisher: false))
        #expect(state.queue.first?.message.payload == slice)
        #expect((state.queue.first?.message.payload.storageCapacity ?? .max) < 1_024)
    }

    @Test("an offline session's queue is bounded in bytes as well as in messages")
    func bytesBound() {
        var state = MQTTSessionState(clientIdentifier: "c1", principal: "c1", limits: .init(maximumInflight: 20, maximumQueued: 100, maximumQueuedBytes: 10))
        _ = state.disconnected(publishWill: false)
        #expect(SessionStateTests.deliver(&state, "12345") == .queued(slowPublisher: false))
        #expect(SessionStateTests.deliver(&state, "67890") == .queued(slowPublisher: false))
        #expect(SessionStateTests.deliver(&state, "x") == .queueFull)
        #expect(state.queuedBytes == 10)
    }

    static func describe(_ entry: MQTTSessionState.JournalEntry) -> String {
        switch entry {
        case .added(let outgoing):
            "+\(outgoing.sequence) \(outgoing.message.topic)" + (outgoing.packetIdentifier.map { " #\($0)" } ?? "")
                + (outgoing.released ? " released" : "")
        case .removed(let sequence): "-\(sequence)"
        }
    }
}
