/// The SQL engine behind a store; the few statements that differ between them ask it.
public enum SQLDialectKind: String, Sendable {
    case sqlite
    case postgres

    /// Column definition for a 64-bit auto-incrementing primary key.
    var identityPrimaryKey: String {
        switch self {
        case .sqlite: "INTEGER PRIMARY KEY AUTOINCREMENT"
        case .postgres: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        }
    }

    /// The statement that opens a write transaction. SQLite's `IMMEDIATE` takes the write lock at
    /// once, so two writers queue on the busy timeout instead of failing on a lock upgrade.
    var beginTransaction: String {
        switch self {
        case .sqlite: "BEGIN IMMEDIATE"
        case .postgres: "BEGIN"
        }
    }

    /// Suffix that locks the selected rows until the transaction ends (SQLite's write lock already does).
    var forUpdate: String {
        switch self {
        case .sqlite: ""
        case .postgres: " FOR UPDATE"
        }
    }
}
