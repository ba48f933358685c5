import MQTT
import NIOCore
import Synchronization

/// What the broker keeps of a live connection: where to send packets and how to close it.
/// Safe to use from any thread: each call hops to the connection's event loop. A class: the
/// handler and the session hold one, not a copy each.
///
/// It is also the connection's mailbox: packets for it from other threads wait here and are
/// written in one go on its event loop, so that under load many messages share one hop and one
/// flush instead of taking one each. One object with the handler held weakly, rather than a
/// mailbox, a lock object, a weak box and three closures: every idle connection has one.
final class MQTTConnectionHandle: Sendable {
    let identifier: ObjectIdentifier
    let version: MQTTProtocolVersion
    /// How many QoS 1 and 2 messages may be in flight to this client.
    let receiveMaximum: Int
    /// The largest packet the client accepts.
    let maximumPacketSize: Int
    let eventLoop: any EventLoop
    /// Weak, so that a session outliving its connection does not keep the connection alive.
    /// Read and written on `eventLoop` only.
    nonisolated(unsafe) private weak var handler: MQTTConnectionHandler?
    private let mailbox = Mutex(Mailbox())

    private struct Mailbox: ~Copyable {
        var pending: [MQTTPacket] = []
        var scheduled = false
    }

    init(
        identifier: ObjectIdentifier, version: MQTTProtocolVersion, receiveMaximum: Int, maximumPacketSize: Int, eventLoop: any EventLoop,
        handler: MQTTConnectionHandler
    ) {
        self.identifier = identifier
        self.version = version
        self.receiveMaximum = receiveMaximum
        self.maximumPacketSize = maximumPacketSize
        self.eventLoop = eventLoop
        self.handler = handler
    }

    /// Stops reading from this client until ``resumeReading()``: TCP then slows its publishing.
    func pauseReading() { self.onLoop { $0.setReading(false) } }

    func resumeReading() { self.onLoop { $0.setReading(true) } }

    /// Closes the connection, after a DISCONNECT with `reason` on 5.0.
    func close(reason: MQTTReasonCode?) {
        self.onLoop { $0.closeRequested(reason) }
    }

    private func onLoop(_ body: @escaping (MQTTConnectionHandler) -> Void) {
        let handle = UncheckedHandle(self, body)
        self.eventLoop.execute { handle.run() }
    }

    /// The handle and what to do with its handler, carried to the event loop.
    private struct UncheckedHandle: @unchecked Sendable {
        let handle: MQTTConnectionHandle
        let body: (MQTTConnectionHandler) -> Void
        init(_ handle: MQTTConnectionHandle, _ body: @escaping (MQTTConnectionHandler) -> Void) {
            self.handle = handle
            self.body = body
        }
        func run() {
            if let handler = self.handle.handler { self.body(handler) }
        }
    }

    // MARK: The mailbox

    /// Adds packets; true when the caller must ``schedule()`` the hop (it may do so after
    /// letting go of its own lock, so that no lock is held across waking another thread).
    func enqueue(_ packets: [MQTTPacket]) -> Bool {
        self.mailbox.withLock { mailbox in
            mailbox.pending.append(contentsOf: packets)
            defer { mailbox.scheduled = true }
            return !mailbox.scheduled
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
        let batch = self.mailbox.withLock { mailbox in
            mailbox.scheduled = false
            defer { mailbox.pending.removeAll(keepingCapacity: true) }
            return mailbox.pending
        }
        guard !batch.isEmpty, let handler = self.handler else { return }
        handler.write(batch)
        handler.flush()
    }

    /// Takes what waits, with `packets` after it, for the connection's own loop to write now
    /// instead of after a hop; a hop already on its way then finds nothing.
    func take(appending packets: [MQTTPacket]) -> [MQTTPacket] {
        self.mailbox.withLock { mailbox in
            defer { mailbox.pending.removeAll(keepingCapacity: true) }
            return mailbox.pending + packets
        }
    }
}
