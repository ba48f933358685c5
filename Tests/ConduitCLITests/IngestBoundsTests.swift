import ConduitTesting
import Foundation
import Testing

@Suite("What devices send is bounded at ingest")
struct IngestBoundsTests {
    static func peer(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/\(name)").path
    }

    /// A device with its secret, created and accepted through the CLI.
    static func device(_ id: String, in directory: URL) async throws -> String {
        let created = try await ConduitExecutable.run(["devices", "create", "--id", id, "--name", id], in: directory)
        let secret = try #require(created.stdout.split(separator: "\t").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        #expect(try await ConduitExecutable.run(["devices", "accept", id], in: directory).status == 0)
        return secret
    }

    /// The resident memory of a process, in MiB, from /proc.
    static func residentMiB(_ pid: Int32) -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return nil }
        return kilobytes / 1024
    }

    @Test("one device flooding QoS 0 and QoS 1 messages near the size limit is slowed, memory stays bounded, and nothing acknowledged is lost, its own or another device's")
    func flood() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let flooder = try await Self.device("flooder", in: directory)
        let neighbour = try await Self.device("neighbour", in: directory)
        // A history long enough to hold every message of the flood, so that all can be checked.
        let (server, httpPort) = try await ConduitServer.start(["--http-port", "0", "--message-history", "1000000"], in: directory)
        let mqtt = try #require(server.mqttPort)
        let pid = server.process.processIdentifier
        let before = try #require(Self.residentMiB(pid))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let database = directory.appendingPathComponent("data/conduit.sqlite").path
        process.arguments = ["python3", Self.peer("flood.py"), "\(mqtt)", "flooder", flooder, "neighbour", neighbour, "16", "126000", database]
        let flooding = Task { try await Subprocess.runCapturing(process) }
        var peak = before
        try await Task.sleep(for: .milliseconds(500))
        while process.isRunning {
            if let resident = Self.residentMiB(pid) { peak = max(peak, resident) }
            try await Task.sleep(for: .milliseconds(100))
        }
        let (status, stdout, stderr) = try await flooding.value
        #expect(status == 0, "\(stdout)\(stderr)")
        // Unbounded, 20 s of 100 KB QoS 0 messages took the hub from 52 MB to 1.1 GB.
        #expect(peak - before < 200, "RSS went from \(before) MiB to \(peak) MiB: \(stdout)")

        let metrics = try await Subprocess.run(["curl", "-sf", "http://127.0.0.1:\(httpPort)/metrics"])
        let paused = metrics.stdout.split(separator: "\n").first { $0.hasPrefix("conduit_mqtt_ingest_paused_total") }
        #expect(paused.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true, "the flooder was never held back")
        #expect(await server.stop() == 0)
    }

    @Test("a message AWS could never take is refused with its reason code and not stored; a packet over the maximum size ends the connection; empty messages do not wedge the connection")
    func oversized() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let secret = try await Self.device("big-sender", in: directory)
        let (server, _) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        let mqtt = try #require(server.mqttPort)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.peer("oversize.py"), "\(mqtt)", "big-sender", secret]
        let (status, stdout, stderr) = try await Subprocess.runCapturing(process)
        #expect(status == 0, "\(stderr)")
        // 0x83: the PUBLISH is valid, but AWS IoT takes at most 128 KiB; 0x95: Packet too large.
        #expect(stdout.split(separator: "\n").map(String.init) == ["puback 131", "disconnect 149", "closed", "empty then acked"], "\(stdout)\(stderr)")
        #expect(await server.stop() == 0)
        let count = try await Subprocess.run(
            ["python3", "-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM device_messages').fetchone()[0])",
             directory.appendingPathComponent("data/conduit.sqlite").path]
        )
        // The 300 empty messages and the one after them; nothing of the refused ones.
        #expect(count.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "301", "nothing of the refused messages is stored")
    }
}
