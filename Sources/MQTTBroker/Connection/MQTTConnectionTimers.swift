import NIOConcurrencyHelpers
import NIOCore

/// The deadlines of the connections on one event loop (the CONNECT deadline, then the
/// keep-alive check), checked by one repeating task each second instead of a scheduled task per
/// connection. A scheduled task, its promise and its place in the loop's heap cost every idle
/// connection about a third of a kilobyte; an entry here costs a few dozen bytes. A deadline is
/// met within a second of its time, which MQTT's keep-alive (whole seconds, 1.5 times over)
/// allows.
///
/// Used on its event loop only; the broker keeps one per loop.
final class MQTTConnectionTimers: @unchecked Sendable {
    static let resolution = TimeAmount.seconds(1)

    let eventLoop: any EventLoop
    private var deadlines: [ObjectIdentifier: (deadline: NIODeadline, handler: MQTTConnectionHandler)] = [:]
    private var ticking: RepeatedTask?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Calls the handler's ``MQTTConnectionHandler/deadlinePassed(now:)`` once `deadline` has
    /// passed, in place of any deadline it had.
    func set(_ deadline: NIODeadline, for handler: MQTTConnectionHandler) {
        self.eventLoop.assertInEventLoop()
        self.deadlines[ObjectIdentifier(handler)] = (deadline, handler)
        if self.ticking == nil {
            self.ticking = self.eventLoop.scheduleRepeatedTask(initialDelay: Self.resolution, delay: Self.resolution) { [weak self] _ in
                self?.tick()
            }
        }
    }

    func remove(_ handler: MQTTConnectionHandler) {
        self.eventLoop.assertInEventLoop()
        self.deadlines.removeValue(forKey: ObjectIdentifier(handler))
    }

    private func tick() {
        let now = self.eventLoop.now
        var due: [MQTTConnectionHandler] = []
        for entry in self.deadlines.values where entry.deadline <= now { due.append(entry.handler) }
        for handler in due {
            // Gone meanwhile, or given another deadline, by a handler that ran before it.
            guard let entry = self.deadlines[ObjectIdentifier(handler)], entry.deadline <= now else { continue }
            self.deadlines.removeValue(forKey: ObjectIdentifier(handler))
            handler.deadlinePassed(now: now)
        }
    }

    /// Stops the repeating task (the broker is shutting down).
    func stop() {
        self.ticking?.cancel()
        self.ticking = nil
        self.deadlines = [:]
    }
}
