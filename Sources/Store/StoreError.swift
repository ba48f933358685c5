import PostgresNIO
import SQLiteNIO

/// An error from the store that callers can act on.
public struct StoreError: Error, Sendable, CustomStringConvertible, Equatable {
    enum Kind: Sendable, Equatable {
        case conflict
        case invalidConfiguration
        case unavailable
        case schemaTooNew
        case corrupt
    }

    let kind: Kind
    /// What went wrong, fit for an operator.
    public let message: String

    /// A row with the same unique key exists already.
    public static func conflict(_ message: String) -> StoreError { StoreError(kind: .conflict, message: message) }
    /// The database location or URL is unusable.
    public static func invalidConfiguration(_ message: String) -> StoreError {
        StoreError(kind: .invalidConfiguration, message: message)
    }
    /// The database cannot be reached or opened.
    public static func unavailable(_ message: String) -> StoreError { StoreError(kind: .unavailable, message: message) }
    /// The database was migrated by a newer Conduit.
    public static func schemaTooNew(_ message: String) -> StoreError { StoreError(kind: .schemaTooNew, message: message) }
    /// A stored value cannot be read back.
    public static func corrupt(_ message: String) -> StoreError { StoreError(kind: .corrupt, message: message) }

    /// True when a unique key was violated.
    public var isConflict: Bool { self.kind == .conflict }

    public var description: String { self.message }

    /// Turns a driver's unique-key violation into ``conflict(_:)``; other errors pass through.
    static func mapping(_ error: any Error) -> any Error {
        if isUniqueViolation(error) { return StoreError.conflict("a row with the same key exists") }
        return error
    }

    /// True when PostgreSQL gave up the transaction to let another go on, and running it again
    /// is the cure: a deadlock (40P01, two transactions locking the same rows in opposite orders,
    /// as a device's change and its provisioning step may) or a serialization failure (40001).
    static func isTransient(_ error: any Error) -> Bool {
        guard let error = error as? PSQLError, let state = error.serverInfo?[.sqlState] else { return false }
        return state == "40P01" || state == "40001"
    }

    /// True when `error` is SQLite's or PostgreSQL's unique-key violation.
    static func isUniqueViolation(_ error: any Error) -> Bool {
        if let error = error as? SQLiteError {
            switch error.reason {
            case .constraintUniqueFailed, .constraintPrimaryKeyFailed: return true
            case .constraint: return error.message.contains("UNIQUE") || error.message.contains("PRIMARY KEY")
            default: return false
            }
        }
        if let error = error as? PSQLError {
            return error.serverInfo?[.sqlState] == "23505"
        }
        return false
    }
}
