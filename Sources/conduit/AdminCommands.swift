import ArgumentParser
import Foundation
import Hub
import Logging
import Store

/// Opens the store for an admin command: migrated, with the default tenant, logging warnings only
/// so that standard output carries nothing but the command's result. Works whether or not `serve`
/// has run on this store, and while it runs.
func withAdminHub<R>(_ options: StoreOptions, _ body: (Hub) async throws -> R) async throws -> R {
    let settings = try await Settings.load(options)
    let location = try settings.databaseLocation()
    LogOutput.bootstrap(level: try settings.logLevel(default: .warning), format: try settings.logFormat())
    let store = try await SQLStore.open(location, maxConnections: 2, logger: Logger(label: "conduit.store"))
    do {
        try await store.migrate()
        let hub = Hub(store: store, logger: Logger(label: "conduit.hub"), secrets: try settings.secretBox(), aws: try settings.awsEnvironment(),
            deviceCA: try settings.deviceCA()
        )
        try await hub.access.ensureDefaultTenant()
        let result = try await body(hub)
        await store.shutdown()
        return result
    } catch {
        await store.shutdown()
        throw error
    }
}

/// Prints a domain error as the message alone and exits non-zero.
func reportingErrors<R>(_ body: () async throws -> R) async throws -> R {
    do {
        return try await body()
    } catch let error as HubError {
        throw ValidationError(error.message)
    } catch let error as StoreError {
        throw ValidationError(error.message)
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Apply pending schema migrations (serve also does this at start)."
    )

    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        try await reportingErrors {
            try await withAdminHub(self.storeOptions) { hub in
                let version = try await hub.store.schemaVersion()
                print("schema version \(version) (\(hub.store.location))")
            }
        }
    }
}

struct TenantsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tenants", abstract: "Manage tenants.", subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a tenant; prints its name and id.")

        @Argument(help: "The tenant's name: [a-z0-9][a-z0-9-]{0,62}.") var name: String
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let tenant = try await withAdminHub(self.storeOptions) { try await $0.access.createTenant(name: self.name) }
                print("\(tenant.name)\t\(tenant.id)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tenants: name, id, creation time.")

        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let tenants = try await withAdminHub(self.storeOptions) { try await $0.access.tenants() }
                for tenant in tenants {
                    print("\(tenant.name)\t\(tenant.id)\t\(tenant.createdAt.formatted(.iso8601))")
                }
            }
        }
    }
}

struct TokensCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens", abstract: "Manage API tokens.", subcommands: [Create.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an API token; prints the token, and nothing else, on standard output."
        )

        @Option(help: "admin, operator or reader.") var role: Role
        @Option(help: "The tenant the token belongs to.") var tenant: String = Tenant.defaultName
        @Option(help: "A name to tell the token apart.") var name: String?
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let issued = try await withAdminHub(self.storeOptions) { hub in
                    let tenant = try await hub.access.tenant(named: self.tenant)
                    let cli = Principal(tenantID: tenant.id, role: .admin, actor: "cli")
                    return try await hub.access.createToken(by: cli, role: self.role, name: self.name)
                }
                print(issued.token)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a tenant's tokens: id, role, name, hint (never the token).")

        @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let tokens = try await withAdminHub(self.storeOptions) { hub in
                    let tenant = try await hub.access.tenant(named: self.tenant)
                    return try await hub.access.tokens(by: Principal(tenantID: tenant.id, role: .admin, actor: "cli"))
                }
                for token in tokens {
                    print("\(token.id)\t\(token.role.rawValue)\t\(token.name)\t\(token.hint)…")
                }
            }
        }
    }
}

extension Role: ExpressibleByArgument {}
