import ArgumentParser

@main
struct Conduit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conduit",
        abstract: "Self-hosted IoT device hub for AWS IoT Core.",
        discussion: """
            `conduit serve` runs the hub: the HTTP API and the web console, the MQTT broker that devices connect to, and the workers that provision devices into AWS IoT Core, forward their messages and bring downlinks back. The other commands work on the same store, whether or not serve runs.

            With no settings at all, Conduit keeps a SQLite database in ./data, serves HTTP on 127.0.0.1:8080 and MQTT on 127.0.0.1:1883. Every setting has a flag, a CONDUIT_* environment variable and a key in an optional JSON config file (--config); a flag wins over the environment, which wins over the file. `conduit serve --help` lists them.
            """,
        subcommands: [ServeCommand.self, MigrateCommand.self, TenantsCommand.self, TokensCommand.self, UsersCommand.self, DevicesCommand.self, IntegrationsCommand.self, RulesCommand.self, AWSCommand.self, BenchCommand.self]
    )
}
