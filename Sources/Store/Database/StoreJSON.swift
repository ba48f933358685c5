import Foundation
import SQLKit

/// Values kept as JSON text in one column (labels, settings, progress): the same type on both
/// engines, and stable output (sorted keys) so that equal values are equal strings.
enum StoreJSON {
    static func encode(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

extension SQLRow {
    /// A JSON text column decoded as `type`.
    func decodeJSON<T: Decodable>(column: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(try self.decode(column: column, as: String.self).utf8))
    }
}
