import ArgumentParser

@main
struct Conduit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit",
        abstract: "Self-hosted IoT device hub for AWS IoT Core.",
        discussion: """
            Every setting has a flag, a CONDUIT_* environment variable and a key in an optional JSON
            config file (--config or CONDUIT_CONFIG); a flag wins over the environment, which wins over
            the file. With none of them, Conduit keeps a SQLite database under ./data and serves HTTP
            on 127.0.0.1:8080.
            """,
        subcommands: [ServeCommand.self, MigrateCommand.self, TenantsCommand.self, TokensCommand.self, UsersCommand.self, DevicesCommand.self, IntegrationsCommand.self, AWSCommand.self, BenchCommand.self]
    )
}
