import AWS
import Backoff
import ArgumentParser
import Configuration
import Foundation
import Hub
import Logging
import Store
import SystemPackage

/// Options every command that opens the store takes.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .customLong("config"),
        help: ArgumentHelp(
            "A JSON file of settings by key, nested or dotted, e.g. {\"http\": {\"port\": 8080}}. An unknown key or a value of the wrong type stops the command. Env: CONDUIT_CONFIG.",
            valueName: "file"
        )
    )
    var configFile: String?

    @Option(help: ArgumentHelp(SettingsCatalog.help("Folder of the SQLite database, the master key and node-id", key: "data.dir", default: "./data"), valueName: "dir"))
    var dataDir: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "postgres://user:pass@host:port/db selects PostgreSQL; sqlite:PATH a SQLite file", key: "database.url",
                default: "SQLite in the data dir"
            ),
            valueName: "url"
        )
    )
    var databaseUrl: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help(
                "File of the master key that seals AWS secrets and device keys; made (mode 0600) when missing. CONDUIT_MASTER_KEY (key: masterKey; base64 of 32 bytes) gives the key itself instead, as every node of a cluster needs",
                key: "masterKeyFile", default: "master.key in the data dir"
            ),
            valueName: "file"
        )
    )
    var masterKeyFile: String?

    @Option(
        help: ArgumentHelp(
            SettingsCatalog.help("trace, debug, info, notice, warning or error", key: "log.level", default: "info for serve, warning for the other commands"), valueName: "level"
        )
    )
    var logLevel: String?

    @Option(help: ArgumentHelp(SettingsCatalog.help("text, or json (one object per line)", key: "log.format", default: "text"), valueName: "format"))
    var logFormat: String?
}

/// Settings resolved from flags, then `CONDUIT_*` environment variables, then the config file, then defaults.
struct Settings {
    let reader: ConfigReader
    let options: StoreOptions
    /// `CONDUIT_*` variables that name no setting, each with the nearest known one.
    let warnings: [String]

    /// Reads the settings, and refuses a config file with an unknown key or a value of the
    /// wrong type. Warnings are written to standard error unless `reportWarnings` is false
    /// (`serve` logs them instead).
    static func load(_ options: StoreOptions, reportWarnings: Bool = true) async throws -> Settings {
        let warnings = SettingsCatalog.unknownVariables(in: ProcessInfo.processInfo.environment)
        if reportWarnings {
            for warning in warnings { FileHandle.standardError.write(Data("warning: \(warning)\n".utf8)) }
        }
        let environment = EnvironmentVariablesProvider().prefixKeys(with: "conduit")
        let configPath = options.configFile ?? ProcessInfo.processInfo.environment[SettingsCatalog.configVariable]
        guard let configPath, !configPath.isEmpty else {
            return Settings(reader: ConfigReader(provider: environment), options: options, warnings: warnings)
        }
        guard let contents = FileManager.default.contents(atPath: configPath) else {
            throw StartupError("config: file '\(configPath)' does not exist or cannot be read")
        }
        let document: JSONValue
        do {
            document = try JSONDecoder().decode(JSONValue.self, from: contents)
        } catch {
            throw StartupError("config: '\(configPath)' is not valid JSON (\(error))")
        }
        let problems = SettingsCatalog.problems(inConfig: document, file: configPath)
        guard problems.isEmpty else { throw StartupError(problems.joined(separator: "\n")) }
        do {
            let file = try await FileProvider<JSONSnapshot>(filePath: FilePath(configPath))
            return Settings(reader: ConfigReader(providers: [environment, file]), options: options, warnings: warnings)
        } catch {
            throw ValidationError("config: '\(configPath)' is not a JSON object of settings (\(error))")
        }
    }

    /// A string setting: the flag, else `CONDUIT_<KEY>`, else the file's key.
    func string(_ flag: String?, key: String) -> String? {
        if let flag, !flag.isEmpty { return flag }
        return self.reader.string(forKey: ConfigKey(key))
    }

