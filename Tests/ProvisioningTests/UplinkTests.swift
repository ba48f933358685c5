import AWS
import ConduitTesting
import Foundation
import Hub
import MQTT
import MQTTBroker
import NIOCore
import Store
import Testing

@Suite("Uplinks to AWS IoT Core, against moto")
struct UplinkTests {
    static func message(_ device: String, _ subtopic: String, _ payload: String, qos: MQTTQoS = .atLeastOnce) -> MQTTBrokerMessage {
        MQTTBrokerMessage(topic: "devices/\(device)/\(subtopic)", payload: ByteBuffer(string: payload), qos: qos)
    }

    @Test("raw and envelope uplinks reach AWS on their topics, in each device's order", arguments: TestDatabase.allCases)
    func rawAndEnvelope(database: TestDatabase) async throws {
        try await ProvisioningFixture.run(database) { fixture in
            let run = UUID().uuidString.prefix(6).lowercased()
            _ = try await fixture.createIntegration(name: "raw") { draft in
                draft.uplinkTopic = "conduit/{deviceId}/up/{subtopic}"
                draft.thingGroup = .some(nil)
            }
            // {deviceName} needs a policy of the operator's: a per-thing one could not be scoped by it.
            let policy = "fleet-\(run)"
            _ = try await fixture.account.iot().createPolicy(
                name: policy, document: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#
            )
            let envelope = try await fixture.createIntegration(name: "envelope") { draft in
                draft.policy = .init(name: policy)
                draft.uplinkTopic = "fleet/{deviceName}/data"
                draft.payloadFormat = "envelope"
                draft.thingGroup = .some(nil)
            }
            let ids = ["up-\(run)-a", "up-\(run)-b"]
            for id in ids {
                try await fixture.createDevice(id, attributes: ["model": "m-1"])
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            try await Provisioner(hub: fixture.hub).drain()
            // The devices publish in turns; each one's order is what must hold.
            for index in 0..<40 {
                for id in ids {
                    #expect(try await fixture.hub.messages.ingest(deviceID: id, message: Self.message(id, "telemetry/temp", "\(id)#\(index)")) == .accepted)
                }
            }
            #expect(await UplinkForwarder(hub: fixture.hub).drain())
            #expect(try await fixture.hub.store.session.outbox.countByIntegration().isEmpty)

            let publishes = try MotoPeer.recordedPublishes()
            for id in ids {
                let rawOnes = publishes.filter { $0.topic == "conduit/\(id)/up/telemetry/temp" }
                #expect(rawOnes.map { String(decoding: $0.payload, as: UTF8.self) } == (0..<40).map { "\(id)#\($0)" })
                let wrapped = publishes.filter { $0.topic == "fleet/Sensor \(id)/data" }
                #expect(wrapped.count == 40)
                var last = 0
                for (index, publish) in wrapped.enumerated() {
                    let json = try #require(try JSONSerialization.jsonObject(with: Data(publish.payload)) as? [String: Any])
                    #expect(json["id"] as? String == id)
                    #expect(json["name"] as? String == "Sensor \(id)")
                    #expect(json["labels"] as? [String] == ["fleet"])
                    #expect(json["attributes"] as? [String: String] == ["model": "m-1"])
                    #expect(json["topic"] as? String == "devices/\(id)/telemetry/temp")
                    #expect((json["payload"] as? String).flatMap { Data(base64Encoded: $0) } == Data("\(id)#\(index)".utf8))
                    #expect(json["payloadSize"] as? Int == "\(id)#\(index)".utf8.count)
                    #expect(json["qos"] as? Int == 1)
                    #expect(json["integrationId"] as? String == envelope.id)
                    let sequence = try #require(json["sequence"] as? Int)
                    #expect(sequence > last)
                    last = sequence
                    #expect((json["receivedAt"] as? String)?.hasSuffix("Z") == true)
                }
            }
        }
    }

    @Test("a full backlog refuses QoS 1 messages instead of dropping them, and takes them again once drained")
    func backlogBound() async throws {
        let account = MotoPeer.Account()
        try await TestDatabase.sqlite.withStore { store in
            let hub = Hub(store: store, logger: .quiet, aws: try MotoPeer.environment(), uplinkBacklogLimit: 5)
            let tenant = try await hub.access.ensureDefaultTenant()
            let fixture = ProvisioningFixture(
                hub: hub, admin: Principal(tenantID: tenant.id, role: .admin, actor: "test"), account: account, iot: try account.iot()
            )
            _ = try await fixture.createIntegration { $0.thingGroup = .some(nil) }
            let id = "backlog-\(UUID().uuidString.prefix(6).lowercased())"
            try await fixture.createDevice(id)
            _ = try await hub.devices.perform(.accept, on: id, by: fixture.admin)
            for index in 0..<5 {
                #expect(try await hub.messages.ingest(deviceID: id, message: Self.message(id, "up", "m\(index)")) == .accepted)
            }
            #expect(try await hub.messages.ingest(deviceID: id, message: Self.message(id, "up", "m5")) == .refused(.quotaExceeded))
            // QoS 0 is at most once: kept in the history, not sent to the full integration.
            #expect(try await hub.messages.ingest(deviceID: id, message: Self.message(id, "up", "q0", qos: .atMostOnce)) == .accepted)
            #expect(try await hub.store.session.outbox.countByIntegration().values.reduce(0, +) == 5)
            #expect(await UplinkForwarder(hub: hub).drain())
            #expect(try await hub.messages.ingest(deviceID: id, message: Self.message(id, "up", "m5")) == .accepted)
            #expect(await UplinkForwarder(hub: hub).drain())
            let sent = try MotoPeer.recordedPublishes(containing: id).filter { $0.topic == "conduit/\(id)/up" }.map { String(decoding: $0.payload, as: UTF8.self) }
            #expect(sent == ["m0", "m1", "m2", "m3", "m4", "m5"])
        }
    }

    @Test("an integration whose endpoint accepts connections and never answers holds back only its own messages, which go once it answers")
    func hungEndpoint() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let moto = try MotoPeer.url()
        let control = directory.appendingPathComponent("mode")
        try Data("pass".utf8).write(to: control)
        let proxyPort = freeLoopbackPort()
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proxy.arguments = ["python3", Self.stallProxy, "\(proxyPort)", "\(moto.port ?? 80)", control.path]
        let output = directory.appendingPathComponent("proxy.out")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        proxy.standardOutput = try FileHandle(forWritingTo: output)
        try proxy.run()
        do {
            try await Self.hungEndpoint(proxyPort: proxyPort, control: control, output: output)
        } catch {
            Issue.record(error)
        }
        kill(proxy.processIdentifier, SIGKILL)
        await ConduitExecutable.waitForExit(proxy)
    }

