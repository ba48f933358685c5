import ConduitTesting
import Foundation
import Testing

/// The README as a user reads it: its IAM policy and its tour are checked against the code.
@Suite("README.md")
struct ReadmeTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func readme() throws -> String {
        try String(contentsOf: self.root.appendingPathComponent("README.md"), encoding: .utf8)
    }

    /// The text of `## heading` up to the next `## `.
    static func section(_ heading: String, in readme: String) throws -> String {
        let start = try #require(readme.range(of: "\n## \(heading)\n"), "README has no section '\(heading)'")
        let rest = readme[start.upperBound...]
        return String(rest[..<(rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex)])
    }

    /// The fenced blocks of `language` in `text`, in order.
    static func blocks(_ language: String, in text: String) -> [String] {
        text.components(separatedBy: "```\(language)\n").dropFirst().compactMap { $0.components(separatedBy: "\n```").first }
    }

    // MARK: IAM

    /// AWS operations by the name of the AWSIoT client method that calls them, read from the
    /// clients' source: each public method names its operation once, as `call("Op"` or `operation: "Op"`.
    static func clientOperations() throws -> [String: String] {
        let folder = self.root.appendingPathComponent("Sources/AWSIoT")
        var operations: [String: String] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: folder.path) where file.hasPrefix("AWSIoT") && file.contains("Client") {
            let source = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            let functions = source.components(separatedBy: "    public func ").dropFirst()
            for function in functions {
                let name = String(function.prefix { $0.isLetter || $0.isNumber })
                let body = function.components(separatedBy: "\n    }\n").first ?? ""
                let operation = try #require(
                    Self.firstMatch(of: #"(?:call\(\s*|operation: )"([A-Za-z]+)""#, in: body),
                    "\(file): public func \(name) names no AWS operation; the IAM check cannot see it"
                )
                operations[name] = operation
            }
        }
        return operations
    }

    /// The operations the product's code calls (not the benchmarks'): every client method it uses.
    static func operationsCalled() throws -> Set<String> {
        let operations = try self.clientOperations()
        var called: Set<String> = []
        for folder in ["Sources/Hub", "Sources/HTTPAPI", "Sources/Console", "Sources/conduit"] {
            let url = self.root.appendingPathComponent(folder)
            let enumerator = try #require(FileManager.default.enumerator(atPath: url.path))
            for case let path as String in enumerator where path.hasSuffix(".swift") && !path.hasPrefix("Bench") {
                let source = try String(contentsOf: url.appendingPathComponent(path), encoding: .utf8)
                for (method, operation) in operations where source.contains(".\(method)(") {
                    called.insert("iot:\(operation)")
                }
                if source.contains("AWSAssumeRoleCredentialProvider(") { called.insert("sts:AssumeRole") }
            }
        }
        return called
    }

    static func firstMatch(of pattern: String, in text: String) -> String? {
        let regex = try? NSRegularExpression(pattern: pattern)
        guard let match = regex?.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)), match.numberOfRanges > 1,
            let range = Range(match.range(at: 1), in: text)
        else { return nil }
        return String(text[range])
    }

    static func actions(inPolicy json: String) throws -> (actions: Set<String>, statements: [[String: Any]]) {
        let policy = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any], "not a JSON policy:\n\(json)")
        #expect(policy["Version"] as? String == "2012-10-17")
        let statements = try #require(policy["Statement"] as? [[String: Any]])
        var actions: Set<String> = []
        for statement in statements {
            #expect(statement["Effect"] as? String == "Allow")
            if let one = statement["Action"] as? String { actions.insert(one) }
            if let many = statement["Action"] as? [String] { actions.formUnion(many) }
        }
        return (actions, statements)
    }

    @Test("the README's IAM policy allows exactly the AWS operations Conduit calls, and its role trusts only with an ExternalId")
    func iamPolicy() throws {
        let called = try Self.operationsCalled()
        // The scan sees the calls it must: provisioning, the endpoint check, uplinks, shadows, AssumeRole.
        for operation in ["iot:CreateThing", "iot:CreateCertificateFromCsr", "iot:DescribeEndpoint", "iot:Publish", "iot:UpdateThingShadow", "sts:AssumeRole"] {
            #expect(called.contains(operation), "\(operation) not found among the calls: \(called.sorted())")
        }
        let section = try Self.section("AWS permissions", in: Self.readme())
        let policies = Self.blocks("json", in: section)
        try #require(policies.count == 3, "expected the permissions policy, the trust policy and the caller's policy")

        let permissions = try Self.actions(inPolicy: policies[0]).actions
        let iotCalled = called.filter { $0.hasPrefix("iot:") }
        #expect(iotCalled.subtracting(permissions).isEmpty, "called but missing from the README's policy: \(iotCalled.subtracting(permissions).sorted())")
        #expect(permissions.subtracting(iotCalled).isEmpty, "in the README's policy but never called: \(permissions.subtracting(iotCalled).sorted())")

        let (trustActions, trust) = try Self.actions(inPolicy: policies[1])
        #expect(trustActions == ["sts:AssumeRole"])
        let condition = trust.first?["Condition"] as? [String: [String: String]]
        #expect(condition?["StringEquals"]?["sts:ExternalId"] != nil, "the trust policy must require an ExternalId")

        let callerActions = try Self.actions(inPolicy: policies[2]).actions
        #expect(callerActions == called.filter { $0.hasPrefix("sts:") })
    }

    // MARK: The tour

    /// The tour's commands as README.md has them: every `sh` block of "A short tour with curl",
    /// then the first block of "Devices over MQTT" (a device publishing, and its messages read
    /// back). Continuation lines are joined; a `# ...` line after a command is its expected output.
    static func tourCommands() throws -> [(command: String, expected: String?)] {
        let readme = try Self.readme()
        let blocks = try Self.blocks("sh", in: Self.section("A short tour with curl", in: readme))
            + [try #require(Self.blocks("sh", in: Self.section("Devices over MQTT", in: readme)).first)]
        var commands: [(command: String, expected: String?)] = []
        for block in blocks {
            var pending = ""
            for line in block.components(separatedBy: "\n") {
                if line.hasPrefix("# ") {
                    if let last = commands.indices.last { commands[last].expected = String(line.dropFirst(2)) }
                    continue
                }
                if line.hasSuffix("\\") {
                    pending += line.dropLast() + " "
                    continue
                }
                let command = (pending + line).trimmingCharacters(in: .whitespaces)
                pending = ""
                if !command.isEmpty { commands.append((command, nil)) }
            }
        }
        return commands
    }

    @Test("the README's tour runs as written against a running serve, the secret kept in $SECRET")
    func tour() async throws {
        let commands = try Self.tourCommands()
        try #require(commands.count >= 7, "the tour is shorter than expected: \(commands.map(\.command))")
        #expect(commands.first?.command.hasPrefix("TOKEN=$(conduit tokens create") == true)
        #expect(commands.contains { $0.command.hasPrefix("SECRET=$(curl") })
        #expect(commands.contains { $0.command.contains("mosquitto_pub") && $0.command.contains("\"$SECRET\"") })

        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(freeLoopbackPort())"], in: directory)
        do {
            let mqtt = try #require(server.mqttPort)
            // As written, but on this server's ports: the README's are the defaults, 8080 and 1883.
            var script = "export PATH=\(try ConduitExecutable.url().deletingLastPathComponent().path):$PATH\n"
            for (index, step) in commands.enumerated() {
                let command = step.command.replacingOccurrences(of: "localhost:8080", with: "localhost:\(port)")
                    .replacingOccurrences(of: "-p 1883", with: "-p \(mqtt)")
                script += "{ \(command)\n} > out.\(index) 2> err.\(index); echo $? > status.\(index)\n"
            }
            script += "printf '%s\\n%s\\n' \"$TOKEN\" \"$SECRET\" > variables\n"
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", script]
            process.currentDirectoryURL = directory
            process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CONDUIT_") }
            let (status, _, stderr) = try await Subprocess.runCapturing(process)
            #expect(status == 0, "\(stderr)")

            func read(_ name: String) -> String {
                (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)) ?? ""
            }
            for (index, step) in commands.enumerated() {
                let output = read("out.\(index)").trimmingCharacters(in: .newlines)
                #expect(read("status.\(index)") == "0\n", "`\(step.command)` failed: \(read("err.\(index)"))")
                if let expected = step.expected {
                    #expect(output == expected, "`\(step.command)`")
                } else if step.command.hasPrefix("curl") {
                    // An answer, and not an error one.
                    #expect(output.hasPrefix("{") && !output.contains("\"error\""), "`\(step.command)`: \(output)")
                }
            }
            let variables = read("variables").components(separatedBy: "\n")
            try #require(variables.count >= 2)
            #expect(variables[0].hasPrefix("cdt_"), "TOKEN was not kept: \(variables[0])")
            #expect(!variables[1].isEmpty && variables[1] != "null", "SECRET was not kept: \(variables[1])")

            // What the tour did, seen from the API: the device accepted, its message stored and readable.
            let token = variables[0]
            #expect(try await http("GET", port, "/v1/devices/boiler-7", token: token).body["status"] as? String == "accepted")
            let messagesIndex = try #require(commands.lastIndex { $0.command.contains("/messages") })
            let messages = try JSONSerialization.jsonObject(with: Data(read("out.\(messagesIndex)").utf8)) as? [String: Any]
            let first = (messages?["items"] as? [[String: Any]])?.first
            #expect((first?["payloadJson"] as? [String: Any])?["t"] as? Double == 71.5, "\(read("out.\(messagesIndex)"))")
        } catch {
            await server.stop()
            throw error
        }
        #expect(await server.stop() == 0)
    }
}
