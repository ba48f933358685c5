import Foundation

/// The AWS CLI's shared files, `~/.aws/config` and `~/.aws/credentials` (or the files that
/// `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` name), read as the AWS SDKs read them.
public struct AWSSharedConfiguration: Sendable, Equatable {
    /// Settings per profile name; for one profile the credentials file wins over the config file.
    public var profiles: [String: [String: String]]

    public init(profiles: [String: [String: String]] = [:]) {
        self.profiles = profiles
    }

    /// Reads both files; a missing file is no error, an unreadable one is.
    public static func load(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AWSSharedConfiguration {
        let home = environment["HOME"] ?? NSHomeDirectory()
        let configPath = environment["AWS_CONFIG_FILE"] ?? home + "/.aws/config"
        let credentialsPath = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials"
        var configuration = AWSSharedConfiguration()
        if let text = try Self.read(configPath) {
            configuration.merge(Self.parse(text, isConfigFile: true))
        }
        if let text = try Self.read(credentialsPath) {
            configuration.merge(Self.parse(text, isConfigFile: false))
        }
        return configuration
    }

    private static func read(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw AWSCredentialError.invalidConfiguration("cannot read \(path): \(error.localizedDescription)")
        }
    }

    mutating func merge(_ other: [String: [String: String]]) {
        for (name, settings) in other {
            self.profiles[name, default: [:]].merge(settings) { _, new in new }
        }
    }

    /// The INI dialect of the AWS files: `[default]`, `[profile name]` (config) or `[name]`
    /// (credentials); `key = value`; `#` and `;` comments; indented lines belong to a nested
    /// setting and are skipped.
    static func parse(_ text: String, isConfigFile: Bool) -> [String: [String: String]] {
        var profiles: [String: [String: String]] = [:]
        var current: String?
        for rawLine in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            if let first = rawLine.first, first == " " || first == "\t" { continue }
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                var name = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
                if isConfigFile {
                    if name.hasPrefix("profile ") {
                        name = name.dropFirst("profile ".count).trimmingCharacters(in: .whitespaces)
                    } else if name != "default" {
                        // `[sso-session x]`, `[services x]` and the like are not profiles.
                        current = nil
                        continue
                    }
                }
                current = name
                profiles[name, default: [:]] = profiles[name] ?? [:]
                continue
            }
            guard let section = current, let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            // An inline comment needs white space before it.
            for marker in [" #", " ;", "\t#", "\t;"] {
                if let range = value.range(of: marker) { value = value[..<range.lowerBound].trimmingCharacters(in: .whitespaces) }
            }
            profiles[section]?[key] = value
        }
        return profiles
    }

    /// The profile to use: the explicit name, else `AWS_PROFILE`, else `default`.
    public static func profileName(_ explicit: String?, environment: [String: String]) -> String {
        explicit ?? environment["AWS_PROFILE"] ?? environment["AWS_DEFAULT_PROFILE"] ?? "default"
    }
}

/// The region: explicit, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the profile's.
public enum AWSRegionResolver {
    public static func region(
        explicit: String? = nil, profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment,
        configuration: AWSSharedConfiguration? = nil
    ) throws -> String {
        if let explicit, !explicit.isEmpty { return explicit }
        for name in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
            if let value = environment[name], !value.isEmpty { return value }
        }
        let configuration = try configuration ?? AWSSharedConfiguration.load(environment: environment)
        let profileName = AWSSharedConfiguration.profileName(profile, environment: environment)
        if let region = configuration.profiles[profileName]?["region"], !region.isEmpty { return region }
        throw AWSCredentialError.noRegion(
            "no AWS region: set one explicitly, or AWS_REGION, or region in profile '\(profileName)' of ~/.aws/config"
        )
    }
}
