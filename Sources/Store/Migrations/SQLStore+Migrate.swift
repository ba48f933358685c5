import Foundation
import SQLKit
import SQLiteNIO

extension SQLStore {
    /// The schema version this build of Conduit knows.
    public static var latestSchemaVersion: Int { Migration.all.last?.version ?? 0 }

    /// Applies every pending migration in one transaction and returns the ones applied.
    ///
    /// Safe to run from several processes at once: SQLite's write lock or a PostgreSQL advisory
    /// lock lets one of them apply the steps while the others wait and then find nothing to do.
    /// A database migrated by a newer Conduit is refused rather than used.
    @discardableResult
    public func migrate(_ migrations: [Migration] = Migration.all) async throws -> [Migration] {
        // SQLite answers "database is locked" at once, whatever its busy timeout, to some lock
        // upgrades (a connection switching a fresh file to WAL while others open it), and after
        // the timeout when another migrator's commit is slow: both pass, so try again a few times.
        var attempt = 0
        while true {
            do {
                return try await self.migrateOnce(migrations)
            } catch let error as SQLiteError where error.reason == .busy && attempt < 8 {
                attempt += 1
                self.logger.notice("the database is locked by another process; migrating again", metadata: ["conduit.attempt": "\(attempt)"])
                try await Task.sleep(for: .milliseconds(250 * attempt))
            }
        }
    }

    private func migrateOnce(_ migrations: [Migration]) async throws -> [Migration] {
        let dialect = self.dialect
        let applied = try await self.transaction { session in
            let sql = session.sql
            if dialect == .postgres {
                // Serialises concurrent migrators; released with the transaction.
                try await sql.raw("SELECT pg_advisory_xact_lock(7234917001)").run()
            }
            try await sql.raw(
                """
                CREATE TABLE IF NOT EXISTS conduit_migrations (
                    version BIGINT PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )
                """
            ).run()
            let current = try await sql.raw("SELECT MAX(version) AS version FROM conduit_migrations")
                .first()?.decode(column: "version", as: Int?.self) ?? 0
            let latest = migrations.last?.version ?? 0
            if current > latest {
                throw StoreError.schemaTooNew(
                    "the database is at schema version \(current), newer than this Conduit knows (\(latest)): upgrade Conduit"
                )
            }
            var applied: [Migration] = []
            for migration in migrations where migration.version > current {
                for statement in migration.statements(dialect) {
                    try await sql.raw("\(unsafeRaw: statement)").run()
                }
                try await sql.raw(
                    """
                    INSERT INTO conduit_migrations (version, name, applied_at)
                    VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: Date().storeMilliseconds))
                    """
                ).run()
                applied.append(migration)
            }
            return applied
        }
        for migration in applied {
            self.logger.info(
                "applied migration",
                metadata: ["conduit.migration": "\(migration.version)", "conduit.migration_name": "\(migration.name)"]
            )
        }
        return applied
    }

    /// The highest migration applied to this database, 0 when none.
    public func schemaVersion() async throws -> Int {
        let exists: Bool
        switch self.dialect {
        case .sqlite:
            exists = try await self.session.sql.raw(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'conduit_migrations'"
            ).first() != nil
        case .postgres:
            exists = try await self.session.sql.raw("SELECT to_regclass('conduit_migrations') IS NOT NULL AS present")
                .first()?.decode(column: "present", as: Bool.self) ?? false
        }
        guard exists else { return 0 }
        return try await self.session.sql.raw("SELECT MAX(version) AS version FROM conduit_migrations")
            .first()?.decode(column: "version", as: Int?.self) ?? 0
    }
}
