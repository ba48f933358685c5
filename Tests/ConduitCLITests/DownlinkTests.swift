import ConduitTesting
import Foundation
import Testing

@Suite("Downlinks to devices")
struct DownlinkTests {
    static func queued(_ http: Int, _ token: String, _ id: String) async throws -> [[String: Any]] {
        try await ConduitCLITests.http("GET", http, "/v1/devices/\(id)/downlinks", token: token).body["items"] as? [[String: Any]] ?? []
    }

    @Test("queued while the device is away, a downlink reaches it when it subscribes; queued while it is there, at once; acknowledged, it leaves the queue")
    func delivery() async throws {
        try await DeviceMQTTTests.withServer { http, mqtt, token, secrets, _ in
            for payload in ["hello", "world"] {
                let queued = try await ConduitCLITests.http(
                    "POST", http, "/v1/devices/d1/downlinks", token: token,
                    json: #"{"payload_raw": "\#(Data(payload.utf8).base64EncodedString())", "confirmed": true, "port": 7}"#
                )
                #expect(queued.status == 201)
                #expect(queued.body["payload_raw"] as? String == Data(payload.utf8).base64EncodedString())
            }
            #expect(try await Self.queued(http, token, "d1").count == 2)

            // The device comes: MQTT 5.0, so it sees port and confirmed as user properties.
            let receiving = Task {
                try await Subprocess.run(
                    ["stdbuf", "-oL", "mosquitto_sub", "-p", "\(mqtt)", "-V", "mqttv5", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!,
                     "-t", "devices/d1/down", "-q", "1", "-C", "3", "-F", "%t %p %P"], timeout: 20
                )
            }
            var left = 2
            for _ in 0..<100 where left > 0 {
                try await Task.sleep(for: .milliseconds(100))
                left = try await Self.queued(http, token, "d1").count
            }
            #expect(left == 0, "the device's acknowledgements took the downlinks out of the queue")
            let live = try await ConduitCLITests.http(
                "POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"payload_raw": "\#(Data("live".utf8).base64EncodedString())"}"#
            )
            #expect(live.status == 201)
            let result = try await receiving.value
            let lines = result.stdout.split(separator: "\n").map(String.init)
            #expect(lines.count == 3, "\(result.stdout)\(result.stderr)")
            #expect(lines.first?.hasPrefix("devices/d1/down hello") == true)
            #expect(lines.first?.contains("confirmed:true") == true && lines.first?.contains("port:7") == true, "\(lines)")
            #expect(lines.dropFirst().first?.hasPrefix("devices/d1/down world") == true)
            #expect(lines.last?.hasPrefix("devices/d1/down live") == true)
            for _ in 0..<50 where try await !Self.queued(http, token, "d1").isEmpty {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await Self.queued(http, token, "d1").isEmpty)
        }
    }

    @Test("bad downlinks are refused naming the field; only operators queue; clearing empties the queue")
    func refusals() async throws {
        try await DeviceMQTTTests.withServer { http, _, token, _, _ in
            let notBase64 = try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"payload_raw": "***"}"#)
            #expect(notBase64.status == 400)
            #expect((notBase64.body["error"] as? [String: Any])?["message"] as? String == "payload_raw: must be base64")
            let port = try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"payload_raw": "AA==", "port": 300}"#)
            #expect((port.body["error"] as? [String: Any])?["message"] as? String == "port: must be 0 to 255")
            let missing = try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"port": 1}"#)
            #expect((missing.body["error"] as? [String: Any])?["message"] as? String == "payload_raw: is required")
            let pending = try await ConduitCLITests.http("POST", http, "/v1/devices/d2/downlinks", token: token, json: #"{"payload_raw": "AA=="}"#)
            #expect(pending.status == 409)
            let reader = try await ConduitCLITests.http("POST", http, "/v1/tokens", token: token, json: #"{"role": "reader"}"#).body["token"] as? String
            let refused = try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: reader, json: #"{"payload_raw": "AA=="}"#)
            #expect(refused.status == 403)
            for _ in 0..<3 {
                #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"payload_raw": "AA=="}"#).status == 201)
            }
            #expect(try await Self.queued(http, token, "d1").count == 3)
            #expect(try await ConduitCLITests.http("DELETE", http, "/v1/devices/d1/downlinks", token: token).status == 204)
            #expect(try await Self.queued(http, token, "d1").isEmpty)

            // A deleted device's queue goes with it: a new device of the same id starts empty.
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/downlinks", token: token, json: #"{"payload_raw": "AA=="}"#).status == 201)
            #expect(try await ConduitCLITests.http("DELETE", http, "/v1/devices/d1", token: token).status == 204)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id": "d1", "name": "again"}"#).status == 201)
            #expect(try await Self.queued(http, token, "d1").isEmpty)
        }
    }
}
