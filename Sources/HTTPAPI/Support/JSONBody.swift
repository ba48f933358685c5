import Foundation
import Hub
import Hummingbird

/// A request's JSON object body, read field by field: a missing field is nil, a field of the
/// wrong type or an unknown field is a 400 that names it.
struct JSONBody {
    let fields: [String: JSONValue]
    /// Where this object sits in the body (`credentials.`), for naming fields in errors.
    let prefix: String

    /// Reads the body (413 over ``APIJSON/maxBodySize``) and parses it as one JSON object.
    init(request: Request, context: ConduitRequestContext, allowed: Set<String>) async throws {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        try self.init(bytes: buffer.readableBytesView, allowed: allowed)
    }

    /// Parses a body's bytes as one JSON object, as ``init(request:context:allowed:)`` does once it has them.
    init(bytes: some Collection<UInt8>, allowed: Set<String>) throws {
        guard !bytes.isEmpty else {
            throw HubError.invalidField("body", "must be a JSON object")
        }
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(bytes))
        } catch {
            throw HubError.invalidField("body", "is not valid JSON")
        }
        guard case .object(let fields) = value else {
            throw HubError.invalidField("body", "must be a JSON object, not \(value.typeName)")
        }
        try self.init(fields: fields, prefix: "", allowed: allowed)
    }

    private init(fields: [String: JSONValue], prefix: String, allowed: Set<String>) throws {
        if let unknown = fields.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw HubError.invalidField(prefix + unknown, "unknown field; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
        self.fields = fields
        self.prefix = prefix
    }

    /// A nested object, read the same way; nil when absent or null.
    func object(_ key: String, allowed: Set<String>) throws -> JSONBody? {
        switch self.fields[key] {
        case nil, .null: return nil
        case .object(let fields): return try JSONBody(fields: fields, prefix: self.prefix + key + ".", allowed: allowed)
        case let other?: throw HubError.invalidField(self.prefix + key, "must be an object, not \(other.typeName)")
        }
    }

    func bool(_ key: String) throws -> Bool? {
        switch self.fields[key] {
        case nil, .null: return nil
        case .bool(let value): return value
        case let other?: throw HubError.invalidField(self.prefix + key, "must be true or false, not \(other.typeName)")
        }
    }

    /// A whole number.
    func int(_ key: String) throws -> Int? {
        switch self.fields[key] {
        case nil, .null: return nil
        // `magnitude`, not `abs`: abs(Int64.min) traps, and a body with -9223372036854775808
        // stopped the server (found by Fuzz/FuzzJSONBody).
        case .integer(let value) where value.magnitude < 1_000_000_000_000_000: return Int(value)
        case .number(let value) where value.rounded() == value && abs(value) < 1e15: return Int(value)
        case let other?: throw HubError.invalidField(self.prefix + key, "must be a whole number, not \(other.typeName)")
        }
    }

    /// A JSON object as it was sent, its members of any type (null included).
    func anyObject(_ key: String) throws -> [String: JSONValue]? {
        switch self.fields[key] {
        case nil: return nil
        case .object(let members): return members
        case let other?: throw HubError.invalidField(self.prefix + key, "must be an object, not \(other.typeName)")
        }
    }

    /// Present and null: the caller asks to clear the field.
    func isNull(_ key: String) -> Bool { self.fields[key] == .null }

    /// True when the field is present, even as null.
    func has(_ key: String) -> Bool { self.fields[key] != nil }

    func string(_ key: String) throws -> String? {
        switch self.fields[key] {
        case nil, .null: return nil
        case .string(let value): return value
        case let other?: throw HubError.invalidField(self.prefix + key, "must be a string, not \(other.typeName)")
        }
    }

    func requiredString(_ key: String) throws -> String {
        guard let value = try self.string(key) else { throw HubError.invalidField(self.prefix + key, "is required") }
        return value
    }

    func stringArray(_ key: String) throws -> [String]? {
        switch self.fields[key] {
        case nil, .null: return nil
        case .array(let values):
            return try values.enumerated().map { index, value in
                guard case .string(let string) = value else {
                    throw HubError.invalidField("\(self.prefix)\(key)[\(index)]", "must be a string, not \(value.typeName)")
                }
                return string
            }
        case let other?: throw HubError.invalidField(self.prefix + key, "must be an array of strings, not \(other.typeName)")
        }
    }

    /// An object of string values; with `nullable`, a null value is kept as nil (JSON merge patch removal).
    func stringMap(_ key: String, nullable: Bool = false) throws -> [String: String?]? {
        switch self.fields[key] {
        case nil, .null: return nil
        case .object(let values):
            var result: [String: String?] = [:]
            for (name, value) in values {
                switch value {
                case .string(let string): result[name] = .some(string)
                case .null where nullable: result[name] = .some(nil)
                default:
                    throw HubError.invalidField(
                        "\(self.prefix)\(key).\(name)", "must be a string\(nullable ? " or null" : ""), not \(value.typeName)"
                    )
                }
            }
            return result
        case let other?: throw HubError.invalidField(self.prefix + key, "must be an object of strings, not \(other.typeName)")
        }
    }
}

/// The body reader without a request, for the libFuzzer target in `Fuzz/` (scripts/fuzz); the
/// server never calls it.
public enum JSONBodyFuzzing {
    /// Parses `bytes` as a route parses its body, allowing `allowed`, then reads every field, and
    /// every field of a nested object (allowing `allowed` again), with each reader routes use.
    ///
    /// - Returns: the fields some reader got a value from, nested ones as `outer.inner`.
    /// - Throws: what a route answers for the body as a whole: not JSON, not an object, an unknown field.
    public static func readEveryField(_ bytes: [UInt8], allowed: Set<String>) throws -> [String] {
        var accepted: [String] = []
        Self.readEveryField(of: try JSONBody(bytes: bytes, allowed: allowed), allowed: allowed, into: &accepted)
        return accepted
    }

    private static func readEveryField(of body: JSONBody, allowed: Set<String>, into accepted: inout [String]) {
        for key in body.fields.keys.sorted() {
            let reads: [() throws -> Any?] = [
                { try body.bool(key) }, { try body.int(key) }, { try body.string(key) }, { try body.requiredString(key) },
                { try body.stringArray(key) }, { try body.stringMap(key) }, { try body.stringMap(key, nullable: true) },
                { try body.anyObject(key) },
            ]
            var read = reads.reduce(false) { read, attempt in (try? attempt()) != nil || read }
            _ = (body.isNull(key), body.has(key))
            if let nested = try? body.object(key, allowed: allowed) {
                read = true
                Self.readEveryField(of: nested, allowed: allowed, into: &accepted)
            }
            if read { accepted.append(body.prefix + key) }
        }
    }
}
