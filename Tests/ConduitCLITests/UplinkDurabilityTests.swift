import ConduitTesting
import Foundation
import Testing

@Suite("Uplinks survive AWS outages and crashes")
struct UplinkDurabilityTests {
    static let publisher = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/uplink_publisher.py").path

    @Test("10,000 messages, moto stopped for a while and Conduit killed with SIGKILL midway: every one reaches moto")
    func outageAndCrash() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let moto = MotoServer(recording: directory.appendingPathComponent("moto-recording.jsonl").path)
        try await moto.start()
        defer { Task { await moto.stop() } }
        let account = MotoPeer.Account()
        let environment = [
            "AWS_ACCESS_KEY_ID": "AKIACONDUITDURABLE01", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": moto.url.absoluteString,
            "CONDUIT_AWS_ENDPOINT_ALLOWLIST": "http://127.0.0.1:\(moto.url.port ?? 80)",
        ]
        func conduit(_ arguments: String...) async throws -> ConduitExecutable.Result {
            try await ConduitExecutable.run(Array(arguments), in: directory, environment: environment)
        }
        let mqttPort = freeLoopbackPort()
        func serve() async throws -> ConduitServer {
            try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqttPort)"], in: directory, environment: environment).server
        }

        let created = try await conduit("devices", "create", "--id", "durable-1", "--name", "Durable", "--label", "fleet")
        let secret = try #require(created.stdout.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(try await conduit("devices", "accept", "durable-1").status == 0)
        let integration = try await conduit(
            "integrations", "create", "--name", "durable", "--region", "us-east-1", "--endpoint-url", moto.url.absoluteString,
            "--role-arn", account.roleARN, "--external-id", "conduit-test", "--label", "fleet", "--wait"
        )
        #expect(integration.status == 0, "\(integration.stderr)")

        var server = try await serve()
        do {
            let total = 10_000
            let progress = directory.appendingPathComponent("progress").path
            let device = Process()
            device.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            device.arguments = ["python3", Self.publisher, "\(mqttPort)", "durable-1", secret, "\(total)", progress]
            let publishing = Task { try await Subprocess.runCapturing(device) }
            func acknowledged() -> Int { Int((try? String(contentsOfFile: progress, encoding: .utf8)) ?? "") ?? 0 }
            func arrived() throws -> Set<String> {
                Set(try MotoPeer.recordedPublishes(file: moto.recording).map { String(decoding: $0.payload, as: UTF8.self) })
            }

            // AWS goes away a fifth of the way in; Conduit is killed while it is away, with messages
            // taken from the device but not yet in AWS; both come back.
            try await waitUntil("2,000 messages in moto", seconds: 300) { try arrived().count >= 2_000 }
            await moto.stop()
            try await waitUntil("the device to get on while AWS is away", seconds: 120) { acknowledged() >= 3_500 }
            await server.kill()
            try await Task.sleep(for: .milliseconds(500))
            server = try await serve()
            try await waitUntil("more messages taken while AWS is away", seconds: 120) { acknowledged() >= 5_000 }
            try await moto.start()

            let (status, stdout, stderr) = try await publishing.value
            #expect(status == 0, "the device could not send everything: \(stdout)\(stderr)")
            do {
                try await waitUntil("every message in moto", seconds: 300) { try arrived().count >= total }
            } catch {
                let database = directory.appendingPathComponent("data/conduit.sqlite").path
                let counts = try await Subprocess.run([
                    "python3", "-c",
                    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print([c.execute(q).fetchall() for q in ('SELECT COUNT(*), MIN(seq), MAX(seq) FROM outbox', 'SELECT COUNT(*) FROM device_messages', 'SELECT id, status, active FROM integrations', 'SELECT wanted, state FROM aws_things')])",
                    database,
                ])
                Issue.record(
                    "\(try arrived().count) of \(total) in moto; the store: \(counts.stdout)\(counts.stderr); the server's log ends:\n\(server.output.suffix(4000))"
                )
            }
            let missing = Set((0..<total).map { "m-\($0)" }).subtracting(try arrived())
            #expect(missing.isEmpty, "lost: \(missing.sorted().prefix(20))")
        } catch {
            // A failure stops the server it started, not leaving it running past the test.
            await server.kill()
            throw error
        }
        await server.stop()
    }

    @Test("what a device publishes reaches AWS in the order it published, through the broker")
    func order() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let moto = try MotoPeer.url().absoluteString
        let account = MotoPeer.Account()
        let environment = ["AWS_ACCESS_KEY_ID": "AKIACONDUITORDER0001", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": moto]
        func conduit(_ arguments: String...) async throws -> ConduitExecutable.Result {
            try await ConduitExecutable.run(Array(arguments), in: directory, environment: environment)
        }
        let id = "ordered-\(UUID().uuidString.prefix(6).lowercased())"
        let created = try await conduit("devices", "create", "--id", id, "--name", "Ordered", "--label", "fleet")
        let secret = try #require(created.stdout.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(try await conduit("devices", "accept", id).status == 0)
        #expect(
            try await conduit(
                "integrations", "create", "--name", "ordered", "--region", "us-east-1", "--endpoint-url", moto, "--role-arn", account.roleARN,
                "--external-id", "conduit-test", "--label", "fleet", "--uplink-topic", "ordered/{deviceId}"
            ).status == 0
        )
        let (server, _) = try await ConduitServer.start(["--http-port", "0"], in: directory, environment: environment)
        let mqtt = try #require(server.mqttPort)
        // mosquitto_pub -l: one connection, a message per line, QoS 1, as fast as the broker acknowledges.
        let lines = (0..<300).map { "n-\($0)" }.joined(separator: "\n") + "\n"
        let input = directory.appendingPathComponent("lines")
        try Data(lines.utf8).write(to: input)
        let published = try await Subprocess.run(
            ["sh", "-c", "mosquitto_pub -h 127.0.0.1 -p \(mqtt) -i \(id) -u \(id) -P \(secret) -q 1 -t devices/\(id)/up -l < \(input.path)"], timeout: 60
        )
        #expect(published.status == 0, "\(published.stderr)")
        var arrived: [String] = []
        for _ in 0..<300 {
            arrived = try MotoPeer.recordedPublishes(containing: id).filter { $0.topic == "ordered/\(id)" }.map { String(decoding: $0.payload, as: UTF8.self) }
            if arrived.count >= 300 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(arrived == (0..<300).map { "n-\($0)" })
        await server.stop()
    }
}
