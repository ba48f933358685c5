import Logging
import NIOCore
import SQLKit

/// Lets one write of this process at a time into SQLite, in arrival order: a transaction, or a
/// statement that writes outside one.
///
/// SQLite has one writer per file. Without the gate, concurrent writes of one process would all
/// sit in SQLite's busy handler, each holding a blocked thread and sleeping in growing steps (up
/// to 100 ms a step): a removal from the outbox beside ingest's group commits waited that long.
/// With the gate they queue here and start the moment the previous one ends. Other processes (an
/// admin command beside `serve`) still meet the busy timeout.
actor WriteGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// True inside a transaction that holds the gate: a pool write made from there does not wait
    /// for the gate it holds (SQLite's busy timeout answers it, as before the gate).
    @TaskLocal static var held = false

    func acquire() async {
        guard self.busy else {
            self.busy = true
            return
        }
        await withCheckedContinuation { self.waiters.append($0) }
    }

    func release() {
        if self.waiters.isEmpty {
            self.busy = false
        } else {
            self.waiters.removeFirst().resume()
        }
    }

    /// Runs `body` holding the gate.
    func withGate<R: Sendable>(_ body: @Sendable () async throws -> R) async throws -> R {
        // Not isolated to the actor while `body` runs: the gate is a flag, not a lock on the actor.
        try await Self.run(self, body)
    }

    private nonisolated static func run<R: Sendable>(_ gate: WriteGate, _ body: @Sendable () async throws -> R) async throws -> R {
        await gate.acquire()
        do {
            let result = try await WriteGate.$held.withValue(true) { try await body() }
            await gate.release()
            return result
        } catch {
            await gate.release()
            throw error
        }
    }
}

/// The SQLite pool, with each statement that may write (anything but a `SELECT`) passed through
/// the ``WriteGate``. A transaction's own connection (``withSession(_:)``) is not gated: the
/// transaction holds the gate already.
struct GatedSQLDatabase: SQLDatabase {
    let base: any SQLDatabase
    let gate: WriteGate

    var logger: Logger { self.base.logger }
    var eventLoop: any EventLoop { self.base.eventLoop }
    var version: (any SQLDatabaseReportedVersion)? { self.base.version }
    var dialect: any SQLDialect { self.base.dialect }
    var queryLogLevel: Logger.Level? { self.base.queryLogLevel }

    /// Reads need no gate: WAL lets them run beside the writer.
    private func mayWrite(_ query: any SQLExpression) -> Bool {
        guard !WriteGate.held else { return false }
        let sql = self.base.serialize(query).sql.utf8.drop { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "(") }
        let keyword = sql.prefix(6).map { $0 | 0x20 }
        return keyword != Array("select".utf8)
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) -> EventLoopFuture<Void> {
        guard self.mayWrite(query) else { return self.base.execute(sql: query, onRow) }
        let promise = self.eventLoop.makePromise(of: Void.self)
        promise.completeWithTask { try await self.gate.withGate { try await self.base.execute(sql: query, onRow) } }
        return promise.futureResult
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLRow) -> Void) async throws {
        guard self.mayWrite(query) else { return try await self.base.execute(sql: query, onRow) }
        try await self.gate.withGate { try await self.base.execute(sql: query, onRow) }
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await self.base.withSession(closure)
    }
}
