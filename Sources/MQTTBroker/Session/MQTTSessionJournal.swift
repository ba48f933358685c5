import Backoff
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Carries persistent sessions' changes to the store in the order the broker made them, many
/// to a transaction. Each change appended gets a ticket; a publisher's acknowledgement waits
/// until its ticket is written, so that a message acknowledged is a message kept. A store that
/// fails is retried (with backoff) until it takes the changes: acknowledgements wait, nothing
/// is dropped.
final class MQTTSessionJournal: @unchecked Sendable {
    private let store: any MQTTSessionStore
    private let logger: Logger
    private let backoff = Backoff(first: 0.1, maximum: 5)
    /// Changes in one transaction at most.
    private let batchLimit = 2_000

    private let lock = NIOLock()
    // Guarded by `lock`.
    private var pending: [MQTTSessionChange] = []
    private var appended = 0
    private var written = 0
    private var waiters: [(ticket: Int, promise: EventLoopPromise<Void>)] = []
    private var writing = false

    init(store: any MQTTSessionStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    /// Queues changes for the store; returns the ticket that is written once they are.
    @discardableResult
    func append(_ changes: [MQTTSessionChange]) -> Int {
        let (ticket, start) = self.lock.withLock {
            guard !changes.isEmpty else { return (self.appended, false) }
            self.pending += changes
            self.appended += changes.count
            defer { self.writing = true }
            return (self.appended, !self.writing)
        }
        if start { Task { await self.write() } }
        return ticket
    }

    /// Succeeds once every change up to `ticket` is in the store.
    func written(_ ticket: Int, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.lock.withLock {
            guard self.written < ticket else { return eventLoop.makeSucceededVoidFuture() }
            let promise = eventLoop.makePromise(of: Void.self)
            self.waiters.append((ticket, promise))
            return promise.futureResult
        }
    }

    /// Succeeds once everything appended so far is in the store.
    func caughtUp(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.written(self.lock.withLock { self.appended }, on: eventLoop)
    }

    /// Changes given up on at shutdown, when the store would not take them in time.
    struct Abandoned: Error {}

    /// Waits until everything appended so far is written, or `limit` has passed: a store that
    /// is down must not hold a shutdown for ever. Acknowledgements still waiting are then
    /// failed, so their publishers (whose connections are closing) send those messages again.
    func flush(on eventLoop: any EventLoop, within limit: TimeAmount) async {
        let ticket = self.lock.withLock { self.appended }
        let timeout = eventLoop.scheduleTask(in: limit) { self.abandonWaiters() }
        try? await self.written(ticket, on: eventLoop).get()
        timeout.cancel()
    }

    private func abandonWaiters() {
        let waiters = self.lock.withLock {
            defer { self.waiters = [] }
            return self.waiters
        }
        guard !waiters.isEmpty else { return }
        self.logger.error("persistent sessions not saved by shutdown", metadata: ["conduit.waiting": "\(waiters.count)"])
        for waiter in waiters { waiter.promise.fail(Abandoned()) }
    }

    private func write() async {
        var failures = 0
        while true {
            let batch: [MQTTSessionChange]? = self.lock.withLock {
                guard !self.pending.isEmpty else {
                    self.writing = false
                    return nil
                }
                let batch = Array(self.pending.prefix(self.batchLimit))
                self.pending.removeFirst(batch.count)
                return batch
            }
            guard let batch else { return }
            do {
                try await self.store.save(batch)
                failures = 0
            } catch {
                failures += 1
                self.logger.error(
                    "persistent sessions could not be saved; retrying (acknowledgements wait)",
                    metadata: ["error": "\(error)", "conduit.changes": "\(batch.count)"]
                )
                self.lock.withLock { self.pending.insert(contentsOf: batch, at: 0) }
                try? await Task.sleep(for: self.backoff.delay(afterFailures: failures))
                continue
            }
            let ready: [EventLoopPromise<Void>] = self.lock.withLock {
                self.written += batch.count
                let written = self.written
                let ready = self.waiters.filter { $0.ticket <= written }.map(\.promise)
                self.waiters.removeAll { $0.ticket <= written }
                return ready
            }
            for promise in ready { promise.succeed() }
        }
    }
}
