import AWSIoT
import ConduitTesting
import Foundation
import Testing

/// Firmware written for AWS IoT, pointed at Conduit unchanged: AWS's own device SDK speaks the
/// shadow topics to Conduit's broker, and the shadow lives in AWS (moto).
@Suite("Devices written for AWS IoT: the shadow topics")
struct AWSDeviceSDKTests {
    static var peers: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers")
    }

    @Test("AWS's device SDK over TLS: reported state reaches AWS, desired from the API and from AWS arrives as a delta, get and a stale version, a named shadow, and the delta on subscribing again")
    func awsDeviceSDK() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let device = "sdk-\(UUID().uuidString.prefix(6).lowercased())"
        // The broker's TLS (its CA signs the device's certificate) apart from the data endpoint's.
        let broker = directory.appendingPathComponent("broker")
        try FileManager.default.createDirectory(at: broker, withIntermediateDirectories: true)
        try await DeviceTLSTests.makeCertificates(in: broker, clients: [device])
        let file = { (name: String) in broker.appendingPathComponent(name).path }
        let pki = try await TestPKI.make(in: directory)
        let mosquitto = try TLSMosquitto(pki: pki)
        try await mosquitto.start()
        let moto = try MotoPeer.url().absoluteString
        let account = MotoPeer.Account()
        let environment = try DownlinkGatewayTests.environment(accessKey: "AKIACONDUITSDKTEST01", mosquitto: mosquitto)
        let (server, http) = try await ConduitServer.start(
            ["--http-port", "0", "--mqtt-port", "0", "--mqtt-tls-port", "0", "--mqtt-tls-cert", file("server.pem"), "--mqtt-tls-key", file("server.key"),
             "--mqtt-tls-ca", file("ca.pem"), "--mqtt-tls-require-client-cert"],
            in: directory, environment: environment
        )
        do {
            let token = try #require(server.bootstrapToken)
            let tls = try #require(server.mqttTLSPort, "no TLS port in:\n\(server.output)")
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"\#(device)","name":"SDK lamp"}"#).status == 201)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/\(device)/accept", token: token).status == 200)
            #expect(try await DeviceTLSTests.enroll(http, token, device, pem: device, in: broker).status == 201)
            let integrationBody = try DownlinkGatewayTests.integration("aws", account: account, mosquitto: mosquitto, pki: pki)
            let integration = try await ConduitCLITests.http("POST", http, "/v1/integrations", token: token, json: try DownlinkGatewayTests.json(integrationBody))
            #expect(integration.status == 201, "\(integration.body)")
            let integrationID = try #require(integration.body["id"] as? String)
            try await waitUntil("the gateway to connect and the device to be provisioned", seconds: 120) {
                let body = try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).body
                return (body["gateway"] as? [String: Any])?["connected"] as? Bool == true
                    && ((body["devices"] as? [String: Any])?["states"] as? [String: Int])?["provisioned"] == 1
            }
            // The gateway may hear exactly its things' shadows' update/documents.
            let policy = try #require(try await account.iot().getPolicy(name: "conduit-gateway@\(integrationID)").policyDocument)
            #expect(policy.contains(":topicfilter/$aws/things/+/shadow/update/documents"), "\(policy)")
            #expect(policy.contains(":topic/$aws/things/*/shadow/name/*/update/documents"), "\(policy)")

            let config: [String: Any] = [
                "tls": tls, "ca": file("ca.pem"), "cert": file("\(device).pem"), "key": file("\(device).key"), "thing": device, "http": http,
                "token": token, "moto": moto, "roleArn": account.roleARN, "externalId": "conduit-test", "mosquitto": mosquitto.plainPort,
            ]
            let run = try await Subprocess.run(
                ["python3", Self.peers.appendingPathComponent("aws_shadow_device.py").path, try DownlinkGatewayTests.json(config)], timeout: 900
            )
            let results = try #require(
                try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: [String: Any]],
                "the SDK's run: \(run.stdout)\n\(run.stderr)\n\(server.output.suffix(4000))"
            )
            // 1. update/accepted with the token echoed, and the reported state in moto.
            #expect((results["reported"]?["reported"] as? [String: Any])?["power"] as? String == "off")
            let inAWS = try #require(try await account.data().getThingShadow(thing: device))
            let reported = try #require((try JSONSerialization.jsonObject(with: Data(inAWS)) as? [String: Any])?["state"] as? [String: Any])
            #expect((reported["reported"] as? [String: Any])?["temp"] as? Int == 21, "\(reported)")
            // 2. Desired from Conduit's API: a delta, and documents.
            #expect((results["apiDelta"]?["state"] as? [String: Any])?.keys.sorted() == ["power"])
            #expect(results["apiDocuments"] != nil)
            // 3. Desired changed in AWS, told through the gateway.
            #expect((results["awsDelta"]?["state"] as? [String: Any])?["power"] as? String == "eco")
            // 4. get and a stale version.
            #expect((results["get"]?["desired"] as? [String: Any])?["power"] as? String == "eco")
            #expect((results["get"]?["delta"] as? [String: Any])?["power"] as? String == "eco")
            #expect(results["stale"]?["code"] as? Int == 409)
            #expect(results["stale"]?["message"] as? String == "Version conflict")
            // 5. The named shadow.
            #expect(results["namedReported"]?["token"] as? String == "named-1")
            #expect((results["namedDelta"]?["state"] as? [String: Any])?["interval"] as? Int == 30)
            #expect((results["namedGet"]?["reported"] as? [String: Any])?["interval"] as? Int == 60)
            #expect(results["namedStale"]?["code"] as? Int == 409)
            let named = try #require(try await account.data().getThingShadow(thing: device, name: "config"))
            #expect(String(decoding: named, as: UTF8.self).contains(#""interval":60"#) || String(decoding: named, as: UTF8.self).contains(#""interval": 60"#))
            // 6. Away while desired changed: the delta came on subscribing again.
            #expect((results["resubscribedDelta"]?["state"] as? [String: Any])?["temp"] as? Int == 19)
            // The API says which integration serves the shadow.
            let shown = try await ConduitCLITests.http("GET", http, "/v1/devices/\(device)/shadow", token: token).body
            #expect(shown["integration"] as? String == integrationID)
        } catch {
            _ = await server.stop()
            await mosquitto.stop()
            throw error
        }
        _ = await server.stop()
        await mosquitto.stop()
    }

    /// What a paho-mqtt client hears publishing QoS 1 on each topic as the device: the PUBACK's
    /// reason code, or "disconnected" with the DISCONNECT's.
    static func publishOutcomes(_ mqtt: Int, device: String, secret: String, version: String, topics: [String]) async throws -> [String] {
        let script = """
            import json, sys, threading
            import paho.mqtt.client as mqtt
            port, device, secret, version, topics = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
            outcomes = []
            for topic in topics:
                done = threading.Event()
                result = {}
                def on_connect(client, userdata, flags, reason, properties):
                    client.publish(topic, b'{"state":{"reported":{"x":1}}}', qos=1)
                def on_publish(client, userdata, mid, reason, properties, result=result):
                    result["outcome"] = "puback %d" % reason.value
                    done.set()
                def on_disconnect(client, userdata, flags, reason, properties, result=result):
                    result.setdefault("outcome", "disconnected %d" % reason.value)
                    done.set()
                protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=protocol)
                client.username_pw_set(device, secret)
                client.on_connect, client.on_publish, client.on_disconnect = on_connect, on_publish, on_disconnect
                client.connect("127.0.0.1", port)
                client.loop_start()
                done.wait(120)
                client.disconnect()
                client.loop_stop()
                outcomes.append(result.get("outcome", "nothing"))
            print(json.dumps(outcomes))
            """
        let topicsJSON = String(decoding: try JSONSerialization.data(withJSONObject: topics), as: UTF8.self)
        let result = try await Subprocess.run(["python3", "-c", script, "\(mqtt)", device, secret, version, topicsJSON], timeout: 600)
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String], "\(result.stdout)\(result.stderr)")
    }

    /// Publishes a shadow request as the device with paho-mqtt 5.0, subscribed to its answers:
    /// the answer's topic and body, and the PUBACK's reason code, once both have arrived (the
    /// answer comes first, so returning at the answer raced the PUBACK: seen in CI).
    static func shadowRequest(_ mqtt: Int, device: String, secret: String, operation: String, payload: String) async throws -> [String: Any] {
        let script = """
            import json, sys, threading
            import paho.mqtt.client as mqtt
            port, device, secret, operation, payload = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
            got = threading.Event()
            answer = {}
            def on_connect(client, userdata, flags, reason, properties):
                client.subscribe(f"$aws/things/{device}/shadow/{operation}/+", qos=1)
            def on_subscribe(client, userdata, mid, reasons, properties):
                client.publish(f"$aws/things/{device}/shadow/{operation}", payload.encode(), qos=1)
            # Conduit sends the answer, then the PUBACK: done once both are in.
            def on_publish(client, userdata, mid, reason, properties):
                answer["puback"] = reason.value
                if "topic" in answer:
                    got.set()
            def on_message(client, userdata, message):
                if message.topic.endswith(("/accepted", "/rejected")) and "topic" not in answer:
                    answer["topic"] = message.topic
                    answer["body"] = json.loads(message.payload)
                    if "puback" in answer:
                        got.set()
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
            client.username_pw_set(device, secret)
            client.on_connect, client.on_subscribe, client.on_publish, client.on_message = on_connect, on_subscribe, on_publish, on_message
            client.connect("127.0.0.1", port)
            client.loop_start()
            got.wait(120)
            client.disconnect()
            client.loop_stop()
            print(json.dumps(answer))
            """
        let run = try await Subprocess.run(["python3", "-c", script, "\(mqtt)", device, secret, operation, payload], timeout: 300)
        return try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stdout)\(run.stderr)")
    }

    @Test("AWS out: a shadow request gets a 503 on /rejected within the bound, and is acknowledged; AWS back: answered again (the empty moto has no thing: a 404, not silence)")
    func awsOutage() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let moto = MotoServer(recording: directory.appendingPathComponent("moto-recording.jsonl").path)
        try await moto.start()
        defer { Task { await moto.stop() } }
        let account = MotoPeer.Account()
        let environment = [
            "AWS_ACCESS_KEY_ID": "AKIACONDUITOUTAGE001", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": moto.url.absoluteString,
            "CONDUIT_AWS_ENDPOINT_ALLOWLIST": "http://127.0.0.1:\(moto.port)",
        ]
        let mqtt = freeLoopbackPort()
        let (server, http) = try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqtt)"], in: directory, environment: environment)
        do {
            let token = try #require(server.bootstrapToken)
            let created = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"out-1","name":"Out"}"#)
            let secret = try #require(created.body["secret"] as? String)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/out-1/accept", token: token).status == 200)
            let integration = try await ConduitCLITests.http(
                "POST", http, "/v1/integrations", token: token,
                json: try DownlinkGatewayTests.json([
                    "name": "aws", "region": "us-east-1", "endpointUrl": moto.url.absoluteString,
                    "credentials": ["roleArn": account.roleARN, "externalId": "conduit-test"], "bind": ["all": true],
                ])
            )
            #expect(integration.status == 201, "\(integration.body)")
            let integrationID = try #require(integration.body["id"] as? String)
            try await waitUntil("the device to be provisioned", seconds: 120) {
                let body = try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).body
                return ((body["devices"] as? [String: Any])?["states"] as? [String: Int])?["provisioned"] == 1
            }
            let update = #"{"state": {"reported": {"on": true}}, "clientToken": "before"}"#
            let before = try await Self.shadowRequest(mqtt, device: "out-1", secret: secret, operation: "update", payload: update)
            #expect(before["topic"] as? String == "$aws/things/out-1/shadow/update/accepted", "\(before)")

            await moto.stop()
            let during = try await Self.shadowRequest(mqtt, device: "out-1", secret: secret, operation: "get", payload: #"{"clientToken": "during"}"#)
            #expect(during["topic"] as? String == "$aws/things/out-1/shadow/get/rejected", "\(during)")
            let body = try #require(during["body"] as? [String: Any])
            #expect(body["code"] as? Int == 503)
            #expect(body["clientToken"] as? String == "during")
            #expect((body["message"] as? String)?.hasPrefix("Service unavailable") == true, "\(body)")
            #expect(during["puback"] as? Int == 0)

            try await moto.start()
            // moto came back empty: the thing is gone, and AWS says so (404), not silence.
            let after = try await Self.shadowRequest(mqtt, device: "out-1", secret: secret, operation: "get", payload: #"{"clientToken": "after"}"#)
            #expect(after["topic"] as? String == "$aws/things/out-1/shadow/get/rejected", "\(after)")
            #expect((after["body"] as? [String: Any])?["code"] as? Int == 404)
        } catch {
            _ = await server.stop()
            throw error
        }
        _ = await server.stop()
    }

    @Test("a device publishing on another device's shadow, on an AWS topic Conduit does not serve, or on an answer topic is refused with a reason code (3.1.1: disconnected), a will there at CONNECT; a device in no integration gets /rejected, never silence")
    func refusedShadowTopics() async throws {
        try await DeviceMQTTTests.withServer { _, mqtt, _, secrets, _ in
            let topics = ["$aws/things/d2/shadow/update", "$aws/rules/lights/set", "$aws/things/d1/shadow/update/accepted", "$aws/things/d1/shadow/get/delta"]
            let v5 = try await Self.publishOutcomes(mqtt, device: "d1", secret: secrets["d1"]!, version: "5", topics: topics)
            #expect(v5 == ["puback 135", "puback 144", "puback 144", "puback 144"])
            let v3 = try await Self.publishOutcomes(mqtt, device: "d1", secret: secrets["d1"]!, version: "3", topics: Array(topics.prefix(2)))
            #expect(v3.allSatisfy { $0.hasPrefix("disconnected") }, "\(v3)")

            // A will on its shadow's topic would be published by the broker, not served: refused at CONNECT.
            let will = """
                import sys, threading
                import paho.mqtt.client as mqtt
                done, result = threading.Event(), {}
                def on_connect(client, userdata, flags, reason, properties):
                    result["code"] = reason.value
                    done.set()
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="d1", protocol=mqtt.MQTTv5)
                client.username_pw_set("d1", sys.argv[2])
                client.will_set("$aws/things/d1/shadow/update", b'{"state":{"reported":{"online":false}}}', qos=1)
                client.on_connect = on_connect
                client.connect("127.0.0.1", int(sys.argv[1]))
                client.loop_start()
                done.wait(120)
                client.loop_stop()
                print(result.get("code"))
                """
            let refusedWill = try await Subprocess.run(["python3", "-c", will, "\(mqtt)", secrets["d1"]!], timeout: 300)
            #expect(refusedWill.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "135", "\(refusedWill.stdout)\(refusedWill.stderr)")

            // Its own shadow, while it has no thing in AWS: an answer on /rejected that says why.
            let answer = try await Self.shadowRequest(mqtt, device: "d1", secret: secrets["d1"]!, operation: "get", payload: #"{"clientToken": "where-am-i"}"#)
            #expect(answer["topic"] as? String == "$aws/things/d1/shadow/get/rejected")
            let body = try #require(answer["body"] as? [String: Any])
            #expect(body["code"] as? Int == 404)
            #expect(body["clientToken"] as? String == "where-am-i")
            #expect((body["message"] as? String)?.contains("has no thing in AWS IoT") == true, "\(body)")
        }
    }
}
