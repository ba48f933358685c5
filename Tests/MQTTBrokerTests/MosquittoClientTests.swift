import ConduitTesting
import Foundation
import MQTT
import MQTTBroker
import Testing

@Suite("Interop: mosquitto_pub and mosquitto_sub")
struct MosquittoClientTests {
    static let versions = ["mqttv311", "mqttv5"]

    @Test("messages of each QoS arrive whole; acknowledged ones in order", arguments: versions, [0, 1, 2])
    func publishSubscribe(version: String, qos: Int) async throws {
        try await withBroker { _, port in
            let subscriber = try await Subscriber.start(port: port, version: version, topic: "sensors/+/temp", count: 3, qos: qos)
            for index in 1...3 {
                let result = try await Subprocess.run(
                    ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(port)", "-V", version, "-q", "\(qos)",
                     "-t", "sensors/s\(index)/temp", "-m", "reading \(index) ünïcode"]
                )
                #expect(result.status == 0, "\(result.stderr)")
            }
            let lines = await subscriber.lines()
            let expected = (1...3).map { "sensors/s\($0)/temp reading \($0) ünïcode" }
            if qos == 0 {
                // Each message comes from a publisher of its own that does not wait for the broker:
                // MQTT orders messages per publisher only, so QoS 0 arrives whole but in any order.
                #expect(lines.sorted() == expected)
            } else {
                // Each publisher waited for its acknowledgement before the next began.
                #expect(lines == expected)
            }
        }
    }

    @Test("a retained message reaches a later subscriber; an empty one clears it", arguments: versions)
    func retained(version: String) async throws {
        try await withBroker { _, port in
            let publish = try await Subprocess.run(
                ["mosquitto_pub", "-p", "\(port)", "-V", version, "-q", "1", "-r", "-t", "status/door", "-m", "open"]
            )
            #expect(publish.status == 0)
            // (mosquitto_sub's own -W needs SIGALRM, which a child of the test runner may have blocked.)
            let first = try await Subprocess.run(["mosquitto_sub", "-p", "\(port)", "-V", version, "-t", "status/#", "-C", "1", "-v"], timeout: 60)
            #expect(first.stdout == "status/door open\n")
            // QoS 1, so the broker has processed the clearing message before the next client asks.
            _ = try await Subprocess.run(["mosquitto_pub", "-p", "\(port)", "-V", version, "-q", "1", "-r", "-t", "status/door", "-n"])
            let cleared = try await Subprocess.run(["mosquitto_sub", "-p", "\(port)", "-V", version, "-t", "status/#", "-C", "1"], timeout: 1.5)
            #expect(cleared.stdout.isEmpty)
        }
    }

    @Test("a large payload passes through unchanged", arguments: versions)
    func largePayload(version: String) async throws {
        try await withBroker { _, port in
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("payload-\(UUID().uuidString)")
            let payload = Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
            try payload.write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let out = file.appendingPathExtension("out")
            let subscriber = try Subprocess.start(
                // Bounds for a machine loaded by the rest of the suite (it failed at 10 s in CI), not timings.
                ["sh", "-c", "timeout 120 stdbuf -oL mosquitto_sub -d -p \(port) -V \(version) -t blob -C 1 -N > \(out.path)"]
            )
            for _ in 0..<4800 where !((try? String(contentsOf: out, encoding: .isoLatin1))?.contains("received SUBACK") ?? false) {
                try await Task.sleep(for: .milliseconds(25))
            }
            let publish = try await Subprocess.run(["mosquitto_pub", "-p", "\(port)", "-V", version, "-q", "1", "-t", "blob", "-f", file.path], timeout: 120)
            #expect(publish.status == 0)
            await ConduitExecutable.waitForExit(subscriber.process)
            // -d adds debug lines around the payload; the payload itself is the 200,000 bytes after the
            // PUBLISH line.
            let received = try Data(contentsOf: out)
            #expect(received.range(of: payload) != nil, "\(received.count) bytes received")
            try? FileManager.default.removeItem(at: out)
        }
    }

    @Test("one connection may publish far more QoS 1 messages than the receive maximum, one after another", arguments: versions)
    func manyOnOneConnection(version: String) async throws {
        try await withBroker { _, port in
            let subscriber = try await Subscriber.start(port: port, version: version, topic: "burst", count: 500, qos: 1)
            // mosquitto_pub -l sends each line of its input as a message, over one connection.
            let result = try await Subprocess.run(
                ["sh", "-c", "seq 500 | mosquitto_pub -p \(port) -V \(version) -q 1 -t burst -l"], timeout: 30
            )
            #expect(result.status == 0, "\(result.stderr)")
            #expect(await subscriber.lines() == (1...500).map { "burst \($0)" })
        }
    }

    @Test("$ topics are not matched by a leading wildcard")
    func dollarTopics() async throws {
        try await withBroker { _, port in
            let subscriber = try await Subscriber.start(port: port, version: "mqttv311", topic: "#", count: 1)
            _ = try await Subprocess.run(["mosquitto_pub", "-p", "\(port)", "-t", "$SYS/hidden", "-m", "x"])
            _ = try await Subprocess.run(["mosquitto_pub", "-p", "\(port)", "-t", "visible", "-m", "y"])
            #expect(await subscriber.lines() == ["visible y"])
        }
    }
}
