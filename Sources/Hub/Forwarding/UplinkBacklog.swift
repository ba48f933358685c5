import Metrics
import Store
import Synchronization

/// How many messages wait in each integration's outbox, kept in memory (counted from the store
/// once, then followed as messages are appended and published), against a bound: a full backlog
/// refuses new QoS 1 messages rather than accept them and drop them.
final class UplinkBacklog: Sendable {
    let limit: Int
    private let counts = Mutex<[String: Int]?>(nil)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts the outbox once, on first use.
    func load(from store: SQLStore) async throws {
        guard self.counts.withLock({ $0 == nil }) else { return }
        let counted = try await store.session.outbox.countByIntegration()
        self.counts.withLock { counts in
            if counts == nil { counts = counted }
        }
        for (integration, count) in counted { Self.gauge(integration).record(count) }
    }

    /// Whether the integration's backlog is full, counting `adding` messages not yet added.
    func isFull(_ integrationID: String, adding: Int = 0) -> Bool {
        self.counts.withLock { ($0?[integrationID] ?? 0) + adding >= self.limit }
    }

    func added(_ added: Int = 1, to integrationID: String) {
        let count = self.counts.withLock { counts -> Int in
            counts?[integrationID, default: 0] += added
            return counts?[integrationID] ?? 0
        }
        Self.gauge(integrationID).record(count)
    }

    /// Recounts from the store (rows other nodes forwarded, or a deleted integration's).
    func recount(from store: SQLStore) async throws {
        let counted = try await store.session.outbox.countByIntegration()
        let previous = self.counts.withLock { counts -> [String: Int] in
            defer { counts = counted }
            return counts ?? [:]
        }
        for integration in Set(previous.keys).union(counted.keys) { Self.gauge(integration).record(counted[integration] ?? 0) }
    }

    func removed(_ removed: Int, from integrationID: String) {
        let count = self.counts.withLock { counts -> Int in
            let remaining = max(0, (counts?[integrationID] ?? 0) - removed)
            counts?[integrationID] = remaining
            return remaining
        }
        Self.gauge(integrationID).record(count)
    }

    static func gauge(_ integrationID: String) -> Gauge {
        Gauge(label: "conduit_uplink_backlog_messages", dimensions: [("integration", integrationID)])
    }
}
