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

        let (server, http) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        let walk: Finished
        do {
            let mqtt = try #require(server.mqttPort, "no MQTT port in the server's log:\n\(server.output)")
            walk = try await Self.python([
                Self.browser, "--base", "http://127.0.0.1:\(http)", "--moto", moto, "--mqtt-port", "\(mqtt)",
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

    /// What a finished command did.
    typealias Finished = (status: Int32, stdout: String, stderr: String)

    /// Runs `conduit` in `directory` with `input` on its standard input (ConduitExecutable.run
    /// gives it none). The input comes from a file rather than a pipe: a command that exits
    /// without reading it cannot then kill the test with SIGPIPE.
    static func conduit(_ arguments: [String], input: String, in directory: URL) async throws -> Finished {
        let inputURL = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-in-\(UUID().uuidString)")
        guard FileManager.default.createFile(atPath: inputURL.path, contents: Data(input.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw TestSetupError("could not write \(inputURL.path)")
        }
        defer { try? FileManager.default.removeItem(at: inputURL) }
        let stdin = try FileHandle(forReadingFrom: inputURL)
        defer { try? stdin.close() }

        let process = Process()
        process.executableURL = try ConduitExecutable.url()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        // As ConduitExecutable.run: none of the test process's own CONDUIT_ settings.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CONDUIT_") }
        return try await Self.capturing(process, stdin: stdin)
    }

    /// Runs a Python script to completion. A walk that hangs is stopped after 15 minutes, with
    /// SIGTERM first (the script then quits Chromium) and SIGKILL 30 s later.
    static func python(_ arguments: [String]) async throws -> Finished {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--kill-after=30", "900", "python3"] + arguments
        return try await Self.capturing(process, stdin: FileHandle.nullDevice)
    }

    /// Runs a configured process to completion with `stdin` as its standard input. Its output
    /// goes to files, not pipes, as in Subprocess.runCapturing (which has no standard input to
    /// give): a pipe's end of file waits for every process that inherited its write end.
    static func capturing(_ process: Process, stdin: FileHandle) async throws -> Finished {
        let scratch = FileManager.default.temporaryDirectory
        let outURL = scratch.appendingPathComponent("conduit-out-\(UUID().uuidString)")
        let errURL = scratch.appendingPathComponent("conduit-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardInput = stdin
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try? out.close()
        try? err.close()
        await ConduitExecutable.waitForExit(process)
        return (
            process.terminationStatus,
            String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self),
            String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        )
    }
}
