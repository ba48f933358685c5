import Foundation
import Hub
import Logging
import SQLKit
import Store
import Testing

/// The engines every store and API test runs against: SQLite in a temporary file, and a real
/// PostgreSQL 15 that `scripts/test` starts (its URL in `CONDUIT_TEST_POSTGRES_URL`).
public enum TestDatabase: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    public var testDescription: String { self.rawValue }

    /// The URL of the test PostgreSQL server.
    public static func postgresURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["CONDUIT_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw TestSetupError(
                "CONDUIT_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts PostgreSQL 15"
            )
        }
        return url
    }

    /// A new, empty database of this engine (its own file, or its own PostgreSQL schema), not yet migrated.
    public func makeLocation() async throws -> (location: DatabaseLocation, cleanup: @Sendable () async -> Void) {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("conduit-test-\(UUID().uuidString.lowercased())")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            return (
                .sqlite(path: directory.appendingPathComponent("conduit.sqlite").path),
                { try? FileManager.default.removeItem(at: directory) }
            )
        case .postgres:
            let url = try Self.postgresURL()
            let schema = "t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
            try await Self.postgresAdmin(url: url, "CREATE SCHEMA \(schema)")
            return (
                .postgres(url: url, searchPath: [schema]),
                { try? await Self.postgresAdmin(url: url, "DROP SCHEMA \(schema) CASCADE") }
            )
        }
    }

    /// A new, empty PostgreSQL database of its own, as a URL a separate process can use.
    public static func makePostgresDatabase() async throws -> (url: String, cleanup: @Sendable () async -> Void) {
        let url = try Self.postgresURL()
        let name = "cli_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await Self.postgresAdmin(url: url, "CREATE DATABASE \(name)")
        guard var components = URLComponents(string: url) else { throw TestSetupError("bad CONDUIT_TEST_POSTGRES_URL") }
        components.path = "/" + name
        return (
            components.string!,
            { try? await Self.postgresAdmin(url: url, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        )
    }

    /// Runs `body` with a migrated store of this engine, then closes and removes it.
    public func withStore<R>(_ body: (SQLStore) async throws -> R) async throws -> R {
        let (location, cleanup) = try await self.makeLocation()
        let store = try await SQLStore.open(location, logger: .quiet)
        do {
            try await store.migrate()
            let result = try await body(store)
            await store.shutdown()
            await cleanup()
            return result
        } catch {
            await store.shutdown()
            await cleanup()
            throw error
        }
    }

    /// Runs `body` with a hub over a migrated store of this engine, with the default tenant.
    public func withHub<R>(
        aws: AWSEnvironment = AWSEnvironment(), webhooks: WebhookEnvironment = WebhookEnvironment(), logger: Logger = .quiet,
        _ body: (Hub) async throws -> R
    ) async throws -> R {
        try await self.withStore { store in
            let hub = Hub(store: store, logger: logger, aws: aws, webhooks: webhooks)
            try await hub.access.ensureDefaultTenant()
            return try await body(hub)
        }
    }

    private static func postgresAdmin(url: String, _ statement: String) async throws {
        let store = try await SQLStore.open(.postgres(url: url), maxConnections: 2, logger: .quiet)
        do {
            try await store.session.sql.raw("\(unsafeRaw: statement)").run()
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }
}

/// The test environment is not what the tests need.
public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension Logger {
    /// A logger for tests: warnings and worse only, so a failing test's output is readable.
    public static var quiet: Logger {
        var logger = Logger(label: "conduit.test")
        logger.logLevel = .warning
        return logger
    }
}

extension Hub {
    /// Another node on this hub's database, with its master key: a hub and connections of its own,
    /// as a second `conduit serve` would have. Shut its store down when done.
    public func anotherNode(aws: AWSEnvironment = AWSEnvironment(), webhooks: WebhookEnvironment = WebhookEnvironment()) async throws -> Hub {
        Hub(store: try await SQLStore.open(self.store.location, logger: .quiet), logger: .quiet, secrets: self.secrets, aws: aws, webhooks: webhooks)
    }
}
