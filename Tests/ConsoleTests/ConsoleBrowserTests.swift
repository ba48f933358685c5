import ConduitTesting
import Foundation
import Testing

/// The web console driven end to end by a headless Chromium (Peers/console_browser.py, selenium):
/// sign-in, an integration against moto, a device provisioned, its shadow, a downlink, a live
/// message from the broker, script injection, CSRF, and what a reader may not do.
@Suite("The web console in a browser")
struct ConsoleBrowserTests {
    static let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let browser = here.appendingPathComponent("Peers/console_browser.py").path
    /// Tests/ConsoleTests/ -> Tests/ -> the repository.
    static let repository = here.deletingLastPathComponent().deletingLastPathComponent()

    @Test("a person walks through the console: admin work in moto's AWS, live messages, XSS and CSRF refused, a reader sees no control")
    func walkThrough() async throws {
        let moto = try MotoPeer.url().absoluteString
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }

        // The console's users exist before the server first starts, made as an operator would.
        let admin = (email: "admin@example.com", password: "admin-\(UUID().uuidString.lowercased())")
        let reader = (email: "reader@example.com", password: "reader-\(UUID().uuidString.lowercased())")
        for (user, role) in [(admin, "admin"), (reader, "reader")] {
            let created = try await Self.conduit(["users", "create", "--email", user.email, "--role", role], input: user.password + "\n", in: directory)
            try #require(created.status == 0, "conduit users create \(user.email) failed: \(created.stdout)\(created.stderr)")
            #expect(!(created.stdout + created.stderr).contains(user.password), "conduit users create printed the password")
        }

        // Kept under .build (not in the temporary directory) so they can be looked at after a run;
        // emptied first so that all of them come from this run.
        let screenshots = Self.repository.appendingPathComponent(".build/console-screenshots")
        try? FileManager.default.removeItem(at: screenshots)
        try FileManager.default.createDirectory(at: screenshots, withIntermediateDirectories: true)

        // The gateway's MQTT endpoint: a loopback port nothing listens on, listed by the operator.
        let gateway = "127.0.0.1:\(freeLoopbackPort())"
        let allowlist = (try MotoPeer.allowlistEntries() + ["mqtts://\(gateway)"]).joined(separator: ",")
        // A webhook receiver's address the operator allowlisted; nothing answers there, so its deliveries wait.
        let receiver = "http://127.0.0.1:\(freeLoopbackPort())"
        let (server, http) = try await ConduitServer.start(
            ["--http-port", "0"], in: directory, environment: ["CONDUIT_AWS_ENDPOINT_ALLOWLIST": allowlist, "CONDUIT_WEBHOOKS_ALLOWLIST": receiver]
        )
        let walk: ConduitExecutable.Result
        do {
            let mqtt = try #require(server.mqttPort, "no MQTT port in the server's log:\n\(server.output)")
            walk = try await Self.python([
                Self.browser, "--base", "http://127.0.0.1:\(http)", "--moto", moto, "--mqtt-port", "\(mqtt)", "--gateway-endpoint", gateway,
                "--webhook-url", receiver + "/hooks/conduit",
                "--admin-email", admin.email, "--admin-password", admin.password,
                "--reader-email", reader.email, "--reader-password", reader.password,
                "--screenshots", screenshots.path,
            ])
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        #expect(
            walk.status == 0,
            """
            the browser walk failed (exit status \(walk.status)); screenshots in \(screenshots.path)
            --- console_browser.py output:
            \(walk.stdout)\(walk.stderr)
            --- conduit serve log:
            \(server.output.suffix(100_000))
            """
        )
    }

    /// Runs `conduit` in `directory` with `input` on its standard input.
    static func conduit(_ arguments: [String], input: String, in directory: URL) async throws -> ConduitExecutable.Result {
        try await ConduitExecutable.run(arguments, in: directory, input: input)
    }

    /// Runs a Python script to completion. A walk that hangs is stopped after 15 minutes, with
    /// SIGTERM first (the script then quits Chromium) and SIGKILL 30 s later.
    static func python(_ arguments: [String]) async throws -> ConduitExecutable.Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=30", "900", "python3"] + arguments
        let (status, stdout, stderr) = try await Subprocess.runCapturing(process)
        return ConduitExecutable.Result(status: status, stdout: stdout, stderr: stderr)
    }
}