    private static func hungEndpoint(proxyPort: Int, control: URL, output: URL) async throws {
        try await waitUntil("the proxy to listen", seconds: 20) { (try? String(contentsOf: output, encoding: .utf8))?.contains("ready") == true }

        try await ProvisioningFixture.run(.sqlite, allowing: ["http://127.0.0.1:\(proxyPort)"]) { fixture in
            let run = UUID().uuidString.prefix(6).lowercased()
            _ = try await fixture.createIntegration(name: "answers") { draft in
                draft.uplinkTopic = "answers/{deviceId}"
                draft.thingGroup = .some(nil)
            }
            _ = try await fixture.createIntegration(name: "hangs") { draft in
                draft.endpointURL = .some("http://127.0.0.1:\(proxyPort)")
                draft.uplinkTopic = "hangs/{deviceId}"
                draft.thingGroup = .some(nil)
            }
            let ids = (0..<4).map { "hung-\(run)-\($0)" }
            for id in ids {
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            try await Provisioner(hub: fixture.hub).drain()

            // The second integration's endpoint now takes connections and never answers.
            try Data("stall".utf8).write(to: control)
            try await Task.sleep(for: .milliseconds(200))
            let forwarder = UplinkForwarder(hub: fixture.hub)
            let forwarding = Task { await forwarder.run() }
            defer { forwarding.cancel() }
            let perDevice = 50
            for index in 0..<perDevice {
                for id in ids {
                    #expect(try await fixture.hub.messages.ingest(deviceID: id, message: Self.message(id, "up", "\(id)#\(index)")) == .accepted)
                }
            }
            func arrived(_ prefix: String) throws -> [String: [String]] {
                var byDevice: [String: [String]] = [:]
                for publish in try MotoPeer.recordedPublishes(containing: "hung-\(run)-") where publish.topic.hasPrefix(prefix + "/hung-\(run)-") {
                    byDevice[String(publish.topic.dropFirst(prefix.count + 1)), default: []].append(String(decoding: publish.payload, as: UTF8.self))
                }
                return byDevice
            }
            // Bound: 45 s for 200 messages to moto (under 1 s on a quiet machine), with the other
            // integration's requests hanging, each for its 10 s timeout and again.
            try await waitUntil("every message of the answering integration in moto", seconds: 45) {
                try arrived("answers").values.reduce(0) { $0 + $1.count } >= ids.count * perDevice
            }
            for id in ids {
                #expect(try arrived("answers")[id] == (0..<perDevice).map { "\(id)#\($0)" })
            }
            let waiting = try await fixture.hub.store.session.outbox.countByIntegration()
            #expect(waiting.values.reduce(0, +) == ids.count * perDevice, "the hung integration's messages wait in its outbox")
            #expect(try arrived("hangs").isEmpty)

            try Data("pass".utf8).write(to: control)
            // Every message, not a count that duplicates (at least once) could fill before the last one came.
            try await waitUntil("the hung integration's messages in moto once it answers", seconds: 120) {
                try arrived("hangs").values.reduce(0) { $0 + Set($1).count } >= ids.count * perDevice
            }
            for id in ids {
                // A request that timed out while the endpoint hung may still land once it answers
                // (at least once): duplicates are allowed, gaps and reordering of first arrivals are not.
                var seen = Set<String>()
                let firsts = try (arrived("hangs")[id] ?? []).filter { seen.insert($0).inserted }
                #expect(firsts == (0..<perDevice).map { "\(id)#\($0)" })
            }
            try await waitUntil("the outbox empty", seconds: 20) {
                try await fixture.hub.store.session.outbox.countByIntegration().values.reduce(0, +) == 0
            }
        }
    }

    static let stallProxy = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/stall_proxy.py").path
}
