import Foundation
import Hub

/// Every setting Conduit reads, by its config file key: the one list that the config file, the
/// `CONDUIT_*` variables and the help text are checked against, so that a typo is caught rather
/// than silently ignored.
enum SettingsCatalog {
    enum Kind: Sendable {
        case string, integer, boolean

        var name: String {
            switch self {
            case .string: "a string"
            case .integer: "an integer"
            case .boolean: "true or false"
            }
        }
    }

    struct Setting: Sendable {
        let key: String
        let kind: Kind
        var environmentName: String { SettingsCatalog.environmentName(self.key) }
    }

    static let all: [Setting] = [
        .init(key: "data.dir", kind: .string), .init(key: "database.url", kind: .string),
        .init(key: "masterKeyFile", kind: .string), .init(key: "masterKey", kind: .string),
        .init(key: "log.level", kind: .string), .init(key: "log.format", kind: .string),
        .init(key: "http.host", kind: .string), .init(key: "http.port", kind: .integer), .init(key: "http.idleTimeout", kind: .integer),
        .init(key: "mqtt.host", kind: .string), .init(key: "mqtt.port", kind: .integer),
        .init(key: "mqtt.anonymous", kind: .boolean), .init(key: "mqtt.tls.port", kind: .integer),
        .init(key: "mqtt.tls.cert", kind: .string), .init(key: "mqtt.tls.key", kind: .string),
        .init(key: "mqtt.tls.ca", kind: .string), .init(key: "mqtt.tls.caKey", kind: .string), .init(key: "mqtt.tls.requireClientCert", kind: .boolean),
        .init(key: "mqtt.maxKeepAlive", kind: .integer), .init(key: "mqtt.maxInflight", kind: .integer),
        .init(key: "mqtt.maxPacketSize", kind: .integer),
        .init(key: "mqtt.maxSubscriptions", kind: .integer),
        .init(key: "mqtt.maxRetained", kind: .integer),
        .init(key: "mqtt.maxRetainedBytes", kind: .integer),
        .init(key: "mqtt.maxQueuedBytes", kind: .integer),
        .init(key: "mqtt.maxConnectionsPerAddress", kind: .integer),
        .init(key: "mqtt.connectRate", kind: .integer),
        .init(key: "mqtt.maxConnectSize", kind: .integer),
        .init(key: "mqtt.loginFailures", kind: .integer),
        .init(key: "messageHistory", kind: .integer), .init(key: "aws.reconcileInterval", kind: .integer),
        .init(key: "aws.endpointAllowlist", kind: .string),
        .init(key: "uplink.backlogLimit", kind: .integer), .init(key: "uplink.deviceWindow", kind: .integer), .init(key: "node.id", kind: .string),
        .init(key: "webhooks.allowlist", kind: .string), .init(key: "webhooks.retryFirstMilliseconds", kind: .integer),
        .init(key: "webhooks.retryMaximumSeconds", kind: .integer),
    ]

    /// The variable that names the config file; it has no key of its own.
    static let configVariable = "CONDUIT_CONFIG"

    static func setting(_ key: String) -> Setting? { self.all.first { $0.key == key } }

    /// The help text of a setting's flag: what it means, its default, its variable and its key,
    /// in one sentence each, for argument-parser to wrap.
    static func help(_ meaning: String, key: String, default value: String? = nil) -> String {
        precondition(self.setting(key) != nil, "\(key) is not in SettingsCatalog.all")
        var text = meaning.hasSuffix(".") ? meaning : meaning + "."
        if let value { text += " Default: \(value)." }
        return text + " Env: \(self.environmentName(key)); key: \(key)."
    }

    /// `mqtt.tls.requireClientCert` -> `CONDUIT_MQTT_TLS_REQUIRE_CLIENT_CERT`, as swift-configuration reads it.
    static func environmentName(_ key: String) -> String {
        var name = "CONDUIT_"
        var previousWasLower = false
        for character in key {
            if character == "." {
                name.append("_")
                previousWasLower = false
            } else {
                if character.isUppercase && previousWasLower { name.append("_") }
                name.append(contentsOf: character.uppercased())
                previousWasLower = character.isLowercase
            }
        }
        return name
    }

