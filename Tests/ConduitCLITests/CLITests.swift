import ConduitTesting
import Store
import Foundation
import Testing

/// HTTP against a running `conduit serve`.
func http(
    _ method: String, _ port: Int, _ path: String, token: String? = nil, json: String? = nil
) async throws -> (status: Int, body: [String: Any]) {
    var headers: [(String, String)] = []
    if let token { headers.append(("Authorization", "Bearer \(token)")) }
    if json != nil { headers.append(("Content-Type", "application/json")) }
    let (status, data) = try await LoopbackHTTP.request(method, port: port, path: path, headers: headers, body: json.map { Data($0.utf8) })
    let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
    return (status, object)
}

@Suite("conduit serve and the admin commands")
struct CLITests {
    @Test("serve with no configuration: ./data, a bootstrap admin token once, health, graceful stop")
    func serveWithNoConfiguration() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("data/conduit.sqlite").path))
        let token = try #require(server.bootstrapToken, "no bootstrap token in:\n\(server.output)")
        #expect(try await http("GET", port, "/healthz").status == 200)
        #expect(try await http("GET", port, "/readyz").status == 200)
        let created = try await http("POST", port, "/v1/devices", token: token, json: #"{"id":"s1","name":"Sensor"}"#)
        #expect(created.status == 201)
        #expect(try await http("POST", port, "/v1/devices/s1/accept", token: token).body["status"] as? String == "accepted")
        #expect(await server.stop() == 0)
        #expect(server.output.contains("conduit stopped"))

        // A second start finds tokens and logs none; the data survived.
        let (again, port2) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        #expect(again.bootstrapToken == nil)
        #expect(try await http("GET", port2, "/v1/devices/s1", token: token).body["status"] as? String == "accepted")
        #expect(await again.stop() == 0)
    }

    @Test("tokens create prints the token and nothing else, before serve has ever run")
    func tokensCreateBeforeServe() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await ConduitExecutable.run(["tokens", "create", "--role", "operator"], in: directory)
        #expect(result.status == 0, "\(result.stderr)")
        let token = result.stdout.trimmingCharacters(in: .newlines)
        #expect(result.stdout == token + "\n")
        #expect(token.hasPrefix("cdt_") && !token.contains(" "))

        let (server, port) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        // The store had a token already: no bootstrap token is made or logged.
        #expect(server.bootstrapToken == nil)
        #expect(try await http("POST", port, "/v1/devices", token: token, json: #"{"name":"x"}"#).status == 201)
        #expect(try await http("POST", port, "/v1/tokens", token: token, json: #"{"role":"reader"}"#).status == 403)
        #expect(await server.stop() == 0)
    }

    @Test("admin commands work while serve runs, and tenants isolate tokens")
    func adminWhileServing() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        let admin = try #require(server.bootstrapToken)
        #expect(try await http("POST", port, "/v1/devices", token: admin, json: #"{"id":"d1","name":"x"}"#).status == 201)

        let tenant = try await ConduitExecutable.run(["tenants", "create", "acme"], in: directory)
        #expect(tenant.status == 0, "\(tenant.stderr)")
        #expect(tenant.stdout.hasPrefix("acme\t"))
        let list = try await ConduitExecutable.run(["tenants", "list"], in: directory)
        #expect(list.stdout.split(separator: "\n").map { $0.split(separator: "\t").first.map(String.init) } == ["acme", "default"])

        let acme = try await ConduitExecutable.run(["tokens", "create", "--role", "admin", "--tenant", "acme"], in: directory)
        #expect(acme.status == 0, "\(acme.stderr)")
        let acmeToken = acme.stdout.trimmingCharacters(in: .newlines)
        #expect(try await http("GET", port, "/v1/devices/d1", token: acmeToken).status == 404)
        #expect(try await http("GET", port, "/v1/devices/d1", token: admin).status == 200)

        let tokens = try await ConduitExecutable.run(["tokens", "list"], in: directory)
        #expect(tokens.status == 0)
        #expect(!tokens.stdout.contains(admin))
        #expect(await server.stop() == 0)
    }

    @Test("admin command errors name the problem and exit non-zero")
    func adminErrors() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let role = try await ConduitExecutable.run(["tokens", "create", "--role", "root"], in: directory)
        #expect(role.status != 0)
        #expect(role.stdout.isEmpty)
        #expect(role.stderr.contains("--role"))
        let tenant = try await ConduitExecutable.run(["tokens", "create", "--role", "admin", "--tenant", "nope"], in: directory)
        #expect(tenant.status != 0)
        #expect(tenant.stderr.contains("tenant 'nope' not found"))
        let name = try await ConduitExecutable.run(["tenants", "create", "Bad_Name"], in: directory)
        #expect(name.status != 0)
        #expect(name.stderr.contains("name: must match [a-z0-9][a-z0-9-]{0,62}"))
        _ = try await ConduitExecutable.run(["tenants", "create", "twice"], in: directory)
        let twice = try await ConduitExecutable.run(["tenants", "create", "twice"], in: directory)
        #expect(twice.status != 0)
        #expect(twice.stderr.contains("tenant 'twice' exists already"))
        let url = try await ConduitExecutable.run(["migrate", "--database-url", "mysql://localhost/x"], in: directory)
        #expect(url.status != 0)
        #expect(url.stderr.contains("database URL: must start with postgres://"))
    }

    @Test("settings come from flags, then CONDUIT_* variables, then the config file")
    func settingsPrecedence() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("conduit.json")
        try Data(#"{"http": {"port": 0, "host": "127.0.0.1"}, "data": {"dir": "from-file"}}"#.utf8).write(to: config)

        let (fromFile, _) = try await ConduitServer.start(["--config", config.path], in: directory)
        #expect(await fromFile.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("from-file/conduit.sqlite").path))

        let (fromEnvironment, _) = try await ConduitServer.start(
            ["--config", config.path], in: directory, environment: ["CONDUIT_DATA_DIR": "from-env"]
        )
        #expect(await fromEnvironment.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("from-env/conduit.sqlite").path))

        let (fromFlag, _) = try await ConduitServer.start(
            ["--config", config.path, "--data-dir", "from-flag"], in: directory,
            environment: ["CONDUIT_DATA_DIR": "from-env", "CONDUIT_HTTP_PORT": "0"]
        )
        #expect(await fromFlag.stop() == 0)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("from-flag/conduit.sqlite").path))

        let bad = try await ConduitExecutable.run(["serve"], in: directory, environment: ["CONDUIT_HTTP_PORT": "eighty"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("http.port (CONDUIT_HTTP_PORT): must be an integer"))
        #expect(!bad.stderr.contains("Usage:"), "a bad variable is not a usage error")
        let range = try await ConduitExecutable.run(["serve"], in: directory, environment: ["CONDUIT_HTTP_PORT": "70000"])
        #expect(range.status != 0)
        #expect(range.stderr.contains("http.port (CONDUIT_HTTP_PORT): must be between 0 and 65535, got 70000"), "\(range.stderr)")
        let missing = try await ConduitExecutable.run(["serve", "--config", "nope.json"], in: directory)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("config: file 'nope.json' does not exist"))
    }

    @Test("a start with a port taken fails naming the listener, the address and the flag, and leaves nothing behind")
    func portTaken() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let held = holdLoopbackPort()
        let http = try await ConduitExecutable.run(["serve", "--http-port", "\(held.port)", "--mqtt-port", "0"], in: directory)
        #expect(http.status != 0)
        #expect(http.stderr.contains("HTTP 127.0.0.1:\(held.port) is in use: pass --http-port"), "\(http.stderr)")
        #expect(!http.stderr.contains("conduit.token"))
        #expect(!http.stderr.contains("Usage:"), "a port in use is not a usage error")
        let mqtt = try await ConduitExecutable.run(["serve", "--http-port", "0", "--mqtt-port", "\(held.port)"], in: directory)
        #expect(mqtt.status != 0)
        #expect(mqtt.stderr.contains("MQTT 127.0.0.1:\(held.port) is in use: pass --mqtt-port (0 turns it off"), "\(mqtt.stderr)")
        #expect(http.stderr.contains("pass --http-port (0 picks a free port)"), "\(http.stderr)")
        close(held.socket)
        // No store, no master key, no token: the data folder was never made.
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("data").path))

        // The next start, on that port now free, is a first start: it logs the bootstrap token.
        let (server, port) = try await ConduitServer.start(["--http-port", "\(held.port)"], in: directory)
        #expect(port == held.port)
        let token = try #require(server.bootstrapToken, "no bootstrap token in:\n\(server.output)")
        #expect(await server.stop() == 0)

        // A start on a store whose bootstrap token was never used says how to make another; once
        // it is used, no more.
        let hint = "make another with `conduit tokens create --role admin`"
        let (again, againPort) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        #expect(again.bootstrapToken == nil)
        #expect(again.output.contains(hint), "\(again.output)")
        #expect(try await CLITests.httpStatus(againPort, token: token) == 200)
        #expect(await again.stop() == 0)
        let (used, _) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        #expect(!used.output.contains(hint), "\(used.output)")
        #expect(await used.stop() == 0)
    }

    static func httpStatus(_ port: Int, token: String) async throws -> Int {
        try await ConduitCLITests.http("GET", port, "/v1/devices", token: token).status
    }

    @Test("a config file with an unknown key or a value of the wrong type is refused, naming the key and the nearest known one")
    func configChecked() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let cases: [(json: String, error: String)] = [
            (#"{"http": {"prot": 9000}}"#, "config: unknown key 'http.prot' in 'conduit.json' (did you mean 'http.port'?)"),
            (#"{"prot": 9000}"#, "config: unknown key 'prot' in 'conduit.json' (did you mean 'http.port'?)"),
            (#"{"mqtt": {"tls": {"requireClientCrt": true}}}"#,
             "config: unknown key 'mqtt.tls.requireClientCrt' in 'conduit.json' (did you mean 'mqtt.tls.requireClientCert'?)"),
            (#"{"http": {"port": "eighty"}}"#, #"config: http.port in 'conduit.json' must be an integer, got "eighty""#),
            (#"{"mqtt": {"anonymous": "maybe"}}"#, #"config: mqtt.anonymous in 'conduit.json' must be true or false, got "maybe""#),
            (#"{"http": 8080}"#, "config: unknown key 'http' in 'conduit.json'"),
            (#"[1, 2]"#, "config: 'conduit.json' must hold a JSON object of settings"),
        ]
        for (json, error) in cases {
            try Data(json.utf8).write(to: directory.appendingPathComponent("conduit.json"))
            let result = try await ConduitExecutable.run(["serve", "--config", "conduit.json"], in: directory)
            #expect(result.status != 0, "\(json)")
            #expect(result.stderr.contains(error), "\(json): \(result.stderr)")
            #expect(!result.stderr.contains("Usage:"), "a bad config file is not a usage error")
            // Refused before anything was made.
            #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("data").path))
        }
        // The other commands read the same file, and refuse it alike.
        try Data(#"{"data": {"dri": "x"}}"#.utf8).write(to: directory.appendingPathComponent("conduit.json"))
        let tokens = try await ConduitExecutable.run(["tokens", "list", "--config", "conduit.json"], in: directory)
        #expect(tokens.status != 0)
        #expect(tokens.stderr.contains("unknown key 'data.dri' in 'conduit.json' (did you mean 'data.dir'?)"), "\(tokens.stderr)")

        // An unknown CONDUIT_ variable is warned about, with the nearest known name; serve still starts.
        let (server, _) = try await ConduitServer.start(
            ["--http-port", "0"], in: directory, environment: ["CONDUIT_HTTP_PROT": "9000", "CONDUIT_CONFIG": ""]
        )
        #expect(
            server.output.contains("CONDUIT_HTTP_PROT is not a Conduit setting and is ignored (did you mean 'CONDUIT_HTTP_PORT'?)"),
            "\(server.output)"
        )
        #expect(await server.stop() == 0)
    }

    @Test("serve --help documents every setting")
    func serveHelp() async throws {
        let help = try await ConduitExecutable.run(["serve", "--help"], in: makeTemporaryDirectory())
        // Each option, in the OPTIONS section that argument-parser writes from the real flags,
        // with its environment variable named in its own help text.
        let options = try #require(help.stdout.components(separatedBy: "OPTIONS:").last)
        let settings = [
            ("--data-dir", "CONDUIT_DATA_DIR"), ("--http-host", "CONDUIT_HTTP_HOST"), ("--http-port", "CONDUIT_HTTP_PORT"), ("--http-idle-timeout", "CONDUIT_HTTP_IDLE_TIMEOUT"),
            ("--database-url", "CONDUIT_DATABASE_URL"), ("--log-level", "CONDUIT_LOG_LEVEL"),
            ("--log-format", "CONDUIT_LOG_FORMAT"), ("--config", "CONDUIT_CONFIG"),
            ("--mqtt-host", "CONDUIT_MQTT_HOST"), ("--mqtt-port", "CONDUIT_MQTT_PORT"), ("--mqtt-anonymous", "CONDUIT_MQTT_ANONYMOUS"),
            ("--mqtt-tls-port", "CONDUIT_MQTT_TLS_PORT"), ("--mqtt-tls-cert", "CONDUIT_MQTT_TLS_CERT"),
            ("--mqtt-tls-key", "CONDUIT_MQTT_TLS_KEY"), ("--mqtt-tls-ca", "CONDUIT_MQTT_TLS_CA"),
            ("--mqtt-tls-require-client-cert", "CONDUIT_MQTT_TLS_REQUIRE_CLIENT_CERT"), ("--mqtt-max-keep-alive", "CONDUIT_MQTT_MAX_KEEP_ALIVE"),
            ("--mqtt-max-inflight", "CONDUIT_MQTT_MAX_INFLIGHT"), ("--mqtt-max-packet-size", "CONDUIT_MQTT_MAX_PACKET_SIZE"),
            ("--message-history", "CONDUIT_MESSAGE_HISTORY"), ("--reconcile-interval", "CONDUIT_AWS_RECONCILE_INTERVAL"),
            ("--uplink-backlog-limit", "CONDUIT_UPLINK_BACKLOG_LIMIT"),
            ("--uplink-device-window", "CONDUIT_UPLINK_DEVICE_WINDOW"), ("--node-id", "CONDUIT_NODE_ID"),
            ("--master-key-file", "CONDUIT_MASTER_KEY_FILE"),
        ]
        for (flag, variable) in settings {
            let entry = try #require(
                options.components(separatedBy: "\n  --").first { entry in
                    ("--" + entry).hasPrefix(flag + " ") || ("--" + entry).hasPrefix(flag + "\n")
                },
                "\(flag) missing from the options of serve --help"
            )
            let flat = entry.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.contains("Env: \(variable)"), "\(flag): \(flat)")
            // Once, in its own entry: no hand-made table repeats it.
            let mentions = try NSRegularExpression(pattern: variable + "(?![A-Z_])")
                .numberOfMatches(in: help.stdout, range: NSRange(help.stdout.startIndex..., in: help.stdout))
            #expect(mentions == 1, "\(variable) is listed \(mentions) times")
        }
        let port = try #require(options.components(separatedBy: "\n  --").first { $0.hasPrefix("http-port") })
        #expect(port.split(whereSeparator: \.isWhitespace).joined(separator: " ").contains("Default: 8080. Env: CONDUIT_HTTP_PORT; key: http.port."))
        // Wrapped by argument-parser at 80 columns, never by hand beyond them.
        for line in help.stdout.split(separator: "\n") {
            #expect(line.count <= 80, "over 80 columns: \(line)")
        }

        let top = try await ConduitExecutable.run(["--help"], in: makeTemporaryDirectory())
        for command in ["serve", "migrate", "tenants", "tokens", "users", "devices", "integrations", "aws", "bench"] {
            #expect(top.stdout.contains("\n  \(command) "), "conduit --help does not list \(command)")
        }
        #expect(!top.stdout.contains("as they arrive"))
        for line in top.stdout.split(separator: "\n") {
            #expect(line.count <= 80, "over 80 columns: \(line)")
        }
    }

    @Test("serve, tokens and migrate against PostgreSQL")
    func postgres() async throws {
        let (url, cleanup) = try await TestDatabase.makePostgresDatabase()
        let directory = try makeTemporaryDirectory()
        let migrate = try await ConduitExecutable.run(["migrate", "--database-url", url], in: directory)
        #expect(migrate.status == 0, "\(migrate.stderr)")
        #expect(migrate.stdout.hasPrefix("schema version \(Store.SQLStore.latestSchemaVersion) "))
        let token = try await ConduitExecutable.run(["tokens", "create", "--role", "admin"], in: directory, environment: ["CONDUIT_DATABASE_URL": url])
        #expect(token.status == 0, "\(token.stderr)")
        let (server, port) = try await ConduitServer.start(["--http-port", "0", "--database-url", url], in: directory)
        #expect(server.bootstrapToken == nil)
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("data/conduit.sqlite").path))
        let created = try await http(
            "POST", port, "/v1/devices", token: token.stdout.trimmingCharacters(in: .newlines), json: #"{"id":"pg-1","name":"x"}"#
        )
        #expect(created.status == 201)
        #expect(await server.stop() == 0)
        try? FileManager.default.removeItem(at: directory)
        await cleanup()
    }
}
