/// A device shadow's MQTT topic as AWS IoT names it:
///
///     $aws/things/{thing}/shadow[/name/{shadow}]/{operation}[/{answer}]
///
/// A device publishes a request on `update`, `get` or `delete`; the shadow service answers on
/// `…/accepted` or `…/rejected`, and tells of changes on `update/delta` and `update/documents`.
public struct ShadowTopic: Sendable, Hashable {
    public enum Operation: String, Sendable, CaseIterable {
        case update, get, delete
    }

    /// What the shadow service sends under an operation.
    public enum Answer: String, Sendable, CaseIterable {
        case accepted, rejected, delta, documents
    }

    public var thing: String
    /// A named shadow's name; nil for the classic shadow.
    public var name: String?
    public var operation: Operation
    /// nil for a request.
    public var answer: Answer?

    public init(thing: String, name: String?, operation: Operation, answer: Answer? = nil) {
        self.thing = thing
        self.name = name
        self.operation = operation
        self.answer = answer
    }

    /// Reads a topic in the shadow's space; nil for any other topic, or one AWS IoT does not have
    /// (`get/delta`, an invalid thing or shadow name, a level too many).
    public init?(_ topic: String) {
        guard topic.hasPrefix("$aws/things/") else { return nil }
        let levels = topic.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { String(Substring($0)) }
        guard levels.count >= 5, levels[0] == "$aws", levels[1] == "things", levels[3] == "shadow", Self.isName(levels[2], maximum: 128) else {
            return nil
        }
        var rest = levels[4...]
        var name: String?
        if rest.first == "name" {
            guard rest.count >= 3, Self.isName(rest[rest.startIndex + 1], maximum: 64) else { return nil }
            name = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let first = rest.first, let operation = Operation(rawValue: first), rest.count <= 2 else { return nil }
        var answer: Answer?
        if rest.count == 2 {
            guard let found = Answer(rawValue: rest[rest.startIndex + 1]),
                found == .accepted || found == .rejected || operation == .update
            else { return nil }
            answer = found
        }
        self.init(thing: levels[2], name: name, operation: operation, answer: answer)
    }

    /// The topic as a string.
    public var topic: String {
        var topic = Self.prefix(thing: self.thing, name: self.name) + "/" + self.operation.rawValue
        if let answer { topic += "/" + answer.rawValue }
        return topic
    }

    /// The same shadow and operation's answer topic.
    public func answering(_ answer: Answer) -> ShadowTopic {
        ShadowTopic(thing: self.thing, name: self.name, operation: self.operation, answer: answer)
    }

    /// `$aws/things/{thing}/shadow` or `$aws/things/{thing}/shadow/name/{name}`.
    public static func prefix(thing: String, name: String?) -> String {
        name.map { "$aws/things/\(thing)/shadow/name/\($0)" } ?? "$aws/things/\(thing)/shadow"
    }

    /// AWS IoT's names: `[a-zA-Z0-9:_-]`, 1 to `maximum` bytes.
    static func isName(_ name: String, maximum: Int) -> Bool {
        let utf8 = name.utf8
        guard !utf8.isEmpty, utf8.count <= maximum else { return false }
        return utf8.allSatisfy(Self.isNameByte)
    }

    /// A byte of AWS IoT's names (a thing's, so a device id's): `[a-zA-Z0-9:_-]`.
    static func isNameByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: ":"), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default: false
        }
    }
}