    // MARK: Checking a config file and the environment

    /// The problems of a config file's JSON: unknown keys (with the nearest known one) and
    /// values of the wrong type (with their key). Empty when the file is good.
    static func problems(inConfig document: JSONValue, file: String) -> [String] {
        guard case .object(let root) = document else {
            return ["config: '\(file)' must hold a JSON object of settings, e.g. {\"http\": {\"port\": 8080}}"]
        }
        var problems: [String] = []
        func walk(_ object: [String: JSONValue], prefix: String) {
            for name in object.keys.sorted() {
                let key = prefix.isEmpty ? name : prefix + "." + name
                let value = object[name]!
                if let setting = self.setting(key) {
                    if !self.fits(value, kind: setting.kind) {
                        problems.append("config: \(key) in '\(file)' must be \(setting.kind.name), got \(self.describe(value))")
                    }
                } else if case .object(let nested) = value, self.all.contains(where: { $0.key.hasPrefix(key + ".") }) {
                    walk(nested, prefix: key)
                } else {
                    problems.append("config: unknown key '\(key)' in '\(file)'\(self.suggestion(for: key, among: self.all.map(\.key)))")
                }
            }
        }
        walk(root, prefix: "")
        return problems
    }

    /// Warnings for `CONDUIT_*` variables that name no setting, each with the nearest known one.
    static func unknownVariables(in environment: [String: String]) -> [String] {
        let known = Set(self.all.map(\.environmentName) + [self.configVariable])
        return environment.keys.filter { $0.hasPrefix("CONDUIT_") && !known.contains($0) }.sorted().map { name in
            "\(name) is not a Conduit setting and is ignored\(self.suggestion(for: name, among: known.sorted()))"
        }
    }

    /// Whether a config file's value is of the setting's kind; numbers and booleans may also be
    /// written as strings, as the environment gives them.
    static func fits(_ value: JSONValue, kind: Kind) -> Bool {
        switch (kind, value) {
        case (.string, .string), (.integer, .integer), (.boolean, .bool): true
        case (.integer, .string(let text)): Int(text.trimmingCharacters(in: .whitespaces)) != nil
        case (.boolean, .string(let text)): self.boolean(text) != nil
        default: false
        }
    }

    /// A boolean written as text, as a variable gives it: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    static func boolean(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "true", "1", "yes", "on": true
        case "false", "0", "no", "off": false
        default: nil
        }
    }

    private static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .integer(let number): "\(number)"
        case .number(let number): "\(number)"
        case .string(let text): "\"\(text)\""
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// `" (did you mean 'http.port'?)"`, or nothing when no known name is close.
    static func suggestion(for name: String, among known: [String]) -> String {
        guard let nearest = self.nearest(to: name, among: known) else { return "" }
        return " (did you mean '\(nearest)'?)"
    }

    /// The known name nearest to `name`: by edit distance over the whole name, or over its last
    /// part (so `prot` finds `http.port`), when the distance is small beside the name's length.
    static func nearest(to name: String, among known: [String]) -> String? {
        let lowered = name.lowercased()
        let last = lowered.split(whereSeparator: { $0 == "." || $0 == "_" }).last.map(String.init) ?? lowered
        var best: (name: String, distance: Int)?
        for candidate in known {
            let lowerCandidate = candidate.lowercased()
            let candidateLast = lowerCandidate.split(whereSeparator: { $0 == "." || $0 == "_" }).last.map(String.init) ?? lowerCandidate
            let whole = self.distance(lowered, lowerCandidate)
            let tail = self.distance(last, candidateLast) + (lowered.contains(".") || lowered.contains("_") ? 1 : 0)
            let distance = min(whole, tail)
            let limit = max(2, min(lowered.count, lowerCandidate.count) / 3)
            if distance <= limit, distance < (best?.distance ?? .max) { best = (candidate, distance) }
        }
        return best?.name
    }

    /// Levenshtein distance, with a swap of two neighbours counted as one edit.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}
