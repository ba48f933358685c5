import ConduitTesting
import Foundation
import SQLKit
import Store
import Synchronization
import Testing

@Suite("Transactions on PostgreSQL")
struct TransactionRetryTests {
    @Test("two transactions that lock the same rows in opposite orders both commit: the one PostgreSQL picks as the deadlock's victim runs again")
    func deadlockVictimRunsAgain() async throws {
        try await TestDatabase.postgres.withStore { store in
            try await store.session.sql.raw("CREATE TABLE lock_order_probe (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)").run()
            try await store.session.sql.raw("INSERT INTO lock_order_probe (id, n) VALUES (1, 0), (2, 0)").run()
            // Each first run takes its first row, then waits until the other has its own: a deadlock
            // for sure. Runs after the first wait for nothing.
            let probe = Probe()
            let one = Task { try await Self.work(store, probe, first: 1, then: 2) }
            let two = Task { try await Self.work(store, probe, first: 2, then: 1) }
            try await one.value
            try await two.value
            let rows = try await store.session.sql.raw("SELECT id, n FROM lock_order_probe ORDER BY id").all()
            #expect(try rows.map { try $0.decode(column: "n", as: Int.self) } == [2, 2], "each transaction's two updates, once")
            #expect(probe.runs.withLock { $0.values.sorted() } == [1, 2], "the victim ran twice, the other once")
        }
    }

    final class Probe: Sendable {
        let locked = Mutex<Set<Int>>([])
        let runs = Mutex<[Int: Int]>([:])
    }

    static func work(_ store: SQLStore, _ probe: Probe, first: Int, then second: Int) async throws {
        try await store.transaction { session in
            let run = probe.runs.withLock { runs -> Int in
                runs[first, default: 0] += 1
                return runs[first]!
            }
            try await session.sql.raw("UPDATE lock_order_probe SET n = n + 1 WHERE id = \(bind: first)").run()
            if run == 1 {
                probe.locked.withLock { _ = $0.insert(first) }
                try await waitUntil("the other transaction to hold its row", seconds: 10, interval: .milliseconds(10)) {
                    probe.locked.withLock { $0.contains(second) }
                }
            }
            try await session.sql.raw("UPDATE lock_order_probe SET n = n + 1 WHERE id = \(bind: second)").run()
        }
    }
}
