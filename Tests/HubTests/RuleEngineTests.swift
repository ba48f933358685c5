import Foundation
import Testing

@testable import Hub

/// The rule engine's pure core, by calling it: values read, states with hysteresis, debounce,
/// cooldown, firing once per crossing, and the templates.
@Suite("Rule engine")
struct RuleEngineTests {
    /// Waylay's seed: Above over 350 turns the light off, Below under 300 turns it on.
    static let lights = RuleDefinition(
        source: .init(all: true), subtopic: "up", value: "$.lightValue",
        states: ["Above": .init(above: 350), "Below": .init(below: 300)],
        actions: [
            .init(on: .init(to: "Above"), publish: .init(integrationId: "int_1", topic: "lights/{deviceId}/set", payload: .object(["lightStatus": .string("off")]))),
            .init(on: .init(to: "Below"), publish: .init(integrationId: "int_1", topic: "lights/{deviceId}/set", payload: .object(["lightStatus": .string("on")]))),
        ]
    )

    /// Runs readings through the rule, a second apart; returns the payloads fired, in order.
    static func run(_ definition: RuleDefinition, _ readings: [Double], state: inout RuleDeviceState, start: Date = Date(timeIntervalSince1970: 0)) -> [String] {
        var fired: [String] = []
        for (index, reading) in readings.enumerated() {
            let evaluation = RuleEngine.evaluate(definition, value: reading, state: &state, at: start.addingTimeInterval(Double(index)))
            for action in evaluation.fired {
                fired.append(definition.actions[action].publish?.payload.object?["lightStatus"].flatMap { if case .string(let s) = $0 { s } else { nil } } ?? "#\(action)")
            }
        }
        return fired
    }

    @Test("Waylay's readings fire off, on, off: once per crossing, never again while the state holds, nothing in the gap, nothing for the first state")
    func waylaySeed() throws {
        try RuleRules.check(Self.lights)
        var state = RuleDeviceState()
        #expect(Self.run(Self.lights, [100, 400, 420, 380, 320, 310, 250, 200, 400], state: &state) == ["off", "on", "off"])
        #expect(state.state == "Above")
        // Carried on from the stored state (a restart): another reading above fires nothing.
        var restored = try JSONDecoder().decode(RuleDeviceState.self, from: JSONEncoder().encode(state))
        #expect(Self.run(Self.lights, [410], state: &restored, start: Date(timeIntervalSince1970: 100)).isEmpty)
        #expect(Self.run(Self.lights, [290], state: &restored, start: Date(timeIntervalSince1970: 101)) == ["on"])
    }

    @Test("debounce by samples: a state holds after N readings in a row in its band; a reading in the gap or back starts the count again")
    func debounceSamples() {
        var rule = Self.lights
        rule.debounce = .init(samples: 3)
        var state = RuleDeviceState()
        #expect(Self.run(rule, [100, 400, 400], state: &state).isEmpty)
        #expect(state.state == "Below" && state.candidate == "Above" && state.candidateSamples == 2)
        #expect(Self.run(rule, [320, 400, 400], state: &state).isEmpty)  // the gap broke the row
        #expect(Self.run(rule, [400], state: &state) == ["off"])
        #expect(Self.run(rule, [200, 100, 400, 50], state: &state).isEmpty)  // back above breaks the row
        #expect(state.state == "Above")
    }

    @Test("debounce by time: a state holds once the value stayed in its band that long")
    func debounceSeconds() {
        var rule = Self.lights
        rule.debounce = .init(forSeconds: 10)
        var state = RuleDeviceState()
        let start = Date(timeIntervalSince1970: 1000)
        _ = RuleEngine.evaluate(rule, value: 100, state: &state, at: start)
        #expect(RuleEngine.evaluate(rule, value: 400, state: &state, at: start.addingTimeInterval(1)).fired.isEmpty)
        #expect(RuleEngine.evaluate(rule, value: 401, state: &state, at: start.addingTimeInterval(10.9)).fired.isEmpty)
        #expect(RuleEngine.evaluate(rule, value: 402, state: &state, at: start.addingTimeInterval(11)).fired == [0])
    }

    @Test("cooldown: an action that fired is held back for its cooldown, per device; the state still moves")
    func cooldown() {
        var rule = Self.lights
        rule.actions[0].cooldownSeconds = 60
        var state = RuleDeviceState()
        let start = Date(timeIntervalSince1970: 0)
        _ = RuleEngine.evaluate(rule, value: 100, state: &state, at: start)
        #expect(RuleEngine.evaluate(rule, value: 400, state: &state, at: start.addingTimeInterval(1)).fired == [0])
        #expect(RuleEngine.evaluate(rule, value: 200, state: &state, at: start.addingTimeInterval(2)).fired == [1])
        let held = RuleEngine.evaluate(rule, value: 400, state: &state, at: start.addingTimeInterval(30))
        #expect(held.fired.isEmpty && held.cooledDown == [0] && held.crossed && state.state == "Above")
        _ = RuleEngine.evaluate(rule, value: 200, state: &state, at: start.addingTimeInterval(40))
        #expect(RuleEngine.evaluate(rule, value: 400, state: &state, at: start.addingTimeInterval(62)).fired == [0])
        // Another device has its own cooldown.
        var other = RuleDeviceState(state: "Below")
        #expect(RuleEngine.evaluate(rule, value: 400, state: &other, at: start.addingTimeInterval(30)).fired == [0])
    }

