import SQLKit

extension SQLQueryString {
    /// Ends a query over a table with a `seq` identity column: rows older than `before` (when
    /// given), newest first, at most `limit` of them.
    mutating func appendNewestFirst(before: Int?, limit: Int) {
        if let before {
            self.appendLiteral(" AND seq < ")
            self.appendInterpolation(bind: before)
        }
        self.appendLiteral(" ORDER BY seq DESC LIMIT ")
        self.appendInterpolation(bind: limit)
    }
}

extension SQLQueryString {
    /// Appends `?, ?, ...` binding each value: the inside of an `IN (...)`.
    mutating func appendBindList(_ values: [some Encodable & Sendable]) {
        for (index, value) in values.enumerated() {
            if index > 0 { self.appendLiteral(", ") }
            self.appendInterpolation(bind: value)
        }
    }

    /// Appends `(?, ?, ...)`, one bind per value: a row of an INSERT's VALUES.
    mutating func appendRow(_ values: [any Encodable & Sendable]) {
        self.appendLiteral("(")
        for (index, value) in values.enumerated() {
            if index > 0 { self.appendLiteral(", ") }
            self.appendInterpolation(bind: value)
        }
        self.appendLiteral(")")
    }
}
