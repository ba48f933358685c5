import ArgumentParser
import Foundation
import Hub

struct RulesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules", abstract: "Rules that act on device data: list them, show one with its devices' states, try one on a message.",
        subcommands: [Create.self, List.self, Show.self, Test.self, Delete.self]
    )

    /// A definition from a JSON file (`-` for standard input), as `POST /v1/rules` will take it.
    static func definition(_ path: String) throws -> RuleDefinition {
        let data: Data
        do {
            data = path == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("--file: cannot read \(path): \(error.localizedDescription)")
        }
        guard case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
            throw ValidationError("--file: not a JSON object")
        }
        do {
            return try RuleDefinition.decode(members)
        } catch let error as HubError {
            throw ValidationError(error.message)
        }
    }

    static func describe(_ state: RuleDeviceState) -> String {
        var parts = [state.state ?? "none yet"]
        if let candidate = state.candidate { parts.append("on its way to \(candidate) (\(state.candidateSamples ?? 0) readings)") }
        if let value = state.value { parts.append("last value \(value)") }
        return parts.joined(separator: ", ")
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a rule from a JSON definition: source, subtopic, value, states, debounce, actions. Prints its id."
        )
        @Option(help: "The rule's name, unique in the tenant.") var name: String
        @Option(help: "The definition, JSON (- reads standard input).") var file: String
        @Flag(help: "Add it disabled.") var disabled = false
        @OptionGroup var options: TenantOptions

        func run() async throws {
            let definition = try RulesCommand.definition(self.file)
            try await self.options.run { hub, principal in
                let rule = try await hub.rules.create(name: self.name, definition: definition, enabled: !self.disabled, by: principal)
                print(rule.id)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List rules: id, name, enabled, value, states, actions.")
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                for rule in try await hub.rules.list(by: principal) {
                    let states = rule.definition.states.keys.sorted().joined(separator: "/")
                    print("\(rule.id)\t\(rule.name)\t\(rule.enabled ? "enabled" : "disabled")\t\(rule.definition.value)\t\(states)\t\(rule.definition.actions.count) actions")
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a rule's definition and where each device stands in it.")
        @Argument(help: "The rule id.") var id: String
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                let rule = try await hub.rules.get(self.id, by: principal)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print("id      \(rule.id)\nname    \(rule.name)\nstatus  \(rule.enabled ? "enabled" : "disabled")")
                print(String(decoding: try encoder.encode(rule.definition), as: UTF8.self))
                var cursor: String?
                repeat {
                    let page = try await hub.rules.states(rule.id, page: try PageRequest(limit: PageRequest.maxLimit, cursor: cursor), by: principal)
                    for device in page.items { print("device  \(device.deviceID): \(RulesCommand.describe(device.state))") }
                    cursor = page.nextCursor
                } while cursor != nil
            }
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Try a rule on a message: the value read, the state it leads to, the actions that would fire. Changes nothing."
        )
        @Argument(help: "The rule id.") var id: String
        @Option(help: "The message, as the device would publish it.") var message: String
        @Option(help: "The device it comes from.") var device = "device-1"
        @Option(help: "The state the device is in now; none for a first reading.") var state: String?
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                let result = try await hub.rules.test(self.id, payload: Array(self.message.utf8), deviceID: self.device, currentState: self.state, by: principal)
                if let skipped = result.skipped {
                    print("no value: \(skipped.rawValue)")
                    return
                }
                print("value   \(result.value.map { "\($0)" } ?? "")")
                print("state   \(result.previousState ?? "none") -> \(result.state ?? "none")\(result.crossed ? " (a crossing)" : "")")
                if result.actions.isEmpty { print("fires   nothing") }
                for action in result.actions {
                    let payload = action.payload.map { String(decoding: $0.encoded, as: UTF8.self) } ?? ""
                    print("fires   \(action.kind) \(action.target) \(payload)\(action.coolingDown ? " (cooling down)" : "")")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a rule and its devices' states.")
        @Argument(help: "The rule id.") var id: String
        @OptionGroup var options: TenantOptions

        func run() async throws {
            try await self.options.run { hub, principal in
                try await hub.rules.delete(self.id, by: principal)
                print("deleted \(self.id)")
            }
        }
    }
}
