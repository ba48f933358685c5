import ConduitTesting
import Foundation
import Testing

@Suite("conduit rules")
struct RulesCLITests {
    @Test("create from a JSON file, list, show, try on a message without side effects, delete; a bad definition is refused naming the field")
    func rules() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func conduit(_ arguments: String...) async throws -> ConduitExecutable.Result {
            try await ConduitExecutable.run(Array(arguments), in: directory)
        }
        let file = directory.appendingPathComponent("fan.json")
        try Data(
            #"""
            {"source": {"labels": ["greenhouse"]}, "subtopic": "telemetry/#", "value": "$.t",
             "states": {"Hot": {"above": 30}, "Cool": {"below": 25}},
             "actions": [{"on": {"from": "Cool", "to": "Hot"}, "cooldownSeconds": 600,
                          "downlink": {"deviceId": "fan-1", "payload": {"fan": "on", "t": "{value}", "why": "{deviceId} went {state}"}}}]}
            """#.utf8
        ).write(to: file)
        let created = try await conduit("rules", "create", "--name", "fan", "--file", file.path)
        #expect(created.status == 0, "\(created.stderr)")
        let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.hasPrefix("rule_"))

        let list = try await conduit("rules", "list")
        #expect(list.stdout == "\(id)\tfan\tenabled\t$.t\tCool/Hot\t1 actions\n")
        let show = try await conduit("rules", "show", id)
        #expect(show.stdout.contains(#""cooldownSeconds" : 600"#), "\(show.stdout)")

        let crossing = try await conduit("rules", "test", id, "--message", #"{"t": 31.5}"#, "--device", "sensor-7", "--state", "Cool")
        #expect(crossing.status == 0, "\(crossing.stderr)")
        #expect(
            crossing.stdout
                == "value   31.5\nstate   Cool -> Hot (a crossing)\nfires   downlink fan-1 {\"fan\":\"on\",\"t\":31.5,\"why\":\"sensor-7 went Hot\"}\n"
        )
        #expect(try await conduit("rules", "test", id, "--message", #"{"t": 27}"#, "--state", "Cool").stdout.contains("state   Cool -> Cool\nfires   nothing"))
        #expect(try await conduit("rules", "test", id, "--message", "no json").stdout == "no value: not_json\n")
        let unknown = try await conduit("rules", "test", id, "--message", #"{"t": 1}"#, "--state", "Lukewarm")
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("state: 'Lukewarm' is not one of the rule's states (Cool, Hot)"), "\(unknown.stderr)")
        // Trying changed nothing: no device has a state in the rule.
        #expect(!(try await conduit("rules", "show", id)).stdout.contains("device  "))

        try Data(#"{"source": {"all": true}, "subtopic": "up", "value": "$.t", "states": {"A": {"above": 1}, "B": {"above": 5}}, "actions": []}"#.utf8)
            .write(to: file)
        let overlapping = try await conduit("rules", "create", "--name", "bad", "--file", file.path)
        #expect(overlapping.status != 0)
        #expect(overlapping.stderr.contains("states: A and B overlap"), "\(overlapping.stderr)")
        try Data(#"{"source": {"all": true}, "subtopic": "up", "states": {}, "actions": []}"#.utf8).write(to: file)
        #expect(try await conduit("rules", "create", "--name", "bad", "--file", file.path).stderr.contains("value: is required"))

        #expect(try await conduit("rules", "delete", id).status == 0)
        #expect(try await conduit("rules", "list").stdout.isEmpty)
    }
}
