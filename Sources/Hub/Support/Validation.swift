/// The rules for names and ids, shared by the API and the CLI; each is a ``FieldRules`` rule, which
/// the OpenAPI document prints too. Each check throws ``HubError/invalidField(_:_:)`` naming the
/// field and the rule it broke.
public enum Validation {
    /// Device ids are AWS IoT thing names: `[a-zA-Z0-9:_-]{1,128}`, but for the names of
    /// Conduit's own downlink gateways.
    public static func deviceID(_ value: String, field: String = "id") throws {
        try FieldRules.deviceID.check(value, field: field)
    }

    /// The start of the thing names of integrations' downlink gateways.
    static let gatewayThingPrefix = "conduit-gateway-"

    /// True when `value` could be a device id; a path or filter that could not is answered
    /// without asking the database (which, on PostgreSQL, refuses a NUL in text outright).
    public static func isDeviceID(_ value: String) -> Bool {
        FieldRules.deviceID.matches(value)
    }

    /// True when `value` could be an id Conduit made (a token's, an integration's): printable
    /// ASCII, at most 64 bytes. Anything else is a 404 without a query.
    public static func isOpaqueIdentifier(_ value: String) -> Bool {
        FieldRules.opaqueIdentifier.matches(value)
    }

    /// Tenant names: `[a-z0-9][a-z0-9-]{0,62}`.
    public static func tenantName(_ value: String, field: String = "name") throws {
        try FieldRules.tenantName.check(value, field: field)
    }

    /// Labels: `[a-zA-Z0-9:_.-]{1,64}`.
    public static func label(_ value: String, field: String) throws {
        try FieldRules.label.check(value, field: field)
    }

    /// Attribute keys follow AWS IoT's thing attribute keys: `[a-zA-Z0-9_.,@/:#-]{1,128}`.
    public static func attributeKey(_ value: String, field: String) throws {
        try FieldRules.attributeKey.check(value, field: field)
    }

    /// Display names: not blank, at most 256 characters, no control characters; returned
    /// without the spaces around them.
    public static func displayName(_ value: String, field: String = "name") throws -> String {
        try FieldRules.displayName.check(value, field: field)
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        // The rule's blank characters are these; were they ever not, a blank name still stops here.
        guard !trimmed.isEmpty else { throw HubError.invalidField(field, "must not be empty") }
        return trimmed
    }

    /// Labels: each valid, at most 32 given; returned sorted without duplicates.
    public static func labels(_ values: [String], field: String = "labels") throws -> [String] {
        // Counted as given, duplicates too, as the document's maxItems counts them.
        guard values.count <= FieldRules.maximumLabels else {
            throw HubError.invalidField(field, "at most \(FieldRules.maximumLabels) labels")
        }
        for (index, label) in values.enumerated() {
            try self.label(label, field: "\(field)[\(index)]")
        }
        return Array(Set(values)).sorted()
    }

    /// Attributes: at most 50, valid keys, string values of at most 800 characters (AWS's limit).
    public static func attributes(_ values: [String: String], field: String = "attributes") throws {
        guard values.count <= FieldRules.maximumAttributes else {
            throw HubError.invalidField(field, "at most \(FieldRules.maximumAttributes) attributes")
        }
        for (key, value) in values.sorted(by: { $0.key < $1.key }) {
            try self.attributeKey(key, field: "\(field).\(key)")
            try FieldRules.attributeValue.check(value, field: "\(field).\(key)")
        }
    }
}
