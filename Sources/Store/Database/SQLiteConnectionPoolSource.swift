@preconcurrency import AsyncKit
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// Opens SQLite connections set up for a server: WAL journal (readers never block the writer, and
/// admin commands work while `serve` runs), a busy timeout instead of "database is locked", and
/// foreign keys enforced. The WAL is checkpointed by ``WALCheckpointer`` beside the writers, not
/// by the commit that happens to fill it.
struct SQLiteConnectionPoolSource: ConnectionPoolSource {
    let path: String
    let threadPool: NIOThreadPool

    func makeConnection(logger: Logger, on eventLoop: any EventLoop) -> EventLoopFuture<SQLiteConnection> {
        SQLiteConnection.open(storage: .file(path: self.path), threadPool: self.threadPool, logger: logger, on: eventLoop)
            .flatMap { connection in
                let pragmas = [
                    "PRAGMA busy_timeout = 15000",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    // Only if the checkpointer falls behind (40 MB of WAL) does a commit checkpoint.
                    "PRAGMA wal_autocheckpoint = 10000",
                    "PRAGMA foreign_keys = ON",
                ]
                return pragmas.reduce(eventLoop.makeSucceededVoidFuture()) { future, pragma in
                    future.flatMap { connection.query(pragma).map { _ in } }
                }
                .map { connection }
                .flatMapError { error in connection.close().flatMapThrowing { throw error } }
            }
    }
}


/// Copies the WAL back into the database from a connection of its own, every quarter second.
///
/// SQLite's own checkpoint runs inside the commit that crosses 1,000 pages of WAL: that commit,
/// and every write queued behind it, waits while 4 MB are written and flushed (ingest alone lost
/// a sixth of its speed to it). A passive checkpoint takes no write lock, so commits go on beside
/// it. The connection is not the pool's: the checkpointer opens and closes it itself, so that
/// nothing it asked of the pool is still opening when the store shuts down.
enum WALCheckpointer {
    static let interval = Duration.milliseconds(250)

    /// Runs until cancelled, then closes its connection.
    static func run(path: String, threadPool: NIOThreadPool, eventLoop: any EventLoop, logger: Logger) async {
        var connection: SQLiteConnection?
        while !Task.isCancelled {
            guard (try? await Task.sleep(for: Self.interval)) != nil else { break }
            do {
                if connection == nil {
                    connection = try await SQLiteConnection.open(storage: .file(path: path), threadPool: threadPool, logger: logger, on: eventLoop).get()
                }
                _ = try await connection?.query("PRAGMA wal_checkpoint(PASSIVE)").get()
            } catch {
                if Task.isCancelled { break }
                logger.debug("WAL checkpoint failed", metadata: ["error": "\(error)"])
            }
        }
        try? await connection?.close().get()
    }
}

/// A `SQLiteDatabase` that takes a pooled connection for each query, and the same one for a whole session.
struct SQLitePooledDatabase: SQLiteDatabase {
    let pool: EventLoopGroupConnectionPool<SQLiteConnectionPoolSource>
    let logger: Logger

    var eventLoop: any EventLoop { self.pool.eventLoopGroup.any() }

    func query(
        _ query: String,
        _ binds: [SQLiteData],
        logger: Logger,
        _ onRow: @escaping @Sendable (SQLiteRow) -> Void
    ) -> EventLoopFuture<Void> {
        self.pool.withConnection(logger: logger) { $0.query(query, binds, logger: logger, onRow) }
    }

    func withConnection<T>(_ closure: @escaping @Sendable (SQLiteConnection) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        self.pool.withConnection(logger: self.logger, closure)
    }
}
