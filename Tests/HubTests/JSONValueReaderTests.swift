import ConduitTesting
import Foundation
import Testing

@testable import Hub

/// Ingest reads rules' values with its own one-pass reader instead of Foundation's parser: it
/// must say what Foundation's would, for documents of every shape and for broken ones.
@Suite("Reading rules' values from JSON")
struct JSONValueReaderTests {
    /// What a rule read through Foundation's parser, as rules once did: the reference.
    static func foundation(_ payload: [UInt8], _ path: JSONPath) -> Result<Double, RuleSkipError> {
        guard var current = try? JSONSerialization.jsonObject(with: Data(payload), options: [.fragmentsAllowed]) else {
            return .failure(RuleSkipError(.notJSON))
        }
        for step in path.steps {
            switch step {
            case .key(let key):
                guard let object = current as? [String: Any], let next = object[key] else { return .failure(RuleSkipError(.noValue)) }
                current = next
            case .index(let index):
                guard let array = current as? [Any], index < array.count else { return .failure(RuleSkipError(.noValue)) }
                current = array[index]
            }
        }
        if current is NSNull { return .failure(RuleSkipError(.noValue)) }
        guard !(current is String), let number = current as? NSNumber, number.doubleValue.isFinite else { return .failure(RuleSkipError(.notANumber)) }
        return .success(number.doubleValue)
    }

    static let keys = ["a", "b", "lightValue", "temp °C", "quote\"d", "x y", "", "é", "tab\t", "😀"]

    /// A random JSON text and the paths that lead into it.
    static func document(_ random: inout SplitMix64, depth: Int, path: [JSONPath.Step], paths: inout [[JSONPath.Step]]) -> String {
        paths.append(path)
        let kind = depth > 3 ? Int.random(in: 0..<6, using: &random) : Int.random(in: 0..<8, using: &random)
        switch kind {
        case 0: return String(Int.random(in: -1_000_000_000...1_000_000_000, using: &random))
        case 1:
            let numbers = ["0", "-0", "1.5", "-2.25e3", "3E-2", "0.1", "12345678901234567", "1e2", "-7", "350", "299.999"]
            return numbers[Int.random(in: 0..<numbers.count, using: &random)]
        case 2: return Bool.random(using: &random) ? "true" : "false"
        case 3: return "null"
        case 4, 5:
            let strings = [#""text""#, #""350""#, #""a\"b\\c\/d\n""#, #""\u00e9\ud83d\ude00""#, #""""#, "\"é😀\""]
            return strings[Int.random(in: 0..<strings.count, using: &random)]
        case 6:
            let count = Int.random(in: 0..<4, using: &random)
            let items = (0..<count).map { self.document(&random, depth: depth + 1, path: path + [.index($0)], paths: &paths) }
            return "[" + items.joined(separator: Bool.random(using: &random) ? "," : " ,\n ") + "]"
        default:
            var members: [String] = []
            for _ in 0..<Int.random(in: 0..<4, using: &random) {
                let key = self.keys[Int.random(in: 0..<self.keys.count, using: &random)]
                let encoded = String(decoding: try! JSONSerialization.data(withJSONObject: key, options: [.fragmentsAllowed]), as: UTF8.self)
                members.append(encoded + ":" + self.document(&random, depth: depth + 1, path: path + [.key(key)], paths: &paths))
            }
            return "{" + members.joined(separator: ", ") + "}"
        }
    }

    static func path(_ steps: [JSONPath.Step]) throws -> JSONPath {
        var text = "$"
        for step in steps {
            switch step {
            case .key(let key): text += "['" + key.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "']"
            case .index(let index): text += "[\(index)]"
            }
        }
        return try JSONPath(parsing: text)
    }

    @Test("every path into thousands of documents, whole and broken, reads as Foundation's parser reads it")
    func agreesWithFoundation() throws {
        var random = SplitMix64(state: 20261203)
        var compared = 0
        var broken = 0
        for _ in 0..<3000 {
            var paths: [[JSONPath.Step]] = []
            let text = Self.document(&random, depth: 0, path: [], paths: &paths)
            // Paths that lead nowhere too: past a leaf, a missing key, an index too far.
            paths += paths.prefix(3).map { $0 + [.key("missing")] } + paths.prefix(2).map { $0 + [.index(7)] }
            var documents = [Array(text.utf8), Array((" \n" + text + "\t ").utf8)]
            // Broken ones: cut short, a byte changed, trailing text, a raw control byte or invalid UTF-8 inside.
            var bytes = Array(text.utf8)
            if bytes.count > 1 { documents.append(Array(bytes[0..<Int.random(in: 0..<bytes.count, using: &random)])) }
            let at = Int.random(in: 0..<bytes.count, using: &random)
            bytes[at] = [UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: "\""), 0x01, 0xFF, 0xC3, UInt8(ascii: "x")][Int.random(in: 0..<7, using: &random)]
            documents.append(bytes)
            documents.append(Array((text + " x").utf8))
            let selected = try paths.map(Self.path)
            let reader = JSONValueReader(selected)
            for document in documents {
                var values = [Result<Double, RuleSkipError>](repeating: .failure(RuleSkipError(.noValue)), count: selected.count)
                let isJSON = document.withUnsafeBytes { reader.read($0, wanted: Array(selected.indices), into: &values) }
                for (index, path) in selected.enumerated() {
                    let expected = Self.foundation(document, path)
                    let read = isJSON ? values[index] : .failure(RuleSkipError(.notJSON))
                    #expect(read == expected, "\(String(decoding: document, as: UTF8.self)) at \(path)")
                    compared += 1
                }
                if !isJSON { broken += 1 }
            }
        }
        // Both kinds were really tried.
        #expect(compared > 20_000)
        #expect(broken > 3000)
    }

