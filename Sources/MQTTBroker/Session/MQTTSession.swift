import Foundation
import MQTT
import NIOCore

/// A session as the broker holds it: its protocol state, and the live things that go with it
/// (the connection, its timers, the publishers it holds back). Accessed only under the broker's lock,
/// which is what makes it safe to hand to a timer's closure on another event loop: each takes the
/// lock before it reads the session.
final class MQTTSession: @unchecked Sendable {
    var state: MQTTSessionState
    var connection: MQTTConnectionHandle?
    var expiryTimer: Scheduled<Void>?
    var willTimer: Scheduled<Void>?
    /// Publishers paused because this session's queue is long; resumed when it drains.
    var waiters: [MQTTConnectionHandle] = []
    /// The session's row is in the store (a persistent session, with a store).
    var stored = false

    init(_ state: MQTTSessionState) {
        self.state = state
    }

    var clientIdentifier: String { self.state.clientIdentifier }

    /// The session's row for the store.
    func record(disconnectedAt: Date?) -> MQTTSessionRecord {
        MQTTSessionRecord(
            clientIdentifier: self.state.clientIdentifier, principal: self.state.principal, expiryInterval: self.state.expiryInterval,
            subscriptions: self.state.subscriptions.values.sorted { $0.filter < $1.filter }.map(MQTTSessionRecord.Subscription.init),
            disconnectedAt: disconnectedAt
        )
    }

    /// What the store has not heard of the session's messages yet, as changes.
    func takeJournal(now: NIODeadline, wallClock: Date) -> [MQTTSessionChange] {
        self.state.takeJournal().map { entry in
            switch entry {
            case .added(let outgoing):
                return .addMessage(clientIdentifier: self.clientIdentifier, .init(outgoing, now: now, wallClock: wallClock))
            case .removed(let sequence):
                return .removeMessage(clientIdentifier: self.clientIdentifier, sequence: sequence)
            }
        }
    }

    func cancelTimers() {
        self.expiryTimer?.cancel()
        self.expiryTimer = nil
        self.willTimer?.cancel()
        self.willTimer = nil
    }
}
