import AWSIoT
import ConduitTesting
import Foundation
import Testing

/// Waylay's AWS IoT integration, played end to end through `conduit serve`: a real MQTT device
/// publishes its light readings to Conduit's broker, a rule publishes `lightStatus` to AWS IoT
/// (moto, whose recorder shows what arrived), Conduit restarts mid-run, and data published at the
/// AWS data endpoint (mosquitto standing in) comes back into the device's history and drives a rule.
@Suite("Waylay's seed, end to end")
struct WaylayTests {
    static func publish(_ mqtt: Int, _ id: String, _ secret: String, _ topic: String, _ message: String) async throws {
        let result = try await Subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(mqtt)", "-i", id, "-u", id, "-P", secret, "-q", "1", "-t", topic, "-m", message], timeout: 20
        )
        #expect(result.status == 0, "mosquitto_pub: \(result.stderr)")
    }

    @Test("readings 100 … 400 publish off, on, off to AWS, once each, across a restart; data from AWS lands in the history as source aws and drives a rule")
    func waylaySeed() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let mosquitto = try TLSMosquitto(pki: pki)
        try await mosquitto.start()
        let account = MotoPeer.Account()
        let environment = try DownlinkGatewayTests.environment(accessKey: "AKIACONDUITWAYLAY001", mosquitto: mosquitto)
        let mqtt = freeLoopbackPort()
        func serve() async throws -> (ConduitServer, Int) {
            try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqtt)"], in: directory, environment: environment)
        }
        let device = "dev-\(UUID().uuidString.prefix(6).lowercased())"
        var (server, http) = try await serve()
        do {
            let token = try #require(server.bootstrapToken)
            let created = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"\#(device)","name":"Lamp","labels":["fleet"]}"#)
            let secret = try #require(created.body["secret"] as? String)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/\(device)/accept", token: token).status == 200)
            var integrationBody = try DownlinkGatewayTests.integration("waylay", account: account, mosquitto: mosquitto, pki: pki)
            integrationBody["ingestTopics"] = ["+/{deviceId}/up"]
            // An ingest filter over Conduit's own uplink topic would take its uplinks back: refused.
            let looping = try await ConduitCLITests.http("POST", http, "/v1/integrations", token: token, json: try DownlinkGatewayTests.json(integrationBody))
            #expect(looping.status == 400)
            #expect(((looping.body["error"] as? [String: Any])?["message"] as? String)?.hasPrefix("ingestTopics[0]: overlaps the integration's uplink topic") == true)
            integrationBody["ingestTopics"] = ["waylay/{deviceId}/state"]
            let integration = try await ConduitCLITests.http("POST", http, "/v1/integrations", token: token, json: try DownlinkGatewayTests.json(integrationBody))
            #expect(integration.status == 201, "\(integration.body)")
            let integrationID = try #require(integration.body["id"] as? String)
            try await waitUntil("the gateway to connect and the device to be provisioned") {
                let body = try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).body
                return (body["gateway"] as? [String: Any])?["connected"] as? Bool == true
                    && ((body["devices"] as? [String: Any])?["states"] as? [String: Int])?["provisioned"] == 1
            }
            // The gateway's policy grants exactly the ingest topic besides the downlinks.
            let policy = try #require(try await account.iot().getPolicy(name: "conduit-gateway@\(integrationID)").policyDocument)
            #expect(policy.contains(":topicfilter/waylay/+/state"), "\(policy)")
            #expect(policy.contains(":topic/waylay/*/state"), "\(policy)")

            func light(_ on: String) throws -> [String: Any] {
                ["on": ["to": on], "publish": ["integrationId": integrationID, "topic": "lights/{deviceId}/set", "payload": ["lightStatus": on == "Above" ? "off" : "on"]]]
            }
            let lights = try await ConduitCLITests.http(
                "POST", http, "/v1/rules", token: token,
                json: try DownlinkGatewayTests.json([
                    "name": "lights", "source": ["labels": ["fleet"]], "subtopic": "up", "value": "$.lightValue",
                    "states": ["Above": ["above": 350], "Below": ["below": 300]], "actions": [try light("Above"), try light("Below")],
                ])
            )
            #expect(lights.status == 201, "\(lights.body)")
            let lightsID = try #require(lights.body["id"] as? String)
            let heat = try await ConduitCLITests.http(
                "POST", http, "/v1/rules", token: token,
                json: try DownlinkGatewayTests.json([
                    "name": "heat", "source": ["devices": [device]], "subtopic": "state", "value": "$.temperature",
                    "states": ["Hot": ["above": 30], "Cold": ["below": 20]],
                    "actions": [["on": ["from": "Cold", "to": "Hot"], "downlink": ["payload": ["fan": "on", "at": "{value}"]]]],
                ])
            )
            #expect(heat.status == 201, "\(heat.body)")
            let heatID = try #require(heat.body["id"] as? String)

            // The seed's readings from the device, over MQTT; Conduit restarts between 400 and 420,
            // both above 350: the state is kept, nothing fires again.
            for value in [100, 400] {
                try await Self.publish(mqtt, device, secret, "devices/\(device)/up", #"{"lightValue": \#(value)}"#)
            }
            // The first "off" in AWS before the stop: a stop cancels a publish in flight, which the
            // next start sends again (at least once), and this test counts what the rule fires.
            try await waitUntil("the first off in moto's recorder", seconds: 240, interval: .seconds(1)) {
                try MotoPeer.recordedPublishes(containing: device).contains { $0.topic == "lights/\(device)/set" }
            }
            _ = await server.stop()
            (server, http) = try await serve()
            for value in [420, 380, 320, 310, 250, 200, 400] {
                try await Self.publish(mqtt, device, secret, "devices/\(device)/up", #"{"lightValue": \#(value)}"#)
            }
            var lightsSet: [String] = []
            // A bound for a loaded machine, where the forwarder may be backing off from a busy moto.
            try await waitUntil("nine readings and three light publishes in moto's recorder", seconds: 240, interval: .seconds(1)) {
                let mine = try MotoPeer.recordedPublishes(containing: device).filter { $0.topic == "conduit/\(device)/up" || $0.topic == "lights/\(device)/set" }
                lightsSet = mine.filter { $0.topic == "lights/\(device)/set" }.map { String(decoding: $0.payload, as: UTF8.self) }
                return mine.count >= 12
            }
            #expect(lightsSet == [#"{"lightStatus":"off"}"#, #"{"lightStatus":"on"}"#, #"{"lightStatus":"off"}"#])
            let rule = try await ConduitCLITests.http("GET", http, "/v1/rules/\(lightsID)/states", token: token).body
            #expect(((rule["items"] as? [[String: Any]])?.first)?["state"] as? String == "Above")

            // Data from AWS: published at the data endpoint on the ingest topic.
            for temperature in [10, 40] {
                try await DownlinkGatewayTests.publishFromAWS(mosquitto, "waylay/\(device)/state", #"{"temperature": \#(temperature)}"#)
            }
            // On Conduit's own uplink topic, and for a device there is none of.
            try await DownlinkGatewayTests.publishFromAWS(mosquitto, "conduit/\(device)/up", #"{"lightValue": 999}"#)
            try await DownlinkGatewayTests.publishFromAWS(mosquitto, "waylay/ghost/state", #"{"temperature": 50}"#)
            var fromAWS: [[String: Any]] = []
            try await waitUntil("two messages from AWS in the device's history") {
                let items = try await ConduitCLITests.http("GET", http, "/v1/devices/\(device)/messages?limit=50", token: token).body["items"] as? [[String: Any]] ?? []
                fromAWS = items.filter { $0["source"] as? String == "aws" }
                return fromAWS.count >= 2
            }
            #expect(fromAWS.map { $0["topic"] as? String } == ["waylay/\(device)/state", "waylay/\(device)/state"])
            #expect(fromAWS.compactMap { ($0["payloadJson"] as? [String: Any])?["temperature"] as? Int } == [40, 10])
            try await waitUntil("the heat rule to fire its downlink") {
                (try await DownlinkTests.queued(http, token, device)).count == 1
            }
            let states = try await ConduitCLITests.http("GET", http, "/v1/rules/\(heatID)/states", token: token).body["items"] as? [[String: Any]]
            #expect(states?.first?["state"] as? String == "Hot")
            try await waitUntil("the ghost's message to be recorded") {
                let events = try await ConduitCLITests.http("GET", http, "/v1/events?type=aws.message_dropped", token: token).body["items"] as? [[String: Any]] ?? []
                return events.count == 1
            }
            let history = try await ConduitCLITests.http("GET", http, "/v1/devices/\(device)/messages?limit=50", token: token).body["items"] as? [[String: Any]] ?? []
            #expect(history.count == 11, "nine readings and two from AWS; nothing from the uplink topic")
            #expect(!history.contains { ($0["payloadText"] as? String)?.contains("999") == true })
            // What came from AWS is not sent to AWS again.
            #expect(try MotoPeer.recordedPublishes(containing: device).filter { $0.topic.contains(device) && String(decoding: $0.payload, as: UTF8.self).contains("temperature") }.isEmpty)
        } catch {
            _ = await server.stop()
            await mosquitto.stop()
            throw error
        }
        _ = await server.stop()
        await mosquitto.stop()
    }
}
