import HummingbirdBcrypt
import NIOPosix
import Synchronization

/// bcrypt, off the cooperative threads and a few at a time: each hash takes a noticeable slice of
/// a core on purpose, and a burst of sign-ins must neither stall the hub's other work nor queue
/// without end.
final class PasswordHasher: Sendable {
    static let cost: UInt8 = 11

    private struct State {
        var running = 0
        var waiting: [CheckedContinuation<Void, Never>] = []
    }

    /// Hashes at once, at most.
    let concurrency: Int
    /// Requests waiting for a turn, at most; past it, a request is refused as busy.
    let queueLimit: Int
    private let state = Mutex(State())

    init(concurrency: Int = 2, queueLimit: Int = 64) {
        self.concurrency = concurrency
        self.queueLimit = queueLimit
    }

    func hash(_ password: String) async throws -> String {
        try await self.run { Bcrypt.hash(password, cost: Self.cost) }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await self.run { Bcrypt.verify(password, hash: hash) }
    }

    private func run<R: Sendable>(_ work: @escaping @Sendable () -> R) async throws -> R {
        try await self.acquire()
        defer { self.release() }
        return try await NIOThreadPool.singleton.runIfActive { work() }
    }

    private func acquire() async throws {
        enum Turn { case now, wait, refuse }
        let turn: Turn = self.state.withLock { state in
            if state.running < self.concurrency {
                state.running += 1
                return .now
            }
            return state.waiting.count < self.queueLimit ? .wait : .refuse
        }
        switch turn {
        case .now: return
        case .refuse: throw HubError.tooManyRequests("too many sign-ins at once: try again in a moment")
        case .wait:
            await withCheckedContinuation { continuation in
                let resumeNow = self.state.withLock { state in
                    if state.running < self.concurrency {
                        state.running += 1
                        return true
                    }
                    state.waiting.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Hands the slot to the next waiter (which then counts as running), or frees it.
    private func release() {
        let next = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiting.isEmpty {
                state.running -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.resume()
    }
}
