import ConduitTesting
import Foundation
import Testing

/// What a device could once get that was not its own, tried as that device would.
@Suite("Devices can't reach what isn't theirs")
struct DeviceSafetyTests {
    static let subscribeCodes = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/subscribe_codes.py").path

    /// Subscribes as `id`, one filter at a time, then collects messages for `wait` seconds.
    static func subscribe(
        _ mqtt: Int, version: String, id: String, secret: String, wait: Double = 1.5, _ filters: [(String, Int)]
    ) async throws -> (subacks: [String], messages: [String]) {
        let result = try await Subprocess.run(
            ["python3", Self.subscribeCodes, "\(mqtt)", version, id, secret, "\(wait)"] + filters.map { "\($0.0):\($0.1)" }, timeout: 40
        )
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        return (lines.filter { $0.hasPrefix("suback ") }, lines.filter { $0.hasPrefix("message ") })
    }

    static func queueDownlink(_ http: Int, _ token: String, _ id: String, _ text: String) async throws {
        let queued = try await ConduitCLITests.http(
            "POST", http, "/v1/devices/\(id)/downlinks", token: token, json: #"{"payload_raw": "\#(Data(text.utf8).base64EncodedString())"}"#
        )
        #expect(queued.status == 201, "\(queued.body)")
    }

    @Test("a QoS 0 subscription that would receive downlinks is refused, saying why; the downlink waits for a QoS 1 one", arguments: ["3", "5"])
    func qos0Downlinks(version: String) async throws {
        try await DeviceMQTTTests.withServer { http, mqtt, token, secrets, _ in
            try await Self.queueDownlink(http, token, "d1", "open-valve")
            let refused = try await Self.subscribe(
                mqtt, version: version, id: "d1", secret: secrets["d1"]!, [("devices/d1/down", 0), ("devices/d1/#", 0), ("devices/d1/config", 0)]
            )
            let why = "at QoS 0 would receive downlinks, which need acknowledging: subscribe to devices/d1/down at QoS 1 or 2"
            if version == "5" {
                #expect(refused.subacks == [
                    "suback devices/d1/down 0 0x83 devices/d1/down \(why)", "suback devices/d1/# 0 0x83 devices/d1/# \(why)",
                    "suback devices/d1/config 0 0x00",
                ])
            } else {
                // 3.1.1 has one failure code.
                #expect(refused.subacks == ["suback devices/d1/down 0 0x80", "suback devices/d1/# 0 0x80", "suback devices/d1/config 0 0x00"])
            }
            #expect(refused.messages.isEmpty, "nothing was written to a QoS 0 subscription: \(refused.messages)")
            #expect(try await DownlinkTests.queued(http, token, "d1").count == 1, "the downlink is still queued")

            // At QoS 1 it arrives, is acknowledged, and only then leaves the queue.
            let taken = try await Self.subscribe(mqtt, version: version, id: "d1", secret: secrets["d1"]!, [("devices/d1/down", 1)])
            #expect(taken.subacks == ["suback devices/d1/down 1 0x01"])
            #expect(taken.messages == ["message devices/d1/down 1 open-valve"])
            for _ in 0..<50 where try await !DownlinkTests.queued(http, token, "d1").isEmpty {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await DownlinkTests.queued(http, token, "d1").isEmpty)
        }
    }

    @Test("a new device with a deleted one's id never receives what the old one retained")
    func retainedGoesWithItsDevice() async throws {
        try await DeviceMQTTTests.withServer { http, mqtt, token, secrets, _ in
            let retained = try await Subprocess.run(
                ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(mqtt)", "-i", "d1", "-u", "d1", "-P", secrets["d1"]!, "-q", "1", "-r",
                 "-t", "devices/d1/state", "-m", "old-owner-secret-state"],
                timeout: 10
            )
            #expect(retained.status == 0, "\(retained.stderr)")
            // While d1 exists, it is retained: the check below can fail.
            let before = try await Self.subscribe(mqtt, version: "5", id: "d1", secret: secrets["d1"]!, wait: 0.5, [("devices/d1/state", 1)])
            #expect(before.messages == ["message devices/d1/state 1 old-owner-secret-state"])

            #expect(try await ConduitCLITests.http("DELETE", http, "/v1/devices/d1", token: token).status == 204)
            let again = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"d1","name":"new d1"}"#)
            let secret = try #require(again.body["secret"] as? String)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/accept", token: token).status == 200)
            // A downlink marks the end: queued before the new d1 subscribes, it follows any retained message.
            try await Self.queueDownlink(http, token, "d1", "welcome")
            let after = try await Self.subscribe(mqtt, version: "5", id: "d1", secret: secret, [("devices/d1/#", 1)])
            #expect(after.messages == ["message devices/d1/down 1 welcome"])
        }
    }
}
