import AWS
import ConduitTesting
import Foundation
import Hub
import MQTT
import MQTTBroker
import NIOCore
import Store
import Testing

/// Rules evaluated at ingest, against moto: Waylay's seed fires exactly its three publishes, in
/// order, through the outbox; states survive a new hub on the same store; downlinks queue.
@Suite("Rules at ingest, against moto")
struct RuleIngestTests {
    static func lights(integrationID: String) -> RuleDefinition {
        RuleDefinition(
            source: .init(labels: ["fleet"]), subtopic: "up", value: "$.lightValue",
            states: ["Above": .init(above: 350), "Below": .init(below: 300)],
            actions: [
                .init(on: .init(to: "Above"), publish: .init(integrationId: integrationID, topic: "lights/{deviceId}/set", payload: .object(["lightStatus": .string("off")]))),
                .init(on: .init(to: "Below"), publish: .init(integrationId: integrationID, topic: "lights/{deviceId}/set", payload: .object(["lightStatus": .string("on")]))),
            ]
        )
    }

    static func reading(_ device: String, _ value: Int) -> MQTTBrokerMessage {
        MQTTBrokerMessage(topic: "devices/\(device)/up", payload: ByteBuffer(string: #"{"lightValue": \#(value)}"#), qos: .atLeastOnce)
    }

    @Test("Waylay's readings publish off, on, off to AWS, once each and in order; the rule's state outlives the hub", arguments: TestDatabase.allCases)
    func waylaySeed(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let run = UUID().uuidString.prefix(6).lowercased()
            let integration = try await fixture.createIntegration { $0.thingGroup = .some(nil) }
            let device = "lamp-\(run)"
            try await fixture.createDevice(device)
            _ = try await fixture.hub.devices.perform(.accept, on: device, by: fixture.admin)
            try await Provisioner(hub: fixture.hub).drain()
            let rule = try await fixture.hub.rules.create(name: "lights", definition: Self.lights(integrationID: integration.id), by: fixture.admin)

            for value in [100, 400, 420, 380, 320] {
                #expect(try await fixture.hub.messages.ingest(deviceID: device, message: Self.reading(device, value)) == .accepted)
            }
            // A new hub on the same store, as after a restart: it reads the state, and 330 (in
            // the gap) and another reading above fire nothing.
            let again = Hub(store: fixture.hub.store, secrets: fixture.hub.secrets, aws: try MotoPeer.environment())
            for value in [330, 410, 310, 250, 200, 400] {
                #expect(try await again.messages.ingest(deviceID: device, message: Self.reading(device, value)) == .accepted)
            }
            #expect(await UplinkForwarder(hub: again).drain())
            let publishes = try MotoPeer.recordedPublishes()
            let lights = publishes.filter { $0.topic == "lights/\(device)/set" }
            #expect(lights.map { String(decoding: $0.payload, as: UTF8.self) } == [#"{"lightStatus":"off"}"#, #"{"lightStatus":"on"}"#, #"{"lightStatus":"off"}"#])
            // Each reading went up on the device's own uplink topic too, all eleven, and each
            // light publish after the reading that fired it (the outbox's order: the device's own first).
            let mine = publishes.filter { $0.topic == "conduit/\(device)/up" || $0.topic == "lights/\(device)/set" }.map {
                $0.topic.hasPrefix("lights/") ? "light " + String(decoding: $0.payload, as: UTF8.self) : String(decoding: $0.payload, as: UTF8.self)
            }
            #expect(mine.filter { !$0.hasPrefix("light ") }.count == 11)
            #expect(mine.firstIndex(of: #"light {"lightStatus":"off"}"#) == mine.firstIndex(of: #"{"lightValue": 400}"#).map { $0 + 1 }, "\(mine)")
            #expect(mine.firstIndex(of: #"light {"lightStatus":"on"}"#) == mine.firstIndex(of: #"{"lightValue": 250}"#).map { $0 + 1 }, "\(mine)")

            let states = try await fixture.hub.rules.states(rule.id, page: try PageRequest(), by: fixture.admin).items
            #expect(states.map(\.deviceID) == [device])
            #expect(states.first?.state.state == "Above")
            #expect(states.first?.state.value == 400)
            let fired = try await fixture.hub.events.list(filter: .init(type: EventType.ruleFired), page: try PageRequest(limit: 10), by: fixture.admin)
            #expect(fired.items.count == 3)
            #expect(fired.items.allSatisfy { $0.deviceID == device && $0.data.contains(rule.id) })
        }
    }

    @Test("a downlink action queues for the named device; a reading that is not JSON or lacks the value fires nothing")
    func downlinkAction() async throws {
        try await ProvisioningFixture.run(.sqlite) { fixture in
            let sensor = "sensor-1", fan = "fan-1"
            for id in [sensor, fan] {
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            let definition = RuleDefinition(
                source: .init(devices: [sensor]), subtopic: "#", value: "$.t", states: ["Hot": .init(above: 30), "Cool": .init(below: 25)],
                debounce: .init(samples: 2),
                actions: [.init(on: .init(from: "Cool", to: "Hot"), downlink: .init(deviceId: fan, payload: .object(["fan": .string("on"), "t": .string("{value}")])))]
            )
            _ = try await fixture.hub.rules.create(name: "fan", definition: definition, by: fixture.admin)
            func send(_ payload: String, topic: String = "telemetry") async throws {
                let message = MQTTBrokerMessage(topic: "devices/\(sensor)/\(topic)", payload: ByteBuffer(string: payload), qos: .atLeastOnce)
                #expect(try await fixture.hub.messages.ingest(deviceID: sensor, message: message) == .accepted)
            }
            try await send(#"{"t": 20}"#)
            try await send("not json")
            try await send(#"{"humidity": 40}"#)
            try await send(#"{"t": 31}"#)
            #expect(try await fixture.hub.downlinks.list(deviceID: fan, by: fixture.admin).isEmpty)  // one sample of two
            try await send(#"{"t": 32.5}"#, topic: "a/b")
            let queued = try await fixture.hub.downlinks.list(deviceID: fan, by: fixture.admin)
            #expect(queued.count == 1)
            #expect(queued.first.map { String(decoding: $0.payload, as: UTF8.self) } == #"{"fan":"on","t":32.5}"#)
            #expect(queued.first?.source.hasPrefix("rule:") == true)

            // Deleted and made again under its id, the sensor starts afresh: its first reading,
            // hot, is where it starts and fires nothing.
            try await fixture.hub.devices.delete(sensor, by: fixture.admin)
            try await fixture.createDevice(sensor)
            _ = try await fixture.hub.devices.perform(.accept, on: sensor, by: fixture.admin)
            try await send(#"{"t": 35}"#)
            try await send(#"{"t": 36}"#)
            #expect(try await fixture.hub.downlinks.list(deviceID: fan, by: fixture.admin).count == 1)
        }
    }

    @Test("a changed definition starts every device afresh; a deleted rule forgets its states")
    func definitionChange() async throws {
        try await ProvisioningFixture.run(.sqlite) { fixture in
            let device = "pump-1"
            try await fixture.createDevice(device)
            _ = try await fixture.hub.devices.perform(.accept, on: device, by: fixture.admin)
            var definition = RuleDefinition(
                source: .init(all: true), subtopic: "up", value: "$.p", states: ["On": .init(above: 10), "Off": .init(below: 5)],
                actions: [.init(on: .init(to: "On"), downlink: .init(payload: .string("valve open")))]
            )
            let rule = try await fixture.hub.rules.create(name: "valve", definition: definition, by: fixture.admin)
            func send(_ value: Int) async throws {
                let message = MQTTBrokerMessage(topic: "devices/\(device)/up", payload: ByteBuffer(string: #"{"p": \#(value)}"#), qos: .atLeastOnce)
                #expect(try await fixture.hub.messages.ingest(deviceID: device, message: message) == .accepted)
            }
            try await send(1)
            #expect(try await fixture.hub.rules.states(rule.id, page: try PageRequest(), by: fixture.admin).items.first?.state.state == "Off")
            // The states renamed: under the new definition the old "Off" means nothing, and the
            // next reading (High) is where the device starts, not a crossing.
            definition.states = ["High": .init(above: 10), "Low": .init(below: 5)]
            definition.actions = [.init(on: .init(to: "High"), downlink: .init(payload: .string("valve open")))]
            _ = try await fixture.hub.rules.update(rule.id, definition: definition, by: fixture.admin)
            #expect(try await fixture.hub.rules.states(rule.id, page: try PageRequest(), by: fixture.admin).items.isEmpty)
            try await send(20)
            #expect(try await fixture.hub.downlinks.list(deviceID: device, by: fixture.admin).isEmpty)
            try await send(1)
            try await send(20)
            #expect(try await fixture.hub.downlinks.list(deviceID: device, by: fixture.admin).count == 1)
            try await fixture.hub.rules.delete(rule.id, by: fixture.admin)
            #expect(try await fixture.hub.store.session.rules.states([(rule.id, device)]).isEmpty)
        }
    }
}
