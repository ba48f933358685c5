import Foundation
import Hub

/// How the console writes times, payloads and JSON.
enum Formatting {
    /// `2026-12-02 07:33:05 UTC`: one zone for every reader of a shared page.
    static func time(_ date: Date?) -> String {
        guard let date else { return "" }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d-%02d-%02d %02d:%02d:%02d UTC", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
    }

    /// ISO 8601 for a `<time datetime>`.
    static func isoTime(_ date: Date?) -> String {
        guard let date else { return "" }
        return date.formatted(.iso8601)
    }

    enum PayloadView: String, CaseIterable, Sendable {
        case text, json, hex
    }

    /// The payload as the reader asked: text (when it is UTF-8), pretty JSON (when it parses), or hex.
    /// A view that does not fit the bytes falls back to the next that does.
    static func payload(_ data: Data, as view: PayloadView) -> (text: String, shownAs: PayloadView) {
        if view == .json, let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
            let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes]),
            let text = String(data: pretty, encoding: .utf8)
        {
            return (text, .json)
        }
        if view != .hex, let text = String(data: data, encoding: .utf8), !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control && !"\n\r\t".unicodeScalars.contains($0) }) {
            return (text, .text)
        }
        return (self.hex(data), .hex)
    }

    /// Bytes as spaced hex pairs, `7b 22 74 22`.
    static func hex(_ data: Data) -> String {
        data.map { String(format: "%02x", $0) }.joined(separator: " ")
    }

    /// A JSON value written for reading: sorted keys, indented.
    static func json(_ value: [String: JSONValue]) -> String {
        if value.isEmpty { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(JSONValue.object(value)) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}
