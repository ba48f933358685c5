/// A path to one value in a JSON message: `$`, then `.name`, `['any name']` or `[index]` steps,
/// as in `$.lightValue`, `$.a.b[0]` or `$['temp °C']`. No wildcards, filters or slices: a rule
/// reads one value.
public struct JSONPath: Sendable, Equatable, CustomStringConvertible {
    public enum Step: Sendable, Equatable {
        case key(String)
        case index(Int)
    }

    public let steps: [Step]
    public let description: String

    /// The most steps a path may have.
    public static let maximumSteps = 32

    /// Parses `text`; the error says what is wrong and where.
    public init(parsing text: String) throws(JSONPathError) {
        let bytes = Array(text.utf8)
        guard bytes.first == UInt8(ascii: "$") else { throw JSONPathError("must start with $ (such as $.temperature)") }
        var steps: [Step] = []
        var index = 1
        func isNameByte(_ byte: UInt8) -> Bool {
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."):
                let start = index + 1
                var end = start
                while end < bytes.count, isNameByte(bytes[end]) { end += 1 }
                guard end > start else {
                    throw JSONPathError("a name must follow '.' at character \(start + 1) (letters, digits, _ and -; ['...'] for others)")
                }
                steps.append(.key(String(decoding: bytes[start..<end], as: UTF8.self)))
                index = end
            case UInt8(ascii: "["):
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "'") {
                    // ['name'], with \' and \\ escaped.
                    var name: [UInt8] = []
                    var cursor = index + 2
                    var closed = false
                    while cursor < bytes.count {
                        let byte = bytes[cursor]
                        if byte == UInt8(ascii: "\\"), cursor + 1 < bytes.count {
                            name.append(bytes[cursor + 1])
                            cursor += 2
                        } else if byte == UInt8(ascii: "'") {
                            closed = true
                            break
                        } else {
                            name.append(byte)
                            cursor += 1
                        }
                    }
                    guard closed, cursor + 1 < bytes.count, bytes[cursor + 1] == UInt8(ascii: "]") else {
                        throw JSONPathError("['...'] at character \(index + 1) is not closed")
                    }
                    steps.append(.key(String(decoding: name, as: UTF8.self)))
                    index = cursor + 2
                } else {
                    var cursor = index + 1
                    var value = 0
                    while cursor < bytes.count, bytes[cursor] >= UInt8(ascii: "0"), bytes[cursor] <= UInt8(ascii: "9"), value < 1_000_000 {
                        value = value * 10 + Int(bytes[cursor] - UInt8(ascii: "0"))
                        cursor += 1
                    }
                    guard cursor > index + 1, value < 1_000_000, cursor < bytes.count, bytes[cursor] == UInt8(ascii: "]") else {
                        throw JSONPathError("[ at character \(index + 1) must hold an index below 1000000 or a quoted name, such as [0] or ['a b']")
                    }
                    steps.append(.index(value))
                    index = cursor + 1
                }
            default:
                throw JSONPathError("unexpected '\(String(decoding: [bytes[index]], as: UTF8.self))' at character \(index + 1); steps are .name, ['name'] or [index]")
            }
            guard steps.count <= Self.maximumSteps else { throw JSONPathError("has more than \(Self.maximumSteps) steps") }
        }
        self.steps = steps
        self.description = text
    }

    /// The value the path names in `json`; nil when the message has no such value.
    public func value(in json: JSONValue) -> JSONValue? {
        var current = json
        for step in self.steps {
            switch (step, current) {
            case (.key(let key), .object(let members)):
                guard let next = members[key] else { return nil }
                current = next
            case (.index(let index), .array(let items)):
                guard index < items.count else { return nil }
                current = items[index]
            default:
                return nil
            }
        }
        return current
    }
}

public struct JSONPathError: Error, Sendable, Equatable {
    public let message: String

    init(_ message: String) {
        self.message = message
    }
}
