import MQTT
import NIOCore

/// A session as the broker holds it: its protocol state, and the live things that go with it
/// (the connection, its timers, the publishers it holds back). Accessed only under the broker's lock.
final class MQTTSession {
    var state: MQTTSessionState
    var connection: MQTTConnectionHandle?
    var expiryTimer: Scheduled<Void>?
    var willTimer: Scheduled<Void>?
    /// Publishers paused because this session's queue is long; resumed when it drains.
    var waiters: [MQTTConnectionHandle] = []

    init(_ state: MQTTSessionState) {
        self.state = state
    }

    var clientIdentifier: String { self.state.clientIdentifier }

    func cancelTimers() {
        self.expiryTimer?.cancel()
        self.expiryTimer = nil
        self.willTimer?.cancel()
        self.willTimer = nil
    }
}
