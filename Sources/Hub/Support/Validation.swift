/// The rules for names and ids, shared by the API and the CLI. Each check throws
/// ``HubError/invalidField(_:_:)`` naming the field and the rule it broke.
public enum Validation {
    /// Device ids are AWS IoT thing names: `[a-zA-Z0-9:_-]{1,128}`, but for the names of
    /// Conduit's own downlink gateways.
    public static func deviceID(_ value: String, field: String = "id") throws {
        try self.check(
            value, field: field, maxLength: 128, allowed: { $0.isASCIILetterOrDigit || ":_-".contains($0) },
            rule: "must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"
        )
        if value.hasPrefix(self.gatewayThingPrefix) {
            throw HubError.invalidField(field, "must not start with \(self.gatewayThingPrefix) (the things of Conduit's downlink gateways)")
        }
    }

    /// The start of the thing names of integrations' downlink gateways.
    static let gatewayThingPrefix = "conduit-gateway-"

    /// True when `value` could be a device id; a path or filter that could not is answered
    /// without asking the database (which, on PostgreSQL, refuses a NUL in text outright).
    public static func isDeviceID(_ value: String) -> Bool {
        (try? self.deviceID(value)) != nil
    }

    /// True when `value` could be an id Conduit made (a token's, an integration's): printable
    /// ASCII, at most 64 bytes. Anything else is a 404 without a query.
    public static func isOpaqueIdentifier(_ value: String) -> Bool {
        !value.isEmpty && value.utf8.count <= 64 && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Tenant names: `[a-z0-9][a-z0-9-]{0,62}`.
    public static func tenantName(_ value: String, field: String = "name") throws {
        let rule = "must match [a-z0-9][a-z0-9-]{0,62}"
        try self.check(
            value, field: field, maxLength: 63, allowed: { ($0.isASCII && $0.isLowercase) || $0.isASCIIDigit || $0 == "-" },
            rule: rule
        )
        if value.first == "-" { throw HubError.invalidField(field, rule) }
    }

    /// Labels: `[a-zA-Z0-9:_.-]{1,64}`.
    public static func label(_ value: String, field: String) throws {
        try self.check(
            value, field: field, maxLength: 64, allowed: { $0.isASCIILetterOrDigit || ":_.-".contains($0) },
            rule: "must match [a-zA-Z0-9:_.-]{1,64}"
        )
    }

    /// Attribute keys follow AWS IoT's thing attribute keys: `[a-zA-Z0-9_.,@/:#-]{1,128}`.
    public static func attributeKey(_ value: String, field: String) throws {
        try self.check(
            value, field: field, maxLength: 128, allowed: { $0.isASCIILetterOrDigit || "_.,@/:#-".contains($0) },
            rule: "attribute names must match [a-zA-Z0-9_.,@/:#-]{1,128}"
        )
    }

    /// Display names: 1 to 256 characters after trimming, no control characters.
    public static func displayName(_ value: String, field: String = "name") throws -> String {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw HubError.invalidField(field, "must not be empty") }
        guard trimmed.count <= 256 else { throw HubError.invalidField(field, "must be at most 256 characters") }
        guard !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw HubError.invalidField(field, "must not contain control characters")
        }
        return trimmed
    }

    /// Labels: each valid, at most 32; returned sorted without duplicates.
    public static func labels(_ values: [String], field: String = "labels") throws -> [String] {
        for (index, label) in values.enumerated() {
            try self.label(label, field: "\(field)[\(index)]")
        }
        let unique = Array(Set(values)).sorted()
        guard unique.count <= 32 else { throw HubError.invalidField(field, "at most 32 labels") }
        return unique
    }

    /// Attributes: at most 50, valid keys, string values of at most 800 characters (AWS's limit).
    public static func attributes(_ values: [String: String], field: String = "attributes") throws {
        guard values.count <= 50 else { throw HubError.invalidField(field, "at most 50 attributes") }
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            try self.attributeKey(key, field: "\(field).\(key)")
            guard value.count <= 800 else { throw HubError.invalidField("\(field).\(key)", "must be at most 800 characters") }
        }
    }

    private static func check(
        _ value: String, field: String, maxLength: Int, allowed: (Character) -> Bool, rule: String
    ) throws {
        guard !value.isEmpty, value.count <= maxLength, value.allSatisfy(allowed) else {
            throw HubError.invalidField(field, rule)
        }
    }
}

extension Character {
    var isASCIILetterOrDigit: Bool { self.isASCII && (self.isLetter || self.isNumber) }
    var isASCIIDigit: Bool { self.isASCII && self.isNumber }
}
