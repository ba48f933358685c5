import Synchronization

/// Wakes sleeping workers when there is new work. A worker notes the ``generation`` before it
/// looks for work and waits only if no ring came since, so a ring is never missed.
final class Doorbell: Sendable {
    private struct State {
        var generation = 0
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
        /// Waiters woken (timed out, cancelled) before they had parked.
        var woken: Set<Int> = []
    }
    private let state = Mutex(State())

    var generation: Int { self.state.withLock { $0.generation } }

    func ring() {
        let waiters = self.state.withLock { state in
            state.generation += 1
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns at the first ring after `generation`, after `timeout`, or on cancellation.
    func wait(since generation: Int, timeout: Duration) async {
        let id = self.state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        let timer = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            self.wake(id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = self.state.withLock { state in
                    if state.woken.remove(id) != nil || state.generation != generation || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            self.wake(id)
        }
        timer.cancel()
        // A wake that lands after the ring resumed us must not linger.
        self.state.withLock { _ = $0.woken.remove(id) }
    }

    private func wake(_ id: Int) {
        let waiter = self.state.withLock { state in
            guard let waiter = state.waiters.removeValue(forKey: id) else {
                state.woken.insert(id)
                return nil as CheckedContinuation<Void, Never>?
            }
            return waiter
        }
        waiter?.resume()
    }
}

/// A doorbell per key (a device), made when someone first waits on it: a ring wakes only those
/// waiting for that key.
final class Doorbells: Sendable {
    private let bells = Mutex<[String: Doorbell]>([:])

    /// The key's bell, to note its generation and wait on.
    func bell(_ key: String) -> Doorbell {
        self.bells.withLock { bells in
            if let bell = bells[key] { return bell }
            let bell = Doorbell()
            bells[key] = bell
            return bell
        }
    }

    /// Rings the key's bell, if anyone ever waited on it.
    func ring(_ key: String) {
        self.bells.withLock { $0[key] }?.ring()
    }
}
