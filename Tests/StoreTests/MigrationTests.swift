import ConduitTesting
import Foundation
import Logging
import SQLKit
import Store
import Testing

@Suite("Migrations")
struct MigrationTests {
    @Test("migrate applies every step once, and again finds nothing to do", arguments: TestDatabase.allCases)
    func migrateIsIdempotent(database: TestDatabase) async throws {
        let (location, cleanup) = try await database.makeLocation()
        let store = try await SQLStore.open(location, logger: .quiet)
        // Shut down however the checks end: a store dropped open stops a debug build.
        do {
            #expect(try await store.schemaVersion() == 0)
            let first = try await store.migrate()
            #expect(first.map(\.version) == Migration.all.map(\.version))
            #expect(try await store.schemaVersion() == SQLStore.latestSchemaVersion)
            let second = try await store.migrate()
            #expect(second.isEmpty)
        } catch {
            Issue.record(error)
        }
        await store.shutdown()
        await cleanup()
    }

    @Test("several processes migrating one database at once apply each step exactly once", arguments: TestDatabase.allCases)
    func concurrentMigrators(database: TestDatabase) async throws {
        let (location, cleanup) = try await database.makeLocation()
        var stores: [SQLStore] = []
        do {
            for _ in 0..<4 { stores.append(try await SQLStore.open(location, logger: .quiet)) }
        } catch {
            for store in stores { await store.shutdown() }
            await cleanup()
            throw error
        }
        let outcomes = await withTaskGroup(of: Result<Int, any Error>.self) { group in
            for store in stores {
                group.addTask {
                    do { return .success(try await store.migrate().count) } catch { return .failure(error) }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        do {
            let applied = try outcomes.map { try $0.get() }.reduce(0, +)
            #expect(applied == Migration.all.count)
            let rows = try await stores[0].session.sql.raw("SELECT COUNT(*) AS n FROM conduit_migrations").first()
            #expect(try rows?.decode(column: "n", as: Int.self) == Migration.all.count)
        } catch {
            Issue.record(error)
        }
        for store in stores { await store.shutdown() }
        await cleanup()
    }

    @Test("a database migrated by a newer Conduit is refused", arguments: TestDatabase.allCases)
    func newerSchemaIsRefused(database: TestDatabase) async throws {
        try await database.withStore { store in
            try await store.session.sql.raw(
                "INSERT INTO conduit_migrations (version, name, applied_at) VALUES (9999, 'from the future', 0)"
            ).run()
            await #expect(throws: StoreError.self) { try await store.migrate() }
        }
    }

    @Test("a bad database URL names the rule")
    func badDatabaseURL() throws {
        #expect(throws: StoreError.self) { try DatabaseLocation.resolve(databaseURL: "mysql://x", dataDirectory: "d") }
        #expect(try DatabaseLocation.resolve(databaseURL: nil, dataDirectory: "d") == .sqlite(path: "d/conduit.sqlite"))
        #expect(try DatabaseLocation.resolve(databaseURL: "sqlite:/tmp/x.db", dataDirectory: "d") == .sqlite(path: "/tmp/x.db"))
        #expect(
            try DatabaseLocation.resolve(databaseURL: "postgres://u:p@h/db", dataDirectory: "d")
                == .postgres(url: "postgres://u:p@h/db")
        )
        #expect(DatabaseLocation.postgres(url: "postgres://u:secret@h/db").description == "postgres://u:***@h/db")
        #expect(!DatabaseLocation.postgres(url: "postgres://u:se#c%ret@h/db").description.contains("se#c"))
        #expect(!DatabaseLocation.postgres(url: "postgres://u:se#c%ret@h/db").description.contains("ret"))
    }
}