    @Test("what Foundation refuses is not JSON: lone surrogates, nesting past 512, raw control bytes, bad escapes and numbers; a last comma is taken")
    func refusals() throws {
        let path = try JSONPath(parsing: "$")
        for text in [
            #""\ud800""#, #""\udc00x""#, #""\ud800\u0041""#, "\"\u{01}\"", #""\x""#, #""\u12""#, "01", "1.", ".5", "-", "+1", "1e", "[,]", "[1,,]", "{,}", "{'a':1}",
            "tru", "nul", "", " ", String(repeating: "[", count: 513) + String(repeating: "]", count: 513),
        ] {
            #expect(RuleEngine.value(of: Array(text.utf8), at: path) == .failure(RuleSkipError(.notJSON)), "\(text)")
            #expect(Self.foundation(Array(text.utf8), path) == .failure(RuleSkipError(.notJSON)), "Foundation: \(text)")
        }
        let deep = String(repeating: "[", count: 512) + "5" + String(repeating: "]", count: 512)
        let thirtyTwoDeep = try JSONPath(parsing: "$" + String(repeating: "[0]", count: 32))
        #expect(RuleEngine.value(of: Array(deep.utf8), at: thirtyTwoDeep) == .failure(RuleSkipError(.notANumber)))
        #expect(RuleEngine.value(of: Array(deep.utf8), at: path) == Self.foundation(Array(deep.utf8), path))
        for text in ["[1,]", #"{"a": 1, }"#] {
            #expect(RuleEngine.value(of: Array(text.utf8), at: path) == .failure(RuleSkipError(.notANumber)), "\(text)")
            #expect(Self.foundation(Array(text.utf8), path) == .failure(RuleSkipError(.notANumber)), "Foundation: \(text)")
        }
        // Duplicate keys: the last one counts; an escaped key matches its text.
        #expect(RuleEngine.value(of: Array(#"{"v": 1, "v": 2}"#.utf8), at: try JSONPath(parsing: "$.v")) == Self.foundation(Array(#"{"v": 1, "v": 2}"#.utf8), try JSONPath(parsing: "$.v")))
        #expect(RuleEngine.value(of: Array(#"{"\u006cight": 7}"#.utf8), at: try JSONPath(parsing: "$.light")) == .success(7))
    }
}
