import ConduitTesting
import Foundation
import Hub
import MQTTBroker
import NIOCore
import Store
import Testing

/// `/v1/rules` as its users meet it: admins write, every role reads and tries; the dry run
/// answers without touching anything; bad definitions are refused naming the field.
@Suite("Rules API")
struct RuleAPITests {
    static let lights = #"""
        {"name": "lights", "source": {"labels": ["fleet"]}, "subtopic": "up", "value": "$.lightValue",
         "states": {"Above": {"above": 350}, "Below": {"below": 300}},
         "actions": [
           {"on": {"to": "Above"}, "downlink": {"payload": {"lightStatus": "off", "at": "{value}", "id": "{deviceId}"}}},
           {"on": {"to": "Below"}, "cooldownSeconds": 60, "downlink": {"payload": {"lightStatus": "on"}}}
         ]}
        """#

    @Test("admins create, change and delete rules; every role reads them and runs the dry run", arguments: TestDatabase.allCases)
    func crud(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            #expect(try await api.call(.post, "/v1/rules", token: api.operator, json: Self.lights).status == .forbidden)
            let created = try await api.call(.post, "/v1/rules", token: api.admin, json: Self.lights)
            #expect(created.status == .created, "\(created.text)")
            let id = try #require(created.json?["id"] as? String)
            #expect(created.headers[.location] == "/v1/rules/\(id)")
            #expect(created.json?["enabled"] as? Bool == true)
            #expect(created.json?["debounce"] is NSNull)
            #expect((created.json?["states"] as? [String: Any])?.keys.sorted() == ["Above", "Below"])
            let metrics = created.json?["metrics"] as? [String: Int]
            #expect(metrics == ["evaluated": 0, "matched": 0, "skipped": 0, "fired": 0, "actionFailures": 0])
            #expect(try await api.call(.post, "/v1/rules", token: api.admin, json: Self.lights).errorCode == "rule_exists")

            let listed = try await api.call(.get, "/v1/rules", token: api.reader)
            #expect(listed.items.map { $0["id"] as? String } == [id])
            #expect(try await api.call(.get, "/v1/rules/\(id)", token: api.reader).json?["name"] as? String == "lights")
            // Another tenant sees nothing of it.
            #expect(try await api.call(.get, "/v1/rules/\(id)", token: api.otherTenantAdmin).status == .notFound)
            #expect(try await api.call(.get, "/v1/rules", token: api.otherTenantAdmin).items.isEmpty)

            // A patch of one definition field keeps the others; debounce comes and goes.
            let patched = try await api.call(.patch, "/v1/rules/\(id)", token: api.admin, json: #"{"debounce": {"samples": 3}, "enabled": false}"#)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect((patched.json?["debounce"] as? [String: Any])?["samples"] as? Int == 3)
            #expect(patched.json?["enabled"] as? Bool == false)
            #expect(patched.json?["value"] as? String == "$.lightValue")
            #expect((patched.json?["actions"] as? [Any])?.count == 2)
            let cleared = try await api.call(.patch, "/v1/rules/\(id)", token: api.admin, json: #"{"debounce": null}"#)
            #expect(cleared.json?["debounce"] is NSNull)
            #expect(try await api.call(.patch, "/v1/rules/\(id)", token: api.operator, json: #"{"enabled": true}"#).status == .forbidden)

            #expect(try await api.call(.delete, "/v1/rules/\(id)", token: api.reader).status == .forbidden)
            #expect(try await api.call(.delete, "/v1/rules/\(id)", token: api.admin).status == .noContent)
            #expect(try await api.call(.get, "/v1/rules/\(id)", token: api.admin).status == .notFound)
        }
    }

    @Test("the dry run answers the value, the state and the rendered actions, and changes nothing")
    func dryRun() async throws {
        try await APIHarness.run(.sqlite) { api in
            try await api.createDevice("lamp-1", labels: ["fleet"])
            #expect(try await api.call(.post, "/v1/devices/lamp-1/accept", token: api.operator).status == .ok)
            let id = try #require(try await api.call(.post, "/v1/rules", token: api.admin, json: Self.lights).json?["id"] as? String)
            let eventsBefore = try await api.call(.get, "/v1/events?limit=100", token: api.admin).items.count

            let crossing = try await api.call(
                .post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": {"lightValue": 400}, "deviceId": "lamp-1", "state": "Below"}"#
            )
            #expect(crossing.status == .ok, "\(crossing.text)")
            #expect(crossing.json?["value"] as? Double == 400)
            #expect(crossing.json?["previousState"] as? String == "Below")
            #expect(crossing.json?["state"] as? String == "Above")
            #expect(crossing.json?["crossed"] as? Bool == true)
            let actions = crossing.json?["actions"] as? [[String: Any]] ?? []
            #expect(actions.count == 1)
            #expect(actions.first?["kind"] as? String == "downlink")
            #expect(actions.first?["target"] as? String == "lamp-1")
            let payload = actions.first?["payload"] as? [String: Any]
            #expect(payload?["lightStatus"] as? String == "off")
            #expect(payload?["at"] as? Int == 400, "a string that is only {value} becomes the number")
            #expect(payload?["id"] as? String == "lamp-1")

            // In the gap, the device keeps its state: nothing fires.
            let gap = try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": {"lightValue": 320}, "state": "Above"}"#)
            #expect(gap.json?["state"] as? String == "Above")
            #expect(gap.json?["crossed"] as? Bool == false)
            #expect((gap.json?["actions"] as? [Any])?.isEmpty == true)
            // A first reading sets the state and fires nothing.
            let first = try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": {"lightValue": 100}}"#)
            #expect(first.json?["state"] as? String == "Below")
            #expect(first.json?["previousState"] is NSNull)
            #expect((first.json?["actions"] as? [Any])?.isEmpty == true)
            let notJSON = try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": "21.5 degrees"}"#)
            #expect(notJSON.json?["skipped"] as? String == "no_value")
            let noPath = try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": {"other": 1}}"#)
            #expect(noPath.json?["skipped"] as? String == "no_value")
            #expect(noPath.json?["value"] is NSNull)

            let badState = try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": {}, "state": "Sideways"}"#)
            #expect(badState.status == .badRequest)
            #expect(badState.errorMessage == "state: 'Sideways' is not one of the rule's states (Above, Below)")
            #expect(try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"deviceId": "lamp-1"}"#).errorMessage?.hasPrefix("message: is required") == true)
            #expect(try await api.call(.post, "/v1/rules/\(id)/test", token: api.reader, json: #"{"message": 1, "deviceId": "nobody"}"#).errorMessage == "deviceId: no device 'nobody' in the tenant")

            // Nothing moved: no state, no downlink, no event.
            #expect(try await api.call(.get, "/v1/rules/\(id)/states", token: api.reader).items.isEmpty)
            #expect(try await api.call(.get, "/v1/devices/lamp-1/downlinks", token: api.reader).items.isEmpty)
            #expect(try await api.call(.get, "/v1/events?limit=100", token: api.admin).items.count == eventsBefore)
            #expect(try await api.call(.get, "/v1/rules/\(id)", token: api.reader).json?["metrics"] as? [String: Int] == [
                "evaluated": 0, "matched": 0, "skipped": 0, "fired": 0, "actionFailures": 0,
            ])
        }
    }

    @Test("readings move the device's state and the rule's metrics, both visible in the API")
    func statesAndMetrics() async throws {
        try await APIHarness.run(.sqlite) { api in
            try await api.createDevice("lamp-1", labels: ["fleet"])
            #expect(try await api.call(.post, "/v1/devices/lamp-1/accept", token: api.operator).status == .ok)
            let id = try #require(try await api.call(.post, "/v1/rules", token: api.admin, json: Self.lights).json?["id"] as? String)
            for payload in [#"{"lightValue": 100}"#, #"{"lightValue": 400}"#, #"{"lightValue": 320}"#, "not json", #"{"x": 1}"#] {
                let message = MQTTBrokerMessage(topic: "devices/lamp-1/up", payload: ByteBuffer(string: payload), qos: .atLeastOnce)
                #expect(try await api.hub.messages.ingest(deviceID: "lamp-1", message: message) == .accepted)
            }
            let rule = try await api.call(.get, "/v1/rules/\(id)", token: api.reader)
            #expect(rule.json?["metrics"] as? [String: Int] == ["evaluated": 5, "matched": 2, "skipped": 2, "fired": 1, "actionFailures": 0])
            let states = try await api.call(.get, "/v1/rules/\(id)/states", token: api.reader)
            #expect(states.items.count == 1)
            #expect(states.items.first?["deviceId"] as? String == "lamp-1")
            #expect(states.items.first?["state"] as? String == "Above")
            #expect((states.items.first?["lastFired"] as? [String: Any])?.keys.sorted() == ["0"])
            let downlinks = try await api.call(.get, "/v1/devices/lamp-1/downlinks", token: api.reader)
            #expect(downlinks.items.count == 1)
            #expect(try await api.call(.get, "/v1/rules/\(id)/states?cursor=bogus", token: api.reader).status == .badRequest)
        }
    }

    @Test("a bad definition is refused naming the field and the rule, and nothing is stored")
    func badInput() async throws {
        try await APIHarness.run(.sqlite) { api in
            func refused(_ expected: String, whole: Bool = true, _ change: (inout [String: Any]) -> Void, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                var body = try #require(try JSONSerialization.jsonObject(with: Data(Self.lights.utf8)) as? [String: Any])
                change(&body)
                let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
                let reply = try await api.call(.post, "/v1/rules", token: api.admin, json: json)
                #expect(reply.status == .badRequest, "\(json) → \(reply.status)", sourceLocation: sourceLocation)
                let message = reply.errorMessage ?? ""
                #expect(whole ? message == expected : message.hasPrefix(expected), "\(message)", sourceLocation: sourceLocation)
            }
            func action(_ index: Int, _ change: @escaping (inout [String: Any]) -> Void) -> (inout [String: Any]) -> Void {
                { body in
                    var actions = body["actions"] as! [[String: Any]]
                    change(&actions[index])
                    body["actions"] = actions
                }
            }
            try await refused("colour: unknown field; allowed: actions, debounce, enabled, name, source, states, subtopic, value") { $0["colour"] = "red" }
            try await refused("actions[1].cooldownSecs: unknown field", action(1) { $0["cooldownSecs"] = 5 })
            try await refused("value: must start with $ (such as $.temperature)") { $0["value"] = "lightValue" }
            try await refused("subtopic: '#' may stand only as the whole last level") { $0["subtopic"] = "up/#/x" }
            try await refused("states: Above and Below overlap", whole: false) { $0["states"] = ["Above": ["above": 300], "Below": ["below": 350]] }
            try await refused("states.Above: above (400.0) must be less than below", whole: false) { $0["states"] = ["Above": ["above": 400, "below": 300]] }
            try await refused("actions[0].on.to: 'Sideways' is not one of the rule's states (Above, Below)", action(0) { $0["on"] = ["to": "Sideways"] })
            try await refused("actions[0].on: from and to are the same state: that is no crossing", action(0) { $0["on"] = ["from": "Above", "to": "Above"] })
            try await refused("actions[0].on: must be an object", action(0) { $0["on"] = "Above" })
            try await refused("actions[0].on.to: is required", action(0) { $0["on"] = ["from": "Below"] })
            try await refused("actions[0].cooldownSeconds: must be above 0 and at most 86400 (a day)", action(0) { $0["cooldownSeconds"] = -1 })
            try await refused("actions[0]: give exactly one of publish, downlink or webhook", action(0) { $0["publish"] = ["integrationId": "nope", "topic": "a/b", "payload": [:]] })
            try await refused("debounce: give one of {forSeconds: N} or {samples: N}") { $0["debounce"] = ["samples": 3, "forSeconds": 2] }
            try await refused("source: give one of {devices: [ids]}, {labels: [labels]} or {all: true}") { $0["source"] = ["labels": ["fleet"], "all": true] }
            try await refused(
                "actions[0].publish.topic: {deviceName} cannot stand in a topic; use {deviceId}, {state}, {previousState}",
                action(0) {
                    $0["downlink"] = nil
                    $0["publish"] = ["integrationId": "nope", "topic": "lights/{deviceName}/set", "payload": [:]]
                }
            )
            // A publish through an integration the tenant has not, or one being deleted.
            let tenant = try await api.hub.access.tenant(named: Tenant.defaultName)
            let settings = IntegrationSettings(
                region: "us-east-1", endpointURL: nil, policyName: nil, perThingPolicy: true, thingGroup: nil, thingAttributes: [], uplinkTopic: "conduit/{deviceId}",
                payloadFormat: "raw", downlinkPrefix: "conduit/downlink", binding: IntegrationBinding(all: true)
            )
            try await api.hub.store.session.integrations.insert(
                Integration(
                    id: "int_going", tenantID: tenant.id, name: "going", type: "aws-iot-core", settings: settings, credentials: IntegrationCredentials(kind: .default),
                    active: true, status: .deleting, dataEndpoint: nil, createdGroups: [], createdAt: Date(), updatedAt: Date()
                )
            )
            for (integrationID, reason) in [("nope", "no integration 'nope' in the tenant"), ("int_going", "integration 'int_going' is being deleted")] {
                try await refused(
                    "actions[0].publish.integrationId: \(reason)",
                    action(0) {
                        $0["downlink"] = nil
                        $0["publish"] = ["integrationId": integrationID, "topic": "lights/{deviceId}/set", "payload": [:]]
                    }
                )
            }
            #expect(try await api.call(.get, "/v1/rules", token: api.admin).items.isEmpty)
        }
    }
}
