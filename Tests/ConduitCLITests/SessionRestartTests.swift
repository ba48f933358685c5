import ConduitTesting
import Foundation
import Testing

@Suite("Persistent MQTT sessions survive a crash")
struct SessionRestartTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/persistent_session.py").path

    static func paho(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script] + arguments
        return try await Subprocess.runCapturing(process)
    }

    @Test("SIGKILL with QoS 1 messages queued for a 3.1.1 and a 5.0 persistent session: after a restart both resume their session, get every message in order, and are still subscribed")
    func killedWithMessagesQueued() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let mqttPort = freeLoopbackPort()
        func serve() async throws -> ConduitServer {
            try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqttPort)", "--mqtt-anonymous"], in: directory).server
        }
        let clients = [(version: "3", id: "keeper-311", topic: "fleet/311"), (version: "5", id: "keeper-5", topic: "fleet/5")]
        let count = 200

        let server = try await serve()
        for client in clients {
            let subscribed = try await Self.paho("subscribe", "\(mqttPort)", client.version, client.id, client.topic)
            #expect(subscribed.status == 0, "\(subscribed.stdout)\(subscribed.stderr)")
        }
        // Both clients are away: every acknowledged message waits in their sessions.
        for client in clients {
            let published = try await Self.paho("publish", "\(mqttPort)", client.topic, "\(count)")
            #expect(published.status == 0, "\(published.stdout)\(published.stderr)")
        }
        await server.kill()

        let restarted = try await serve()
        for client in clients {
            let received = try await Self.paho("receive", "\(mqttPort)", client.version, client.id, client.topic, "\(count)")
            #expect(received.status == 0, "\(client.id): \(received.stderr)")
            let lines = received.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first == "session present True", "\(client.id)")
            let expected = (0..<count).map { "\(client.topic) m-\($0)" } + ["\(client.topic) live"]
            #expect(Array(lines.dropFirst()) == expected, "\(client.id) got \(lines.count - 1) lines")
        }
        #expect(await restarted.stop() == 0)
    }
}
