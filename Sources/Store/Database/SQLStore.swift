@preconcurrency import AsyncKit
import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresKit
import SQLKit
import SQLiteKit
import Synchronization

/// Conduit's store: one SQL code path over SQLite (the default) or PostgreSQL (for scale-out).
///
/// Reads go through ``session``; anything that writes more than one row goes through
/// ``transaction(_:)``, so a request that fails leaves nothing half-written.
public final class SQLStore: Sendable {
    /// The engine behind this store.
    public let dialect: SQLDialectKind
    /// Where the store lives (passwords redacted in its description).
    public let location: DatabaseLocation
    private let sql: any SQLDatabase
    private let shutdownPool: @Sendable () async throws -> Void
    /// Serialises this process's write transactions on SQLite; nil on PostgreSQL, which has row locks.
    private let writeGate: WriteGate?
    private let isShutDown = Mutex(false)
    let logger: Logger

    /// The event loop SQLite stores answer on, unless given one: every statement's answer comes
    /// back through an event loop, and on one shared with the network (the broker's connections,
    /// the HTTP server) each statement of a transaction waited its turn behind the sockets' reads
    /// (ingest's group commit spent a third of its time there). One for the process, never shut
    /// down, like NIO's singleton: a store's connection still opening when the store shuts down
    /// completes on it and is closed, instead of being dropped with a loop shut down under it.
    static let sqliteLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    /// Opens a store (creating the SQLite file and its folder when missing). Call ``migrate()`` before use.
    public static func open(
        _ location: DatabaseLocation,
        maxConnections: Int = 8,
        logger: Logger = Logger(label: "conduit.store"),
        eventLoopGroup: (any EventLoopGroup)? = nil
    ) async throws -> SQLStore {
        switch location {
        case .sqlite(let path):
            let eventLoopGroup = eventLoopGroup ?? Self.sqliteLoop
            let url = URL(fileURLWithPath: path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            // SQLite calls block their thread (a busy wait included), so the store has a thread for
            // each connection of its own: a connection waiting for the lock can never starve the one
            // holding it, as it could on the small shared pool.
            let connections = max(1, maxConnections)
            // And one for the WAL checkpointer's connection.
            let threadPool = NIOThreadPool(numberOfThreads: connections + 1)
            threadPool.start()
            let source = SQLiteConnectionPoolSource(path: url.path, threadPool: threadPool)
            let pool = EventLoopGroupConnectionPool(
                source: source, maxConnectionsPerEventLoop: connections, requestTimeout: .seconds(30),
                pruneInterval: nil, logger: logger, on: eventLoopGroup.next()
            )
            let checkpointer = Task {
                await WALCheckpointer.run(path: url.path, threadPool: threadPool, eventLoop: eventLoopGroup.any(), logger: logger)
            }
            let shutdown: @Sendable () async throws -> Void = {
                checkpointer.cancel()
                await checkpointer.value
                var failure: (any Error)?
                do { try await pool.shutdownAsync() } catch { failure = error }
                try await threadPool.shutdownGracefully()
                if let failure { throw failure }
            }
            let gate = WriteGate()
            let database = GatedSQLDatabase(base: SQLitePooledDatabase(pool: pool, logger: logger).sql(queryLogLevel: .trace), gate: gate)
            let store = SQLStore(
                dialect: .sqlite, location: location, sql: database, logger: logger, writeGate: gate,
                shutdown: shutdown
            )
            do {
                try await store.session.sql.raw("SELECT 1").run()
            } catch {
                try? await shutdown()
                throw StoreError.unavailable("cannot open SQLite database at \(path): \(error)")
            }
            return store
        case .postgres(let url, let searchPath):
            let eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
            var configuration: SQLPostgresConfiguration
            do {
                configuration = try SQLPostgresConfiguration(url: url)
            } catch {
                throw StoreError.invalidConfiguration("database URL: not a valid PostgreSQL URL (\(location))")
            }
            configuration.searchPath = searchPath
            let pool = EventLoopGroupConnectionPool(
                source: PostgresConnectionSource(sqlConfiguration: configuration),
                maxConnectionsPerEventLoop: max(1, maxConnections / 2),
                requestTimeout: .seconds(30), pruneInterval: .seconds(60), logger: logger, on: eventLoopGroup
            )
            let database = pool.database(logger: logger).sql(queryLogLevel: .trace)
            let store = SQLStore(
                dialect: .postgres, location: location, sql: database, logger: logger, writeGate: nil,
                shutdown: { try await pool.shutdownAsync() }
            )
            do {
                try await store.session.sql.raw("SELECT 1").run()
            } catch {
                try? await pool.shutdownAsync()
                throw StoreError.unavailable("cannot connect to PostgreSQL at \(location): \(String(reflecting: error))")
            }
            return store
        }
    }

    private init(
        dialect: SQLDialectKind, location: DatabaseLocation, sql: any SQLDatabase, logger: Logger, writeGate: WriteGate?,
        shutdown: @escaping @Sendable () async throws -> Void
    ) {
        self.writeGate = writeGate
        self.dialect = dialect
        self.location = location
        self.sql = sql
        self.logger = logger
        self.shutdownPool = shutdown
    }

    /// Repositories over the pool: each query may run on its own connection.
    public var session: StoreSession { StoreSession(sql: self.sql, dialect: self.dialect) }

    /// Runs `body` in one transaction on one connection: committed when it returns, rolled back when
    /// it throws. One PostgreSQL chose as a deadlock's victim (or could not serialize) runs again,
    /// from the start, up to four times: `body` must do nothing outside the store it cannot repeat.
    public func transaction<R: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> R) async throws -> R {
        guard let gate = self.writeGate, !WriteGate.held else { return try await self.runTransaction(body) }
        return try await gate.withGate { try await self.runTransaction(body) }
    }

