import Hub
import Hummingbird

/// Query parameters read as the document states them: a parameter that is present is checked,
/// an empty one too (`?label=` is not "no label", it is a label that breaks the rule).
extension Request {
    /// A query parameter following `rule`; nil when absent.
    func query(_ name: String, rule: StringRule) throws -> String? {
        guard let value = self.uri.queryParameters.get(name) else { return nil }
        try rule.check(value, field: name)
        return value
    }

    /// A query parameter that is one of `values`; nil when absent.
    func query(_ name: String, oneOf values: [String]) throws -> String? {
        guard let value = self.uri.queryParameters.get(name) else { return nil }
        guard values.contains(value) else { throw HubError.invalidField(name, "must be one of \(values.joined(separator: ", "))") }
        return value
    }

    /// `limit` and `cursor` from the query, the cursor checked against the list's rule (the one
    /// the document states for it).
    func pageRequest(cursor rule: StringRule) throws -> PageRequest {
        try self.pageRequest(limit: "limit", cursor: "cursor", rule: rule)
    }

    /// `limit` and the cursor named `cursor` (or the first of several names that is present).
    func pageRequest(limit: String, cursor names: String..., rule: StringRule) throws -> PageRequest {
        var cursor: String?
        for name in names {
            if let value = try self.query(name, rule: rule) {
                cursor = value
                break
            }
        }
        var count: Int?
        if let raw = self.uri.queryParameters.get(limit) {
            guard let value = Int(raw) else { throw HubError.invalidField(limit, "must be an integer") }
            count = value
        }
        return try PageRequest(limit: count, cursor: cursor)
    }
}
