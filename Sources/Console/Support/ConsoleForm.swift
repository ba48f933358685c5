import Foundation
import Hub
import Hummingbird

/// A submitted `application/x-www-form-urlencoded` form: every value of every field, in order,
/// so that checkboxes sharing a name (a list's selected rows) all arrive.
struct ConsoleForm: Sendable {
    /// Forms are small; an upload past this is refused as the API refuses large bodies.
    static let maxSize = 1 << 20

    private(set) var fields: [(name: String, value: String)] = []

    init(_ body: String) {
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decode(parts[0])
            let value = parts.count > 1 ? Self.decode(parts[1]) : ""
            self.fields.append((name, value))
        }
    }

    /// Reads the request's body (collected, so that it can be read again later in the chain).
    init(request: inout Request, context: some RequestContext) async throws {
        let buffer = try await request.collectBody(upTo: Self.maxSize)
        self.init(String(buffer: buffer))
    }

    /// The first value of the field, as sent (nil when absent).
    func raw(_ name: String) -> String? {
        self.fields.first { $0.name == name }?.value
    }

    /// The first value, trimmed; nil when absent or blank.
    func string(_ name: String) -> String? {
        guard let value = self.raw(name)?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        return value
    }

    /// Every value of the field, in order.
    func all(_ name: String) -> [String] {
        self.fields.filter { $0.name == name }.map(\.value)
    }

    /// A checkbox: present means on.
    func checked(_ name: String) -> Bool { self.raw(name) != nil }

    /// Comma-separated values, trimmed, blanks dropped.
    func list(_ name: String) -> [String] {
        (self.raw(name) ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// `key=value` lines: a device's attributes.
    func keyValues(_ name: String, field: String) throws -> [String: String] {
        var result: [String: String] = [:]
        for (index, line) in (self.raw(name) ?? "").split(whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let equals = trimmed.firstIndex(of: "=") else {
                throw HubError.invalidField(field, "line \(index + 1) must be key=value")
            }
            result[String(trimmed[..<equals]).trimmingCharacters(in: .whitespaces)] =
                String(trimmed[trimmed.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
        }
        return result
    }

    private static func decode(_ part: Substring) -> String {
        String(part).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(part)
    }
}