    private func runTransaction<R: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> R) async throws -> R {
        var attempt = 1
        while true {
            do {
                return try await self.runTransactionOnce(body)
            } catch where attempt < 5 && StoreError.isTransient(error) {
                self.logger.info("transaction run again", metadata: ["conduit.attempt": "\(attempt)", "error": "\(error)"])
                // Apart, so that the two do not meet again at once.
                try await Task.sleep(for: .milliseconds(Int.random(in: 5...20) * attempt))
                attempt += 1
            }
        }
    }

    private func runTransactionOnce<R: Sendable>(_ body: @escaping @Sendable (StoreSession) async throws -> R) async throws -> R {
        let dialect = self.dialect
        return try await self.sql.withSession { connection in
            try await connection.raw("\(unsafeRaw: dialect.beginTransaction)").run()
            let result: R
            do {
                result = try await body(StoreSession(sql: connection, dialect: dialect))
            } catch {
                try? await connection.raw("ROLLBACK").run()
                throw StoreError.mapping(error)
            }
            do {
                try await connection.raw("COMMIT").run()
            } catch {
                try? await connection.raw("ROLLBACK").run()
                throw StoreError.mapping(error)
            }
            return result
        }
    }

    /// True when the database answers a trivial query.
    public func ping() async -> Bool {
        do {
            try await self.sql.raw("SELECT 1").run()
            return true
        } catch {
            return false
        }
    }

    /// Closes every pooled connection; later calls do nothing.
    public func shutdown() async {
        let first = self.isShutDown.withLock { done in
            defer { done = true }
            return !done
        }
        guard first else { return }
        do {
            try await self.shutdownPool()
        } catch {
            self.logger.warning("store shutdown failed", metadata: ["error": "\(error)"])
        }
    }
}

/// The repositories, bound to one database handle: the pool, or one transaction's connection.
public struct StoreSession: Sendable {
    /// The raw handle, for the store's own repositories and for tests.
    public let sql: any SQLDatabase
    /// The engine behind it.
    public let dialect: SQLDialectKind

    public var tenants: TenantRepository { TenantRepository(session: self) }
    public var tokens: APITokenRepository { APITokenRepository(session: self) }
    public var devices: DeviceRepository { DeviceRepository(session: self) }
    public var events: EventRepository { EventRepository(session: self) }
    public var messages: DeviceMessageRepository { DeviceMessageRepository(session: self) }
    public var integrations: IntegrationRepository { IntegrationRepository(session: self) }
    public var awsThings: AWSThingRepository { AWSThingRepository(session: self) }
    public var outbox: OutboxRepository { OutboxRepository(session: self) }
    public var downlinks: DownlinkRepository { DownlinkRepository(session: self) }
    public var gatewayLeases: GatewayLeaseRepository { GatewayLeaseRepository(session: self) }
    public var cluster: ClusterRepository { ClusterRepository(session: self) }
    public var deviceSessions: DeviceSessionRepository { DeviceSessionRepository(session: self) }
    public var users: UserRepository { UserRepository(session: self) }
    public var consoleSessions: ConsoleSessionRepository { ConsoleSessionRepository(session: self) }
    public var mqttSessions: MQTTSessionRepository { MQTTSessionRepository(session: self) }
    public var routing: RoutingRepository { RoutingRepository(session: self) }
    public var rules: RuleRepository { RuleRepository(session: self) }
    public var webhooks: WebhookRepository { WebhookRepository(session: self) }
}