    @Test("an action with from fires only on that crossing")
    func fromTransition() {
        var rule = Self.lights
        rule.states["Middle"] = .init(above: 300, below: 350)
        rule.actions = [.init(on: .init(from: "Above", to: "Middle"), downlink: .init(payload: .string("easing")))]
        var state = RuleDeviceState()
        let start = Date(timeIntervalSince1970: 0)
        _ = RuleEngine.evaluate(rule, value: 100, state: &state, at: start)
        #expect(RuleEngine.evaluate(rule, value: 320, state: &state, at: start).fired.isEmpty)  // Below -> Middle
        _ = RuleEngine.evaluate(rule, value: 400, state: &state, at: start)
        #expect(RuleEngine.evaluate(rule, value: 320, state: &state, at: start).fired == [0])  // Above -> Middle
    }

    @Test("values: numbers at a path, booleans as 1 and 0; not JSON, no value and a string are skipped with the reason")
    func values() throws {
        let path = try JSONPath(parsing: "$.a.b[1]")
        #expect(RuleEngine.value(of: Array(#"{"a": {"b": [1, 2.5]}}"#.utf8), at: path) == .success(2.5))
        #expect(RuleEngine.value(of: Array(#"{"a": {"b": [1, true]}}"#.utf8), at: path) == .success(1))
        #expect(RuleEngine.value(of: Array("not json".utf8), at: path) == .failure(.init(.notJSON)))
        #expect(RuleEngine.value(of: Array(#"{"a": {"b": [1]}}"#.utf8), at: path) == .failure(.init(.noValue)))
        #expect(RuleEngine.value(of: Array(#"{"a": {"b": [1, "2"]}}"#.utf8), at: path) == .failure(.init(.notANumber)))
        #expect(try JSONPath(parsing: "$['temp °C']").value(in: .object(["temp °C": .integer(3)])) == .integer(3))
        #expect(try JSONPath(parsing: "$").value(in: .integer(7)) == .integer(7))
        for (bad, message) in [
            ("lightValue", "must start with $ (such as $.temperature)"), ("$.", "a name must follow '.' at character 3 (letters, digits, _ and -; ['...'] for others)"),
            ("$[x]", "[ at character 2 must hold an index below 1000000 or a quoted name, such as [0] or ['a b']"), ("$['a]", "['...'] at character 2 is not closed"),
            ("$ .a", "unexpected ' ' at character 2; steps are .name, ['name'] or [index]"),
        ] {
            #expect(throws: JSONPathError(message), "\(bad)") { try JSONPath(parsing: bad) }
        }
    }

    @Test("templates: placeholders in topics and in the payload's strings; a lone {value} is the number")
    func templates() {
        let context = RuleEngine.Context(deviceID: "dev-1", deviceName: "Hall \"A\"", value: 412, state: "Above", previousState: "Below")
        #expect(RuleEngine.render("lights/{deviceId}/{state}/{unknown}", context) == "lights/dev-1/Above/{unknown}")
        let payload = JSONValue.object([
            "v": .string("{value}"), "text": .string("{deviceName} went {previousState} -> {state} at {value}"), "list": .array([.string("{deviceId}")]),
        ])
        #expect(
            RuleEngine.render(payload, context)
                == .object(["v": .integer(412), "text": .string("Hall \"A\" went Below -> Above at 412"), "list": .array([.string("dev-1")])])
        )
        #expect(RuleEngine.render(.string("{value}"), .init(deviceID: "d", deviceName: "", value: 2.5, state: "s", previousState: nil)) == .number(2.5))
    }

    @Test("definitions are checked, each refusal naming the field and the rule")
    func validation() {
        func refusal(_ change: (inout RuleDefinition) -> Void) -> String? {
            var rule = Self.lights
            change(&rule)
            do {
                try RuleRules.check(rule)
                return nil
            } catch let error as HubError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal { _ in } == nil)
        #expect(refusal { $0.states["Mid"] = .init(above: 340, below: 360) } == "states: Above and Mid overlap (values between 350.0 and 360.0 would be in both); bands must be apart")
        #expect(refusal { $0.states["Above"] = .init(above: 400, below: 300) } == "states.Above: above (400.0) must be less than below (300.0), or no value is in the band")
        #expect(refusal { $0.states["bad name"] = .init(above: 1000) } == "states: state names must match [A-Za-z0-9_-]{1,64}, not 'bad name'")
        #expect(refusal { $0.actions[0].on.to = "Sideways" } == "actions[0].on.to: 'Sideways' is not one of the rule's states (Above, Below)")
        #expect(refusal { $0.actions[0].publish?.topic = "lights/{deviceName}/set" } == "actions[0].publish.topic: {deviceName} cannot stand in a topic; use {deviceId}, {state}, {previousState}")
        #expect(refusal { $0.actions[0].publish?.topic = "lights/+/set" } == "actions[0].publish.topic: must not contain MQTT wildcards (+, #): it is a topic to publish on")
        #expect(refusal { $0.actions[0].downlink = .init(payload: .null) } == "actions[0]: give exactly one of publish, downlink or webhook")
        #expect(refusal { $0.actions[0].cooldownSeconds = 0 } == "actions[0].cooldownSeconds: must be above 0 and at most 86400 (a day)")
        #expect(refusal { $0.debounce = .init(forSeconds: 5, samples: 2) } == "debounce: give one of {forSeconds: N} or {samples: N}")
        #expect(refusal { $0.subtopic = "a/#/b" } == "subtopic: '#' may stand only as the whole last level")
        #expect(refusal { $0.value = "lightValue" } == "value: must start with $ (such as $.temperature)")
        #expect(refusal { $0.source = .init(devices: ["a"], all: true) } == "source: give one of {devices: [ids]}, {labels: [labels]} or {all: true}")
        #expect(refusal { $0.actions = [] } == "actions: give at least one action")
    }
}