    /// An integer setting, with an error naming the setting when it is not one. A flag's error
    /// comes with the usage; a variable's or the file's, which no usage would explain, alone.
    func int(_ flag: Int?, key: String, range: ClosedRange<Int>, default value: Int) throws -> Int {
        let rule = "must be between \(range.lowerBound) and \(range.upperBound)"
        if let flag {
            guard range.contains(flag) else { throw ValidationError("\(key): \(rule)") }
            return flag
        }
        let named = "\(key) (\(SettingsCatalog.environmentName(key)))"
        let number: Int
        if let raw = self.reader.string(forKey: ConfigKey(key)) {
            guard let parsed = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                throw StartupError("\(named): must be an integer, got '\(raw)'")
            }
            number = parsed
        } else if let parsed = self.reader.int(forKey: ConfigKey(key)) {
            number = parsed
        } else {
            return value
        }
        guard range.contains(number) else { throw StartupError("\(named): \(rule), got \(number)") }
        return number
    }

    /// A bound: an integer setting where 0 means none (nil).
    func bound(_ flag: Int?, key: String, upTo maximum: Int, default value: Int) throws -> Int? {
        let bound = try self.int(flag, key: key, range: 0...maximum, default: value)
        return bound == 0 ? nil : bound
    }

    /// A boolean setting (``SettingsCatalog/boolean(_:)`` reads the text of one).
    func bool(_ flag: Bool?, key: String, default value: Bool) throws -> Bool {
        if let flag { return flag }
        guard let raw = self.reader.string(forKey: ConfigKey(key)) else {
            return self.reader.bool(forKey: ConfigKey(key)) ?? value
        }
        guard let parsed = SettingsCatalog.boolean(raw) else {
            throw StartupError("\(key) (\(SettingsCatalog.environmentName(key))): must be true or false, got '\(raw)'")
        }
        return parsed
    }

    var dataDirectory: String { self.string(self.options.dataDir, key: "data.dir") ?? "./data" }

    func databaseLocation() throws -> DatabaseLocation {
        do {
            return try DatabaseLocation.resolve(
                databaseURL: self.string(self.options.databaseUrl, key: "database.url"), dataDirectory: self.dataDirectory
            )
        } catch let error as StoreError {
            throw ValidationError(error.message)
        }
    }

    /// This node's name among those sharing a database: `CONDUIT_NODE_ID` (key `node.id`), else
    /// the one in `node-id` in the data dir, made on first use, so that a node restarted after a
    /// crash finds the leases it held still its own.
    func nodeID(_ flag: String? = nil) throws -> String {
        if let id = self.string(flag, key: "node.id"), !id.isEmpty { return id }
        let path = (self.dataDirectory as NSString).appendingPathComponent("node-id")
        if let stored = try? String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines), !stored.isEmpty {
            return stored
        }
        let id = UUID().uuidString.lowercased()
        do {
            try FileManager.default.createDirectory(atPath: self.dataDirectory, withIntermediateDirectories: true)
            try (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw ValidationError("node.id: cannot write \(path): \(error.localizedDescription); set CONDUIT_NODE_ID instead")
        }
        return id
    }

    /// The master key: `CONDUIT_MASTER_KEY` (or `masterKey` in the file), else the key file,
    /// made on first use.
    /// The device CA that signs CSRs: `mqtt.tls.ca` with `mqtt.tls.caKey`; nil without the key.
    func deviceCA(ca caFlag: String? = nil, key keyFlag: String? = nil) throws -> DeviceCA? {
        guard let keyPath = self.string(keyFlag, key: "mqtt.tls.caKey") else { return nil }
        guard let caPath = self.string(caFlag, key: "mqtt.tls.ca") else {
            throw ValidationError("mqtt.tls.caKey: needs mqtt.tls.ca, the CA certificate the key belongs to")
        }
        guard let certificate = try? String(contentsOfFile: caPath, encoding: .utf8) else { throw ValidationError("mqtt.tls.ca: cannot read \(caPath)") }
        guard let key = try? String(contentsOfFile: keyPath, encoding: .utf8) else { throw ValidationError("mqtt.tls.caKey: cannot read \(keyPath)") }
        do {
            return try DeviceCA(certificatePEM: certificate, keyPEM: key)
        } catch let error as HubError {
            throw ValidationError(error.message)
        }
    }

    /// How the hub reaches AWS: the SDKs' credential chain, and the endpoints besides AWS's own
    /// that the operator lets integrations use (`aws.endpointAllowlist`).
    func awsEnvironment(allowlist flag: String? = nil) throws -> AWSEnvironment {
        var environment = AWSEnvironment()
        if let text = self.string(flag, key: "aws.endpointAllowlist") {
            do {
                environment.endpointAllowlist = try AWSEndpointAllowlist(parsing: text)
            } catch {
                throw ValidationError("aws.endpointAllowlist: \(error.reason)")
            }
        }
        return environment
    }

    /// How webhooks are sent: the endpoints besides public ones they may call
    /// (`webhooks.allowlist`), and how soon a failed delivery is tried again.
    func webhookEnvironment(allowlist flag: String? = nil) throws -> WebhookEnvironment {
        var environment = WebhookEnvironment()
        if let text = self.string(flag, key: "webhooks.allowlist") {
            do {
                environment.allowlist = try AWSEndpointAllowlist(parsing: text)
            } catch {
                throw ValidationError("webhooks.allowlist: \(error.reason)")
            }
            if let entry = environment.allowlist.entries.first(where: { $0.scheme == "mqtts" }) {
                throw ValidationError("webhooks.allowlist: '\(entry)' must be https or http")
            }
        }
        let first = try self.int(nil, key: "webhooks.retryFirstMilliseconds", range: 100...3_600_000, default: 5000)
        let maximum = try self.int(nil, key: "webhooks.retryMaximumSeconds", range: 1...86_400, default: 3600)
        guard Double(maximum) * 1000 >= Double(first) else {
            throw ValidationError("webhooks.retryMaximumSeconds: must be at least webhooks.retryFirstMilliseconds")
        }
        environment.retry = Backoff(first: Double(first) / 1000, maximum: Double(maximum), jitter: 0.5...1.5)
        return environment
    }

    func secretBox() throws -> SecretBox {
        do {
            if let key = self.reader.string(forKey: ConfigKey("masterKey")), !key.isEmpty {
                return try SecretBox(base64: key)
            }
            let path = self.string(self.options.masterKeyFile, key: "masterKeyFile") ?? (self.dataDirectory as NSString).appendingPathComponent("master.key")
            return try SecretBox.loadOrCreate(keyFile: path)
        } catch let error as HubError {
            throw ValidationError(error.message)
        }
    }

    func logLevel(default level: Logger.Level) throws -> Logger.Level {
        guard let raw = self.string(self.options.logLevel, key: "log.level") else { return level }
        guard let parsed = Logger.Level(rawValue: raw.lowercased()) else {
            let message = "log.level: must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(raw)'"
            throw self.options.logLevel == nil ? StartupError(message) as any Error : ValidationError(message)
        }
        return parsed
    }

    func logFormat() throws -> LogFormat {
        guard let raw = self.string(self.options.logFormat, key: "log.format") else { return .text }
        guard let parsed = LogFormat(rawValue: raw.lowercased()) else {
            let message = "log.format: must be text or json, got '\(raw)'"
            throw self.options.logFormat == nil ? StartupError(message) as any Error : ValidationError(message)
        }
        return parsed
    }
}
