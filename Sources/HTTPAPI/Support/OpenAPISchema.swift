import Hub

/// Pieces of the OpenAPI document written from the Swift values the server checks with, so that
/// the document and the validation cannot drift apart.
enum OpenAPISchema {
    /// `text` as a YAML double-quoted scalar.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value):
                out += "\\u" + String(scalar.value, radix: 16, uppercase: true).leftPadded(to: 4)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A YAML flow sequence of quoted strings.
    static func list(_ values: [String]) -> String {
        "[" + values.map(self.quoted).joined(separator: ", ") + "]"
    }

    /// A string schema following `rule`, in YAML flow style, with `extra` members (`description: ...`) after it.
    static func string(_ rule: StringRule, nullable: Bool = false, _ extra: String...) -> String {
        var members = [nullable ? #"type: [string, "null"]"# : "type: string"]
        let bounds = rule.lengthBounds
        if let min = bounds.min { members.append("minLength: \(min)") }
        if let max = bounds.max { members.append("maxLength: \(max)") }
        let patterns = rule.patterns
        if patterns.count == 1 {
            members.append("pattern: \(self.quoted(patterns[0]))")
        } else if patterns.count > 1 {
            members.append("allOf: [" + patterns.map { "{pattern: \(self.quoted($0))}" }.joined(separator: ", ") + "]")
        }
        var extra = extra
        if let bytes = rule.utf8ByteLimit, !extra.contains(where: { $0.hasPrefix("description:") }) {
            extra.append("description: \(self.quoted("At most \(bytes) bytes of UTF-8."))")
        }
        return "{" + (members + extra).joined(separator: ", ") + "}"
    }

    /// A string schema of one of `values`.
    static func enumeration(_ values: [String], nullable: Bool = false, _ extra: String...) -> String {
        let type = nullable ? #"type: [string, "null"]"# : "type: string"
        let values = nullable ? self.list(values).dropLast() + ", null]" : self.list(values)
        return "{" + ([type, "enum: \(values)"] + extra).joined(separator: ", ") + "}"
    }

    /// The schemas of a desired shadow state, as ``Shadows`` checks it: at most
    /// ``Shadows/Limits/depth`` levels of objects and arrays (the state itself is one), and no null
    /// inside an array (null as an object's value removes the key). `ShadowMemberN` (an object's
    /// value) and `ShadowItemN` (an array's item) may nest N more levels. Written with type lists,
    /// not `oneOf`, so each level is one schema.
    static var shadowSchemas: String {
        let depth = Shadows.Limits.depth
        var lines: [String] = [
            "    ShadowState:",
            "      type: object",
            "      description: \(self.quoted("A shadow's desired state, within AWS IoT's limits: at most \(Shadows.Limits.stateBytes) bytes as sent ({\"state\": {\"desired\": ...}}, compact JSON), \(depth) levels of nesting (this object is the first), and no null inside an array; null as an object's value removes that key."))",
            "      additionalProperties: {$ref: \"#/components/schemas/ShadowMember\(depth - 1)\"}",
        ]
        for level in 0..<depth {
            for (name, null) in [("ShadowMember", #", "null""#), ("ShadowItem", "")] {
                if level == 0 {
                    lines.append("    \(name)0: {type: [string, number, boolean\(null)]}")
                } else {
                    lines.append(
                        "    \(name)\(level): {type: [string, number, boolean, object, array\(null)], additionalProperties: {$ref: \"#/components/schemas/ShadowMember\(level - 1)\"}, items: {$ref: \"#/components/schemas/ShadowItem\(level - 1)\"}}"
                    )
                }
            }
        }
        return lines.joined(separator: "\n")
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - self.count)) + self
    }
}
