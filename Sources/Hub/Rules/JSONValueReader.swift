/// Reads the numbers at a set of JSON paths straight from a message's bytes, in one pass that
/// also checks the whole message is JSON as Foundation's parser takes it: RFC 8259 (one value of
/// any kind, strings of valid UTF-8 with paired surrogates), nesting at most 512 deep, and a
/// comma allowed before a closing bracket or brace.
///
/// Rules read one number out of each message, on the ingest path. Building the message's whole
/// object tree first (JSONSerialization, then bridging its dictionaries) cost more than the
/// rest of a rule's evaluation together; this builds nothing and allocates only for a key with
/// escapes that a path might name. It reads as ``RuleEngine/value(ofParsed:at:)`` does: numbers,
/// booleans as 1 and 0, null as no value, a string, object or array as not a number; of a key
/// given twice, the last.
struct JSONValueReader {
    /// A path's steps, keys as UTF-8.
    enum Step {
        case key([UInt8])
        case index(Int)
    }

    let paths: [[Step]]

    /// At most this many paths are followed in one pass.
    static let pathsPerPass = 64
    /// Deeper than this, a message is not JSON (Foundation's parser's limit too).
    static let maximumDepth = 512

    init(_ paths: [JSONPath]) {
        self.paths = paths.map { path in
            path.steps.map { step in
                switch step {
                case .key(let key): .key(Array(key.utf8))
                case .index(let index): .index(index)
                }
            }
        }
    }

    /// The value at each path (by its index in `paths`) in `payload`, or nil when the payload is
    /// not JSON. Only the paths in `wanted` are read; the others stay `.noValue`.
    func read(_ payload: UnsafeRawBufferPointer, wanted: [Int], into results: inout [Result<Double, RuleSkipError>]) -> Bool {
        var start = 0
        repeat {
            // Nearly always one pass: the wanted paths themselves, not a copy of them per message.
            let chunk = wanted.count <= Self.pathsPerPass ? wanted : Array(wanted[start..<min(wanted.count, start + Self.pathsPerPass)])
            var scanner = Scanner(bytes: payload.bindMemory(to: UInt8.self), paths: self.paths, chunk: chunk)
            guard scanner.document() else { return false }
            for (bit, path) in chunk.enumerated() { results[path] = scanner.found[bit] }
            start += Self.pathsPerPass
        } while start < wanted.count
        return true
    }

    /// One pass over a document for up to 64 paths, each a bit of a mask: a value's mask holds the
    /// paths that lead to it so far.
    private struct Scanner {
        let bytes: UnsafeBufferPointer<UInt8>
        let paths: [[Step]]
        let chunk: [Int]
        var found: [Result<Double, RuleSkipError>]
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>, paths: [[Step]], chunk: [Int]) {
            self.bytes = bytes
            self.paths = paths
            self.chunk = chunk
            self.found = Array(repeating: .failure(RuleSkipError(.noValue)), count: chunk.count)
        }

        mutating func document() -> Bool {
            let all: UInt64 = self.chunk.count == 64 ? ~0 : (1 << UInt64(self.chunk.count)) - 1
            self.whitespace()
            guard self.value(mask: all, level: 0, depth: 0) else { return false }
            self.whitespace()
            return self.index == self.bytes.count
        }

        private var peek: UInt8? { self.index < self.bytes.count ? self.bytes[self.index] : nil }

        private mutating func whitespace() {
            while self.index < self.bytes.count {
                switch self.bytes[self.index] {
                case 0x20, 0x0A, 0x0D, 0x09: self.index += 1
                default: return
                }
            }
        }

        /// A value. Of the paths in `mask`, those with `level` steps end here; the others go on
        /// into it, when it is a container.
        private mutating func value(mask: UInt64, level: Int, depth: Int) -> Bool {
            guard let byte = self.peek else { return false }
            var ending: UInt64 = 0
            var going: UInt64 = 0
            var bits = mask
            while bits != 0 {
                let bit = bits.trailingZeroBitCount
                bits &= bits - 1
                if self.paths[self.chunk[bit]].count == level { ending |= 1 << UInt64(bit) } else { going |= 1 << UInt64(bit) }
            }
            // What an earlier member of the same name gave these paths is undone: the last counts.
            self.settle(going, .failure(RuleSkipError(.noValue)))
            switch byte {
            case UInt8(ascii: "{"):
                self.settle(ending, .failure(RuleSkipError(.notANumber)))
                return depth < JSONValueReader.maximumDepth && self.object(mask: going, level: level, depth: depth + 1)
            case UInt8(ascii: "["):
                self.settle(ending, .failure(RuleSkipError(.notANumber)))
                return depth < JSONValueReader.maximumDepth && self.array(mask: going, level: level, depth: depth + 1)
            case UInt8(ascii: "\""):
                self.settle(ending, .failure(RuleSkipError(.notANumber)))
                return self.string() != nil
            case UInt8(ascii: "t"):
                self.settle(ending, .success(1))
                return self.literal("true")
            case UInt8(ascii: "f"):
                self.settle(ending, .success(0))
                return self.literal("false")
            case UInt8(ascii: "n"):
                self.settle(ending, .failure(RuleSkipError(.noValue)))
                return self.literal("null")
            default:
                let start = self.index
                guard let whole = self.number() else { return false }
                if ending != 0 {
                    let value = whole ?? Double(String(decoding: UnsafeBufferPointer(rebasing: self.bytes[start..<self.index]), as: UTF8.self))
                    if let value, value.isFinite { self.settle(ending, .success(value)) } else { self.settle(ending, .failure(RuleSkipError(.notANumber))) }
                }
                return true
            }
        }

