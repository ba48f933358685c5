/// A rule a string field follows, stated once: the hub checks values against it and the API's
/// OpenAPI document prints the same patterns and lengths, so the two cannot disagree.
///
/// A rule is a list of checks made in order; a value that fails one is refused with that check's
/// message, which names the rule (``HubError/invalidField(_:_:)`` adds the field).
///
/// Patterns are written in the part of regular-expression syntax that ECMA-262 (JSON Schema's
/// dialect), Python's `re` and Swift's `Regex` read alike: character classes, `\uXXXX` escapes,
/// groups, quantifiers, `^`, `$` and `(?!...)`. As in JSON Schema, a pattern may match anywhere
/// in the value, so a pattern that speaks of the whole value is anchored with `^` and `$`; and it
/// is matched on Unicode scalars, as JSON Schema counts (not on Swift's grapheme clusters).
public struct StringRule: Sendable {
    /// One check of a rule.
    public enum Check: Sendable {
        /// The value matches `pattern` (JSON Schema's `pattern`).
        case pattern(String, message: String)
        /// The value has `min...max` Unicode scalars (JSON Schema's `minLength` and `maxLength`).
        case length(min: Int?, max: Int?, message: String)
        /// The value is at most `max` bytes of UTF-8. JSON Schema cannot say it: the document
        /// carries it in words, beside a `maxLength` of the same number.
        case utf8Bytes(max: Int, message: String)
    }

    /// The checks, made in this order.
    public let checks: [Check]
    private let compiled: [CompiledPattern?]

    public init(_ checks: [Check]) {
        self.checks = checks
        self.compiled = checks.map { check in
            guard case .pattern(let pattern, _) = check else { return nil }
            return CompiledPattern(pattern)
        }
    }

    /// A rule of one pattern.
    public init(pattern: String, message: String) {
        self.init([.pattern(pattern, message: message)])
    }

    /// The message of the first check `value` fails; nil when it follows the rule.
    public func violation(_ value: String) -> String? {
        for (check, compiled) in zip(self.checks, self.compiled) {
            switch check {
            case .pattern(_, let message):
                if !compiled!.matches(value) { return message }
            case .length(let min, let max, let message):
                let count = value.unicodeScalars.count
                if let min, count < min { return message }
                if let max, count > max { return message }
            case .utf8Bytes(let max, let message):
                if value.utf8.count > max { return message }
            }
        }
        return nil
    }

    /// True when `value` follows the rule.
    public func matches(_ value: String) -> Bool { self.violation(value) == nil }

    /// Throws ``HubError/invalidField(_:_:)`` naming `field` and the check `value` fails.
    public func check(_ value: String, field: String) throws {
        if let message = self.violation(value) { throw HubError.invalidField(field, message) }
    }

    /// The patterns, in order.
    public var patterns: [String] {
        self.checks.compactMap { if case .pattern(let pattern, _) = $0 { pattern } else { nil } }
    }

    /// The tightest lengths the checks give, in Unicode scalars; a byte limit counts as a
    /// `maxLength` of the same number (a value within it is within the byte limit when it is ASCII).
    public var lengthBounds: (min: Int?, max: Int?) {
        var bounds: (min: Int?, max: Int?) = (nil, nil)
        for check in self.checks {
            switch check {
            case .length(let min, let max, _):
                if let min { bounds.min = Swift.max(bounds.min ?? 0, min) }
                if let max { bounds.max = Swift.min(bounds.max ?? .max, max) }
            case .utf8Bytes(let max, _):
                bounds.max = Swift.min(bounds.max ?? .max, max)
            case .pattern:
                break
            }
        }
        return bounds
    }

    /// The byte limit, if the rule has one.
    public var utf8ByteLimit: Int? {
        self.checks.lazy.compactMap { if case .utf8Bytes(let max, _) = $0 { max } else { nil } }.first
    }
}

/// A pattern compiled once. `Regex` is a value that is never changed once built, but is not
/// declared `Sendable`.
private final class CompiledPattern: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>

    init(_ pattern: String) {
        do {
            self.regex = try Regex(pattern).matchingSemantics(.unicodeScalar)
        } catch {
            preconditionFailure("field rule pattern \(pattern) does not compile: \(error)")
        }
    }

    /// JSON Schema's reading: a match anywhere in the value.
    func matches(_ value: String) -> Bool {
        ((try? self.regex.firstMatch(in: value)) ?? nil) != nil
    }
}
