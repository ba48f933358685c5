import Foundation

/// Where the store lives: a SQLite file (the default) or a PostgreSQL server.
public enum DatabaseLocation: Sendable, Equatable, CustomStringConvertible {
    /// A SQLite database file; its folder is created when missing.
    case sqlite(path: String)
    /// A PostgreSQL server, as a `postgres://` or `postgresql://` URL; `searchPath` scopes it to schemas.
    case postgres(url: String, searchPath: [String]? = nil)

    /// The location for a `--database-url` value, or for the default file under `dataDirectory`.
    ///
    /// Accepted: `postgres://…`, `postgresql://…`, `sqlite:///absolute/path`, `sqlite://relative/path`,
    /// `sqlite:path`, or nothing (then `dataDirectory/conduit.sqlite`).
    public static func resolve(databaseURL: String?, dataDirectory: String) throws -> DatabaseLocation {
        guard let url = databaseURL?.trimmingCharacters(in: .whitespaces), !url.isEmpty else {
            return .sqlite(path: (dataDirectory as NSString).appendingPathComponent("conduit.sqlite"))
        }
        let lowered = url.lowercased()
        if lowered.hasPrefix("postgres://") || lowered.hasPrefix("postgresql://") {
            return .postgres(url: url)
        }
        for prefix in ["sqlite://", "sqlite:"] where lowered.hasPrefix(prefix) {
            let path = String(url.dropFirst(prefix.count))
            guard !path.isEmpty else { break }
            return .sqlite(path: path)
        }
        throw StoreError.invalidConfiguration(
            "database URL: must start with postgres://, postgresql:// or sqlite: (got '\(DatabaseLocation.redacted(url))')"
        )
    }

    public var description: String {
        switch self {
        case .sqlite(let path): "sqlite:\(path)"
        case .postgres(let url, _): DatabaseLocation.redacted(url)
        }
    }

    /// The URL with any password replaced, fit for logs and error messages.
    static func redacted(_ url: String) -> String {
        if var components = URLComponents(string: url) {
            guard components.password != nil else { return url }
            components.password = "***"
            if let string = components.string { return string }
        }
        // Not parseable: hide everything between the scheme and the host rather than risk a password.
        guard let scheme = url.range(of: "://"), let at = url.range(of: "@", options: .backwards), scheme.upperBound <= at.lowerBound
        else { return url.contains("@") ? "<unparseable URL>" : url }
        return String(url[..<scheme.upperBound]) + "***" + String(url[at.lowerBound...])
    }
}
