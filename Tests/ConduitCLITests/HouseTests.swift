import Foundation
import Testing

/// The house rules that hold the modules apart, as Package.swift and the sources state them.
@Suite("The house")
struct HouseTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Modules every target may import without declaring them: the toolchain's own.
    static let toolchain: Set<String> = [
        "Foundation", "FoundationEssentials", "FoundationNetworking", "Dispatch", "Glibc", "Musl", "Synchronization", "Testing",
        "XCTest", "_Concurrency",
    ]

    /// Each target's declared dependencies (targets and products), from Package.swift.
    static func declaredDependencies() throws -> [String: Set<String>] {
        let manifest = try String(contentsOf: self.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        var targets: [String: Set<String>] = [:]
        let marked = manifest.replacingOccurrences(of: #"\.(target|executableTarget|testTarget)\("#, with: "\u{1}", options: .regularExpression)
        for block in marked.components(separatedBy: "\u{1}").dropFirst() {
            let body = block.components(separatedBy: "\n        ),").first ?? block
            guard let name = Self.matches(#"name: "(\w+)""#, in: body).first else { continue }
            let dependencies = Self.bracketed(after: "dependencies: [", in: body)
            let products = Self.matches(#"\.product\(name: "(\w+)""#, in: dependencies)
            let withoutProducts = dependencies.replacingOccurrences(of: #"\.product\([^)]*\)"#, with: "", options: .regularExpression)
            targets[name] = Set(products + Self.matches(#""(\w+)""#, in: withoutProducts))
        }
        return targets
    }

    /// The text between `opening` (which ends with `[`) and its matching `]`.
    static func bracketed(after opening: String, in text: String) -> String {
        guard let start = text.range(of: opening) else { return "" }
        var depth = 1
        var index = start.upperBound
        while index < text.endIndex {
            switch text[index] {
            case "[": depth += 1
            case "]":
                depth -= 1
                if depth == 0 { return String(text[start.upperBound..<index]) }
            default: break
            }
            index = text.index(after: index)
        }
        return ""
    }

    /// The modules a target's sources import, with the file of each.
    static func imports(of target: String) throws -> [(module: String, file: String)] {
        let folder = ["Sources/\(target)", "Tests/\(target)"].map { self.root.appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
        guard let folder, let enumerator = FileManager.default.enumerator(atPath: folder.path) else { return [] }
        var found: [(String, String)] = []
        for case let path as String in enumerator where path.hasSuffix(".swift") {
            let source = try String(contentsOf: folder.appendingPathComponent(path), encoding: .utf8)
            let pattern = #"(?m)^(?:@\w+\s+)*(?:public |package |internal )?import (?:struct |enum |class |protocol |func |typealias )?(\w+)"#
            for module in Self.matches(pattern, in: source) { found.append((module, "\(target)/\(path)")) }
        }
        return found
    }

    static func matches(_ pattern: String, in text: String) -> [String] {
        guard let regex = try? NSRegularExpression(pattern: pattern) else { return [] }
        return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
            Range($0.range(at: 1), in: text).map { String(text[$0]) }
        }
    }

    @Test("every target imports only what Package.swift declares for it, and declares nothing it does not import")
    func importsAreDeclared() throws {
        let targets = try Self.declaredDependencies()
        #expect(targets.count >= 20, "found only \(targets.keys.sorted()) in Package.swift")
        for (target, declared) in targets.sorted(by: { $0.key < $1.key }) {
            let imports = try Self.imports(of: target)
            let imported = Set(imports.map(\.module))
            for (module, file) in imports where !declared.contains(module) && !Self.toolchain.contains(module) {
                Issue.record("\(file) imports \(module), which Package.swift does not declare for \(target)")
            }
            for module in declared.subtracting(imported).sorted() {
                Issue.record("Package.swift declares \(module) for \(target), which imports it nowhere")
            }
        }
    }

    @Test("the API and the console reach the store only through the hub")
    func httpAndConsoleStayAboveTheStore() throws {
        let targets = try Self.declaredDependencies()
        for target in ["HTTPAPI", "Console"] {
            #expect(targets[target]?.contains("Store") == false, "\(target) declares Store")
            let folder = Self.root.appendingPathComponent("Sources/\(target)")
            let enumerator = try #require(FileManager.default.enumerator(atPath: folder.path))
            for case let path as String in enumerator where path.hasSuffix(".swift") {
                let source = try String(contentsOf: folder.appendingPathComponent(path), encoding: .utf8)
                #expect(source.range(of: #"\bhub\.store\b"#, options: .regularExpression) == nil, "\(target)/\(path) reaches the store past the hub")
            }
        }
    }
}
