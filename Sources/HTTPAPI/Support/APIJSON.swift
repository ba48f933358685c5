import Foundation

/// JSON as the API writes it: camelCase keys, ISO 8601 times in UTC with milliseconds.
enum APIJSON {
    /// The largest request body accepted (1 MiB).
    static let maxBodySize = 1 << 20

    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(timestamp(date))
        }
        return encoder
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
