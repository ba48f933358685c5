import ConduitTesting
import Foundation
import Testing

/// What one client, or one address, can make the broker hold, tried past each bound: each is
/// refused with MQTT's reason code for it, and counted in /metrics.
@Suite("The broker's bounds")
struct BrokerBoundsTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/bounds.py").path

    static func bounds(_ mqtt: Int, _ arguments: String...) async throws -> [String] {
        let result = try await Subprocess.run(["python3", Self.script, "\(mqtt)"] + arguments, timeout: 60)
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// `conduit serve` with `flags`, and an accepted device d1; the body gets the ports, the secret and the server.
    static func withServer(
        _ flags: [String], _ body: (_ http: Int, _ mqtt: Int, _ secret: String, _ pending: String, _ server: ConduitServer) async throws -> Void
    ) async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let mqtt = freeLoopbackPort()
        let (server, http) = try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqtt)"] + flags, in: directory)
        do {
            let token = try #require(server.bootstrapToken)
            let created = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"d1","name":"d1"}"#)
            let secret = try #require(created.body["secret"] as? String)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/d1/accept", token: token).status == 200)
            let pending = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"d2","name":"d2"}"#)
            try await body(http, mqtt, secret, try #require(pending.body["secret"] as? String), server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    static func refusals(_ http: Int) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in try await LoopbackHTTP.text(port: http, path: "/metrics").split(separator: "\n") where line.hasPrefix("conduit_mqtt_bound_refusals_total{") {
            guard let open = line.range(of: "bound=\""), let close = line[open.upperBound...].firstIndex(of: "\""),
                let value = line.split(separator: " ").last.flatMap({ Double($0) })
            else { continue }
            counts[String(line[open.upperBound..<close])] = Int(value)
        }
        return counts
    }

    @Test("subscriptions, retained messages, CONNECT size, connections per address and failed logins past their bounds are refused and counted")
    func perClientAndAddress() async throws {
        let flags = [
            "--mqtt-max-subscriptions", "2", "--mqtt-max-retained", "1", "--mqtt-max-connect-size", "512",
            "--mqtt-max-connections-per-address", "4", "--mqtt-connect-rate", "0", "--mqtt-login-failures", "5",
        ]
        try await Self.withServer(flags) { http, mqtt, secret, pending, server in
            #expect(try await Self.bounds(mqtt, "subscriptions", "d1", secret, "3") == [
                "suback devices/d1/cmd/0 0x01", "suback devices/d1/cmd/1 0x01", "suback devices/d1/cmd/2 0x97",
            ])
            // One retained message: a second topic is refused; replacing its own is not.
            #expect(try await Self.bounds(mqtt, "retained", "d1", secret, "devices/d1/a", "devices/d1/b", "devices/d1/a") == [
                "puback devices/d1/a 0x00", "puback devices/d1/b 0x97", "puback devices/d1/a 0x00",
            ])
            // A CONNECT past 512 bytes is not read at all; a small one is answered.
            #expect(try await Self.bounds(mqtt, "connect-size", "1000") == ["closed-without-connack"])
            #expect(try await Self.bounds(mqtt, "connect-size", "10").first?.hasPrefix("connack 0x") == true)

            // Four silent connections from this address, then a fifth CONNECT: refused.
            let (holder, output) = try Subprocess.start(["python3", Self.script, "\(mqtt)", "hold", "4"])
            var held = ""
            for _ in 0..<100 where !held.contains("held 4") {
                held += String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
                if !held.contains("held 4") { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(try await Self.bounds(mqtt, "connack", "d1", secret) == ["connack 0x97 this address holds as many connections as it may"])
            kill(holder.processIdentifier, SIGKILL)
            await ConduitExecutable.waitForExit(holder)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await Self.bounds(mqtt, "connack", "d1", secret) == ["connack 0x00"], "the address's connections were let go")

            // A retained will counts against the same bound: d1 has its one retained message.
            #expect(try await Self.bounds(mqtt, "will", "d1", secret) == [
                "connack 0x97 a retained will would take the client past its retained messages' bound",
            ])
            // A pending device that knows its secret is refused (0x87) but is no failed login:
            // retrying behind a shared address, it pauses nobody.
            #expect(try await Self.bounds(mqtt, "connack", "d2", pending, "6").allSatisfy { $0.hasPrefix("connack 0x87") })
            #expect(try await Self.bounds(mqtt, "connack", "d1", secret) == ["connack 0x00"])
            // Failed logins: five within a minute pause the address; the right secret is then
            // refused too, without the store being asked. One came above (the small CONNECT, which
            // named no device); whether it is still inside its minute depends on how long the steps
            // between took, so wrong secrets are sent until the pause, which takes four to nine.
            let answers = try await Self.bounds(mqtt, "connack", "d1", "wrong", "10")
            let failed = answers.prefix { $0.hasPrefix("connack 0x86") }.count
            let paused = "connack 0x9f too many failed logins from this address; try again later"
            #expect((4...9).contains(failed) && answers.dropFirst(failed).allSatisfy { $0 == paused }, "\(answers)")
            #expect(try await Self.bounds(mqtt, "connack", "d1", secret) == [paused])

            let counted = try await Self.refusals(http)
            #expect(counted["subscriptions"] == 1 && counted["retained"] == 2 && counted["connect_size"] == 1, "\(counted)")
            #expect(counted["connections_per_address"] == 1 && counted["login_failures"] == answers.count - failed + 1, "\(counted)")
            #expect(server.output.contains("too many failed logins from this address"))
        }
    }

    @Test("CONNECTs from one address past its rate are refused with 0x9F and counted")
    func connectRate() async throws {
        try await Self.withServer(["--mqtt-connect-rate", "1"]) { http, mqtt, secret, _, _ in
            // A burst of two, then one a second.
            let answers = try await Self.bounds(mqtt, "connack", "d1", secret, "4")
            #expect(answers.prefix(2) == ["connack 0x00", "connack 0x00"], "\(answers)")
            #expect(answers.contains("connack 0x9f too many CONNECTs from this address; slow down"), "\(answers)")
            #expect((try await Self.refusals(http)["connect_rate"] ?? 0) >= 1)
        }
    }
}
