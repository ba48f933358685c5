import Synchronization

/// One device's queue in one integration's outbox.
struct UplinkQueueKey: Hashable, Sendable {
    var integrationID: String
    var deviceID: String
}

/// The device queues that have outbox rows the forwarder has not started on, as ingest commits
/// them, oldest first. The forwarder starts these without reading the outbox to find them; it
/// reads the outbox for the rest (rows from before a restart, from another node, of an
/// integration resumed) once a second.
final class UplinkQueueMarks: Sendable {
    private struct State {
        var order: [UplinkQueueKey] = []
        var marked: Set<UplinkQueueKey> = []
    }

    private let state = Mutex(State())

    func mark(_ keys: some Sequence<UplinkQueueKey>) {
        self.state.withLock { state in
            for key in keys where state.marked.insert(key).inserted {
                state.order.append(key)
            }
        }
    }

    /// The marked queues, oldest mark first.
    func snapshot() -> [UplinkQueueKey] {
        self.state.withLock { state in
            if state.order.count > state.marked.count {
                state.order.removeAll { !state.marked.contains($0) }
            }
            return state.order
        }
    }

    func unmark(_ keys: some Sequence<UplinkQueueKey>) {
        self.state.withLock { state in
            for key in keys { state.marked.remove(key) }
            if state.marked.isEmpty { state.order.removeAll(keepingCapacity: true) }
        }
    }
}