        private mutating func settle(_ mask: UInt64, _ result: Result<Double, RuleSkipError>) {
            var bits = mask
            while bits != 0 {
                self.found[bits.trailingZeroBitCount] = result
                bits &= bits - 1
            }
        }

        private mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard self.bytes.count - self.index >= count else { return false }
            for offset in 0..<count where self.bytes[self.index + offset] != word.utf8Start[offset] { return false }
            self.index += count
            return true
        }

        private mutating func object(mask: UInt64, level: Int, depth: Int) -> Bool {
            self.index += 1
            self.whitespace()
            if self.peek == UInt8(ascii: "}") {
                self.index += 1
                return true
            }
            while true {
                guard self.peek == UInt8(ascii: "\"") else { return false }
                let keyStart = self.index + 1
                guard let escaped = self.string() else { return false }
                let keyEnd = self.index - 1
                var next: UInt64 = 0
                if mask != 0 {
                    let key = UnsafeBufferPointer(rebasing: self.bytes[keyStart..<keyEnd])
                    let unescaped = escaped ? Self.unescape(key) : nil
                    var bits = mask
                    while bits != 0 {
                        let bit = bits.trailingZeroBitCount
                        bits &= bits - 1
                        guard case .key(let name) = self.paths[self.chunk[bit]][level] else { continue }
                        let equal = unescaped.map { $0 == name } ?? name.withUnsafeBufferPointer { $0.elementsEqual(key) }
                        if equal { next |= 1 << UInt64(bit) }
                    }
                }
                self.whitespace()
                guard self.peek == UInt8(ascii: ":") else { return false }
                self.index += 1
                self.whitespace()
                guard self.value(mask: next, level: level + 1, depth: depth) else { return false }
                self.whitespace()
                switch self.peek {
                case UInt8(ascii: ","):
                    self.index += 1
                    self.whitespace()
                    // A comma before the end, as Foundation's parser takes it.
                    if self.peek == UInt8(ascii: "}") {
                        self.index += 1
                        return true
                    }
                case UInt8(ascii: "}"):
                    self.index += 1
                    return true
                default:
                    return false
                }
            }
        }

        private mutating func array(mask: UInt64, level: Int, depth: Int) -> Bool {
            self.index += 1
            self.whitespace()
            if self.peek == UInt8(ascii: "]") {
                self.index += 1
                return true
            }
            var element = 0
            while true {
                var next: UInt64 = 0
                var bits = mask
                while bits != 0 {
                    let bit = bits.trailingZeroBitCount
                    bits &= bits - 1
                    if case .index(let wanted) = self.paths[self.chunk[bit]][level], wanted == element { next |= 1 << UInt64(bit) }
                }
                guard self.value(mask: next, level: level + 1, depth: depth) else { return false }
                element += 1
                self.whitespace()
                switch self.peek {
                case UInt8(ascii: ","):
                    self.index += 1
                    self.whitespace()
                    if self.peek == UInt8(ascii: "]") {
                        self.index += 1
                        return true
                    }
                case UInt8(ascii: "]"):
                    self.index += 1
                    return true
                default:
                    return false
                }
            }
        }

        /// A string, from its opening quote to past its closing one; whether it has escapes, or
        /// nil when it is not a valid one.
        private mutating func string() -> Bool? {
            self.index += 1
            var escaped = false
            while self.index < self.bytes.count {
                let byte = self.bytes[self.index]
                switch byte {
                case UInt8(ascii: "\""):
                    self.index += 1
                    return escaped
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard self.index + 1 < self.bytes.count else { return nil }
                    switch self.bytes[self.index + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"),
                        UInt8(ascii: "r"), UInt8(ascii: "t"):
                        self.index += 2
                    case UInt8(ascii: "u"):
                        // A surrogate comes in pairs, high then low, as Foundation's parser requires.
                        guard let unit = self.escapedUnit(at: self.index) else { return nil }
                        self.index += 6
                        if (0xDC00..<0xE000).contains(unit) { return nil }
                        if (0xD800..<0xDC00).contains(unit) {
                            guard let low = self.escapedUnit(at: self.index), (0xDC00..<0xE000).contains(low) else { return nil }
                            self.index += 6
                        }
                    default:
                        return nil
                    }
                case 0..<0x20:
                    return nil
                case 0x20..<0x80:
                    self.index += 1
                default:
                    guard let length = Self.scalarLength(self.bytes, at: self.index) else { return nil }
                    self.index += length
                }
            }
            return nil
        }

        /// The code unit of the `\uXXXX` at `index`, when there is one.
        private func escapedUnit(at index: Int) -> UInt32? {
            guard self.bytes.count - index >= 6, self.bytes[index] == UInt8(ascii: "\\"), self.bytes[index + 1] == UInt8(ascii: "u") else { return nil }
            var unit: UInt32 = 0
            for offset in 2..<6 {
                guard let digit = Self.hex(self.bytes[index + offset]) else { return nil }
                unit = unit << 4 | digit
            }
            return unit
        }

        /// The length of the UTF-8 sequence at `index`, when it is a valid one (no overlong
        /// forms, no surrogates, nothing past U+10FFFF).
        private static func scalarLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int? {
            let lead = bytes[index]
            let length: Int
            var low: UInt8 = 0x80
            var high: UInt8 = 0xBF
            switch lead {
            case 0xC2...0xDF: length = 2
            case 0xE0:
                length = 3
                low = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED:
                length = 3
                high = 0x9F
            case 0xF0:
                length = 4
                low = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4:
                length = 4
                high = 0x8F
            default: return nil
            }
            guard bytes.count - index >= length else { return nil }
            let second = bytes[index + 1]
            guard second >= low, second <= high else { return nil }
            for offset in 2..<length where bytes[index + offset] & 0xC0 != 0x80 { return nil }
            return length
        }

        private static func hex(_ byte: UInt8) -> UInt32? {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(byte - UInt8(ascii: "A") + 10)
            default: nil
            }
        }

        /// A key's text with its escapes undone, as UTF-8 (its surrogates were checked to pair).
        private static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> [UInt8] {
            var scalars = String.UnicodeScalarView()
            var bytes: [UInt8] = []
            var index = 0
            func flush() {
                scalars.append(contentsOf: String(decoding: bytes, as: UTF8.self).unicodeScalars)
                bytes.removeAll()
            }
            func unit(at offset: Int) -> UInt32 {
                (0..<4).reduce(0) { $0 << 4 | (self.hex(raw[offset + $1]) ?? 0) }
            }
            while index < raw.count {
                guard raw[index] == UInt8(ascii: "\\") else {
                    bytes.append(raw[index])
                    index += 1
                    continue
                }
                flush()
                let kind = raw[index + 1]
                index += 2
                let simple: Unicode.Scalar? =
                    switch kind {
                    case UInt8(ascii: "b"): "\u{08}"
                    case UInt8(ascii: "f"): "\u{0C}"
                    case UInt8(ascii: "n"): "\n"
                    case UInt8(ascii: "r"): "\r"
                    case UInt8(ascii: "t"): "\t"
                    case UInt8(ascii: "u"): nil
                    default: Unicode.Scalar(kind)
                    }
                if let simple {
                    scalars.append(simple)
                    continue
                }
                var code = unit(at: index)
                index += 4
                if (0xD800..<0xDC00).contains(code), index + 6 <= raw.count, raw[index] == UInt8(ascii: "\\"), raw[index + 1] == UInt8(ascii: "u") {
                    let low = unit(at: index + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        index += 6
                    }
                }
                scalars.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            }
            flush()
            return Array(String(scalars).utf8)
        }

        /// A number, per JSON's grammar: its value when it is a whole one of at most 15 digits
        /// (nil inside: the caller converts the others from the text), or nil when it is no number.
        private mutating func number() -> Double?? {
            var negative = false
            if self.peek == UInt8(ascii: "-") {
                negative = true
                self.index += 1
            }
            var whole: Int64 = 0
            var digits = 0
            guard let first = self.peek, first >= UInt8(ascii: "0"), first <= UInt8(ascii: "9") else { return nil }
            if first == UInt8(ascii: "0") {
                self.index += 1
                digits = 1
            } else {
                while let byte = self.peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") {
                    if digits < 18 { whole = whole * 10 + Int64(byte - UInt8(ascii: "0")) }
                    digits += 1
                    self.index += 1
                }
            }
            var simple = digits <= 15
            if self.peek == UInt8(ascii: ".") {
                simple = false
                self.index += 1
                guard self.digits() else { return nil }
            }
            if self.peek == UInt8(ascii: "e") || self.peek == UInt8(ascii: "E") {
                simple = false
                self.index += 1
                if self.peek == UInt8(ascii: "+") || self.peek == UInt8(ascii: "-") { self.index += 1 }
                guard self.digits() else { return nil }
            }
            guard simple else { return .some(nil) }
            return .some(Double(negative ? -whole : whole))
        }

        /// One or more digits.
        private mutating func digits() -> Bool {
            let start = self.index
            while let byte = self.peek, byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") { self.index += 1 }
            return self.index > start
        }
    }
}
