import Foundation

/// AWS IoT's own rules, checked before a request leaves: a bad name is refused with the rule it
/// broke instead of a round trip and a 400.
public struct AWSIoTValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let rule: String

    public init(field: String, rule: String) {
        self.field = field
        self.rule = rule
    }

    public var description: String { "\(self.field): \(self.rule)" }
}

public enum AWSIoTValidation {
    static func check(_ value: String, field: String, maximum: Int, allowed: (UInt8) -> Bool, rule: String) throws {
        guard !value.isEmpty, value.utf8.count <= maximum, value.utf8.allSatisfy(allowed) else {
            throw AWSIoTValidationError(field: field, rule: rule)
        }
    }

    static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }

    static func allowing(_ extra: String) -> (UInt8) -> Bool {
        let extra = Set(extra.utf8)
        return { isAlphanumeric($0) || extra.contains($0) }
    }

    /// Thing names: `[a-zA-Z0-9:_-]{1,128}`.
    public static func thingName(_ name: String, field: String = "thingName") throws {
        try check(name, field: field, maximum: 128, allowed: allowing(":_-"), rule: "must match [a-zA-Z0-9:_-]{1,128}")
    }

    /// Thing group names: `[a-zA-Z0-9:_-]{1,128}`.
    public static func thingGroupName(_ name: String, field: String = "thingGroupName") throws {
        try check(name, field: field, maximum: 128, allowed: allowing(":_-"), rule: "must match [a-zA-Z0-9:_-]{1,128}")
    }

    /// Policy names: `[\w+=,.@-]{1,128}`.
    public static func policyName(_ name: String, field: String = "policyName") throws {
        try check(name, field: field, maximum: 128, allowed: allowing("_+=,.@-"), rule: "must match [\\w+=,.@-]{1,128}")
    }

    /// Thing attributes: at most 3 without a thing type; names `[a-zA-Z0-9_.,@/:#-]{1,128}`,
    /// values `[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}`.
    public static func attributes(_ attributes: [String: String], field: String = "attributes") throws {
        guard attributes.count <= 3 else {
            throw AWSIoTValidationError(field: field, rule: "at most 3 attributes for a thing without a thing type")
        }
        for (name, value) in attributes.sorted(by: { $0.key < $1.key }) {
            try check(name, field: "\(field).\(name)", maximum: 128, allowed: allowing("_.,@/:#-"), rule: "attribute names must match [a-zA-Z0-9_.,@/:#-]{1,128}")
            if !value.isEmpty {
                try check(value, field: "\(field).\(name)", maximum: 800, allowed: allowing("_.,@/:#=[]-"), rule: "attribute values must match [a-zA-Z0-9_.,@/:#=\\[\\]-]{0,800}")
            }
        }
    }

    /// Policy documents: a JSON object with a `Statement`, at most 2048 characters without white space.
    public static func policyDocument(_ document: String, field: String = "policyDocument") throws {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(document.utf8))) as? [String: Any] else {
            throw AWSIoTValidationError(field: field, rule: "must be a JSON object")
        }
        guard object["Statement"] != nil else { throw AWSIoTValidationError(field: field, rule: "must have a Statement") }
        guard document.filter({ !$0.isWhitespace }).count <= 2048 else {
            throw AWSIoTValidationError(field: field, rule: "must be at most 2048 characters, white space excluded")
        }
    }

    /// Shadow names: `[a-zA-Z0-9:_-]{1,64}`.
    public static func shadowName(_ name: String, field: String = "shadowName") throws {
        try check(name, field: field, maximum: 64, allowed: allowing(":_-"), rule: "must match [a-zA-Z0-9:_-]{1,64}")
    }

    /// Topic names for a publish: 1 to 256 bytes, at most 7 slashes, no wildcards.
    public static func publishTopic(_ topic: String, field: String = "topic") throws {
        guard !topic.isEmpty, topic.utf8.count <= 256 else { throw AWSIoTValidationError(field: field, rule: "must be 1 to 256 bytes") }
        // One pass over the bytes: this runs for every message a device sends (Foundation's
        // contains(_:) for the wildcards cost the uplink path a string search each).
        var slashes = 0
        var wildcard = false
        for byte in topic.utf8 {
            switch byte {
            case UInt8(ascii: "/"): slashes += 1
            case UInt8(ascii: "+"), UInt8(ascii: "#"): wildcard = true
            default: break
            }
        }
        guard slashes <= 7 else {
            throw AWSIoTValidationError(field: field, rule: "must have at most 7 forward slashes (8 levels)")
        }
        guard !wildcard else {
            throw AWSIoTValidationError(field: field, rule: "must not contain the wildcards + or # in a publish")
        }
    }

    /// The largest message AWS IoT takes: 128 KiB.
    public static let maximumPayloadSize = 128 * 1024

    /// Message payloads: at most 128 KB.
    public static func payload(_ payload: [UInt8], field: String = "payload") throws {
        guard payload.count <= Self.maximumPayloadSize else { throw AWSIoTValidationError(field: field, rule: "must be at most 128 KB (131072 bytes)") }
    }
}
