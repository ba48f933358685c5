import ConduitTesting
import Foundation
import Testing

@Suite("Devices on the broker")
struct DeviceMQTTTests {
    /// `conduit serve` with an accepted device `d1` and a pending device `d2`; the body gets the
    /// ports, the admin token and the devices' secrets.
    static func withServer(
        _ body: (_ http: Int, _ mqtt: Int, _ token: String, _ secrets: [String: String], _ server: ConduitServer) async throws -> Void
    ) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, port) = try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(freeLoopbackPort())"], in: directory)
        do {
            let token = try #require(server.bootstrapToken)
            let mqtt = try #require(server.mqttPort, "no MQTT port in:\n\(server.output)")
            var secrets: [String: String] = [:]
            for id in ["d1", "d2"] {
                let created = try await http("POST", port, "/v1/devices", token: token, json: #"{"id":"\#(id)","name":"\#(id)"}"#)
                secrets[id] = try #require(created.body["secret"] as? String)
            }
            #expect(try await http("POST", port, "/v1/devices/d1/accept", token: token).status == 200)
            try await body(port, mqtt, token, secrets, server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    static func publish(_ mqtt: Int, id: String, secret: String, topic: String, message: String, version: String = "mqttv311") async throws -> Subprocess.Result {
        try await Subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(mqtt)", "-V", version, "-i", id, "-u", id, "-P", secret, "-q", "1",
             "-t", topic, "-m", message],
            timeout: 10
        )
    }

    static func messages(_ http: Int, _ token: String, _ id: String) async throws -> [[String: Any]] {
        try await ConduitCLITests.http("GET", http, "/v1/devices/\(id)/messages", token: token).body["items"] as? [[String: Any]] ?? []
    }

    @Test("an accepted device publishes with its secret and the messages endpoint returns it, newest first")
    func publishAndRead() async throws {
        try await Self.withServer { http, mqtt, token, secrets, _ in
            for (index, version) in ["mqttv311", "mqttv5"].enumerated() {
                let result = try await Self.publish(mqtt, id: "d1", secret: secrets["d1"]!, topic: "devices/d1/up", message: "t=2\(index)", version: version)
                #expect(result.status == 0, "\(result.stderr)")
            }
            let items = try await Self.messages(http, token, "d1")
            #expect(items.count == 2)
            #expect(items.compactMap { $0["payload"] as? String } == [Data("t=21".utf8).base64EncodedString(), Data("t=20".utf8).base64EncodedString()])
            #expect(items.first?["topic"] as? String == "devices/d1/up")
            #expect(items.first?["qos"] as? Int == 1)
            #expect(items.first?["retain"] as? Bool == false)
            #expect(items.first?["receivedAt"] is String)
            // Readable payloads come readable too: text when UTF-8, JSON when it parses (a 64-bit serial kept exactly).
            #expect(items.first?["payloadText"] as? String == "t=21")
            #expect(items.first?["payloadJson"] == nil)

            let json = #"{"temp": 21.5, "serial": 9007199254740993, "ok": true}"#
            #expect(try await Self.publish(mqtt, id: "d1", secret: secrets["d1"]!, topic: "devices/d1/up", message: json).status == 0)
            let binary = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-binary-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: binary) }
            try Data([0xff, 0x00, 0xfe]).write(to: binary)
            let sent = try await Subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(mqtt)", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!, "-q", "1",
                 "-t", "devices/d1/up", "-f", binary.path], timeout: 10
            )
            #expect(sent.status == 0, "\(sent.stderr)")
            let raw = try await ConduitCLITests.http("GET", http, "/v1/devices/d1/messages?limit=2", token: token)
            let newest = (raw.body["items"] as? [[String: Any]]) ?? []
            #expect(newest.count == 2)
            #expect(newest.first?["payload"] as? String == Data([0xff, 0x00, 0xfe]).base64EncodedString())
            #expect(newest.first?["payloadText"] == nil && newest.first?["payloadJson"] == nil, "bytes that are not UTF-8 are base64 only")
            #expect(newest.last?["payloadText"] as? String == json)
            let parsed = newest.last?["payloadJson"] as? [String: Any]
            #expect(parsed?["temp"] as? Double == 21.5)
            #expect(parsed?["ok"] as? Bool == true)
            #expect((parsed?["serial"] as? NSNumber)?.int64Value == 9_007_199_254_740_993)
        }
    }

    @Test("a wrong secret, an unknown device, a pending or rejected device are refused; another device's topic is not delivered or stored")
    func refusals() async throws {
        try await Self.withServer { http, mqtt, token, secrets, _ in
            let wrong = try await Self.publish(mqtt, id: "d1", secret: "not-the-secret", topic: "devices/d1/up", message: "x")
            #expect(wrong.status != 0)
            #expect(wrong.stderr.lowercased().contains("bad user name or password") || wrong.stderr.lowercased().contains("not authorised"), "\(wrong.stderr)")
            let unknown = try await Self.publish(mqtt, id: "ghost", secret: "whatever", topic: "devices/ghost/up", message: "x")
            #expect(unknown.status != 0)
            let pending = try await Self.publish(mqtt, id: "d2", secret: secrets["d2"]!, topic: "devices/d2/up", message: "x", version: "mqttv5")
            #expect(pending.status != 0)
            #expect(pending.stderr.lowercased().contains("not authori"), "\(pending.stderr)")
            #expect(try await Self.messages(http, token, "d2").isEmpty)

            // d1 may not publish into d2's space, nor subscribe to it.
            let elsewhere = try await Self.publish(mqtt, id: "d1", secret: secrets["d1"]!, topic: "devices/d2/up", message: "spoof", version: "mqttv5")
            #expect(elsewhere.stderr.lowercased().contains("not authori"), "\(elsewhere.status) \(elsewhere.stderr)")
            #expect(try await Self.messages(http, token, "d2").isEmpty)
            #expect(try await Self.messages(http, token, "d1").isEmpty)
            let subscribe = try await Subprocess.run(
                ["mosquitto_sub", "-p", "\(mqtt)", "-V", "mqttv5", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!, "-t", "devices/+/up",
                 "-C", "1", "-E"], timeout: 10
            )
            // -E exits after the SUBACK; every filter refused is what mosquitto_sub reports.
            #expect((subscribe.stdout + subscribe.stderr).contains("All subscription requests were denied"), "\(subscribe.stdout)\(subscribe.stderr)")
            let own = try await Subprocess.run(
                ["mosquitto_sub", "-p", "\(mqtt)", "-V", "mqttv311", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!, "-t", "devices/d1/#",
                 "-q", "1", "-C", "1", "-E"], timeout: 10
            )
            #expect(own.status == 0 && !(own.stdout + own.stderr).contains("denied"), "\(own.stdout)\(own.stderr)")

            // A will is a publish too: d1 may not leave one on d2's topics.
            let will = try await Subprocess.run(
                ["mosquitto_pub", "-p", "\(mqtt)", "-V", "mqttv5", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!, "-t", "devices/d1/up",
                 "-m", "x", "--will-topic", "devices/d2/down", "--will-payload", "forged", "--will-retain"], timeout: 10
            )
            #expect(will.status != 0)
            #expect(will.stderr.lowercased().contains("not authori"), "\(will.stderr)")

            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/reject", token: token).status == 200)
            let rejected = try await Self.publish(mqtt, id: "d1", secret: secrets["d1"]!, topic: "devices/d1/up", message: "x")
            #expect(rejected.status != 0)
        }
    }

    /// The CONNACKs paho-mqtt 5.0 clients get, one connection per login (client id, user name,
    /// password), in order: each one's reason code and reason string.
    static func connacks(_ mqtt: Int, _ logins: [(id: String, username: String?, password: String?)]) async throws -> [(code: Int, reason: String?)] {
        let script = """
            import json, sys, time
            import paho.mqtt.client as mqtt
            port, logins = int(sys.argv[1]), json.loads(sys.argv[2])
            results = []
            for cid, user, password in logins:
                result = {}
                def on_connect(client, userdata, flags, reason, properties, result=result):
                    result["code"] = reason.value
                    result["reason"] = getattr(properties, "ReasonString", None)
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
                if user is not None:
                    client.username_pw_set(user, password)
                client.on_connect = on_connect
                client.connect("127.0.0.1", port)
                client.loop_start()
                deadline = time.time() + 10
                while "code" not in result and time.time() < deadline:
                    time.sleep(0.01)
                client.loop_stop()
                results.append(result)
            print(json.dumps(results))
            """
        let arguments = try JSONSerialization.data(withJSONObject: logins.map { [$0.id, $0.username as Any? ?? NSNull(), $0.password as Any? ?? NSNull()] })
        let result = try await Subprocess.run(["python3", "-c", script, "\(mqtt)", String(decoding: arguments, as: UTF8.self)], timeout: 60)
        let objects = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]], "\(result.stdout)\(result.stderr)"
        )
        return try objects.map { (try #require($0["code"] as? Int, "no CONNACK: \(result.stderr)"), $0["reason"] as? String) }
    }

    @Test("MQTT 5 refusals say why in the CONNACK, and an unknown device reads as a wrong secret")
    func refusalReasons() async throws {
        try await Self.withServer { http, mqtt, token, secrets, _ in
            let answers = try await Self.connacks(
                mqtt,
                [
                    ("d1", "d1", "not-the-secret"), ("ghost", "ghost", "whatever"), ("d1", "someone-else", secrets["d1"]!), ("d1", nil, nil),
                    ("no spaces", "no spaces", "x"), ("d2", "d2", secrets["d2"]!),
                ]
            )
            let (wrong, unknown, name, none, badID, pending) = (answers[0], answers[1], answers[2], answers[3], answers[4], answers[5])
            #expect(wrong.code == 0x86)
            #expect(wrong.reason == "unknown device or wrong secret")
            // A client without a valid secret learns nothing about which ids exist.
            #expect(unknown.code == wrong.code && unknown.reason == wrong.reason)
            #expect(name.code == 0x86)
            #expect(name.reason == "the user name must be the client id (the device's id)")
            #expect(none.reason?.contains("user name = client id = its id and password = its secret") == true, "\(none)")
            #expect(badID.reason == "the client id must be a device id: [a-zA-Z0-9:_-]{1,128}")
            // With its secret, a device hears how it stands.
            #expect(pending.code == 0x87)
            #expect(pending.reason == "the device is pending: it may connect once it is accepted")

            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/reject", token: token).status == 200)
            let rejected = try #require(try await Self.connacks(mqtt, [("d1", "d1", secrets["d1"]!)]).first)
            #expect(rejected.code == 0x87)
            #expect(rejected.reason == "the device is rejected: it may connect if it is accepted again")
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/accept", token: token).status == 200)
            let accepted = try #require(try await Self.connacks(mqtt, [("d1", "d1", secrets["d1"]!)]).first)
            #expect(accepted.code == 0 && accepted.reason == nil)
        }
    }

    @Test("rejecting a connected device disconnects it")
    func rejectDisconnects() async throws {
        try await Self.withServer { http, mqtt, token, secrets, _ in
            let (process, _) = try Subprocess.start(
                ["timeout", "--signal=KILL", "20", "mosquitto_sub", "-p", "\(mqtt)", "-V", "mqttv5", "-i", "d1", "-u", "d1", "-P",
                 secrets["d1"]!, "-t", "devices/d1/down", "-q", "1"]
            )
            try await Task.sleep(for: .milliseconds(500))
            #expect(process.isRunning)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/reject", token: token).status == 200)
            await ConduitExecutable.waitForExit(process)
            // Killed by its 20 s timeout (signal 9) means the broker never disconnected it.
            #expect(process.terminationStatus != 9, "still connected after reject")
        }
    }
}
