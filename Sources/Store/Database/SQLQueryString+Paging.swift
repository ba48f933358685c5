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
