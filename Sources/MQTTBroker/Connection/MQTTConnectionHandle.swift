import MQTT
import NIOConcurrencyHelpers
import NIOCore

/// Packets for one connection from other threads, written in one go on its event loop: under
/// load many messages share one hop and one flush instead of taking one each.
final class MQTTOutboundMailbox: @unchecked Sendable {
    private let lock = NIOLock()
    private var pending: [MQTTPacket] = []
    private var scheduled = false
    private let eventLoop: any EventLoop
    private let deliver: @Sendable ([MQTTPacket]) -> Void

    init(eventLoop: any EventLoop, deliver: @escaping @Sendable ([MQTTPacket]) -> Void) {
        self.eventLoop = eventLoop
        self.deliver = deliver
    }

    /// Adds packets; true when the caller must ``schedule()`` the hop (it may do so after
    /// letting go of its own lock, so that no lock is held across waking another thread).
    func enqueue(_ packets: [MQTTPacket]) -> Bool {
        self.lock.withLock {
            self.pending.append(contentsOf: packets)
            defer { self.scheduled = true }
            return !self.scheduled
        }
    }

    func schedule() {
        self.eventLoop.execute { self.deliverPending() }
    }

    /// Writes what waits now, when the caller is on the connection's loop and nothing it
    /// writes next must come first; else hops as ``schedule()`` does.
    func deliverIfOnLoop() {
        if self.eventLoop.inEventLoop { self.deliverPending() } else { self.schedule() }
    }

    private func deliverPending() {
        let batch = self.lock.withLock {
            self.scheduled = false
            defer { self.pending.removeAll(keepingCapacity: true) }
            return self.pending
        }
        if !batch.isEmpty { self.deliver(batch) }
    }

    /// Takes what waits, with `packets` after it, for the connection's own loop to write now
    /// instead of after a hop; a hop already on its way then finds nothing.
    func take(appending packets: [MQTTPacket]) -> [MQTTPacket] {
        self.lock.withLock {
            defer { self.pending.removeAll(keepingCapacity: true) }
            return self.pending + packets
        }
    }
}

/// What the broker keeps of a live connection: where to send packets and how to close it.
/// Safe to use from any thread: each call hops to the connection's event loop. A class: the
/// handler and the session hold one, not a copy each.
final class MQTTConnectionHandle: Sendable {
    let identifier: ObjectIdentifier
    let version: MQTTProtocolVersion
    /// How many QoS 1 and 2 messages may be in flight to this client.
    let receiveMaximum: Int
    /// The largest packet the client accepts.
    let maximumPacketSize: Int
    /// Where packets for the client wait for its event loop.
    let mailbox: MQTTOutboundMailbox
    private let closeConnection: @Sendable (MQTTReasonCode?) -> Void
    private let setReading: @Sendable (Bool) -> Void

    init(
        identifier: ObjectIdentifier, version: MQTTProtocolVersion, receiveMaximum: Int, maximumPacketSize: Int,
        mailbox: MQTTOutboundMailbox, close: @escaping @Sendable (MQTTReasonCode?) -> Void,
        setReading: @escaping @Sendable (Bool) -> Void
    ) {
        self.setReading = setReading
        self.identifier = identifier
        self.version = version
        self.receiveMaximum = receiveMaximum
        self.maximumPacketSize = maximumPacketSize
        self.mailbox = mailbox
        self.closeConnection = close
    }

    /// Stops reading from this client until ``resumeReading()``: TCP then slows its publishing.
    func pauseReading() { self.setReading(false) }

    func resumeReading() { self.setReading(true) }

    /// Closes the connection, after a DISCONNECT with `reason` on 5.0.
    func close(reason: MQTTReasonCode?) {
        self.closeConnection(reason)
    }
}
