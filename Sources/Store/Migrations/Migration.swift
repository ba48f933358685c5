/// One numbered step of the schema. Steps are applied in order, each once, and never edited
/// after release: a change to the schema is a new step.
public struct Migration: Sendable {
    public let version: Int
    public let name: String
    let statements: @Sendable (SQLDialectKind) -> [String]

    init(version: Int, name: String, statements: @escaping @Sendable (SQLDialectKind) -> [String]) {
        self.version = version
        self.name = name
        self.statements = statements
    }
}
