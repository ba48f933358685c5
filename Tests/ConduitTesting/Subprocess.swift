import Foundation

/// Runs a program to completion with a time limit, reading its output without blocking Swift's
/// cooperative threads.
public enum Subprocess {
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `arguments[0]` (looked up on PATH) with the rest; killed after `timeout` seconds.
    public static func run(_ arguments: [String], timeout: Double = 20, environment: [String: String] = [:]) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments = ["--signal=KILL", String(timeout)] + arguments
        var merged = ProcessInfo.processInfo.environment
        merged.merge(environment) { _, new in new }
        process.environment = merged
        let (status, stdout, stderr) = try await Self.runCapturing(process)
        return Result(status: status, stdout: stdout, stderr: stderr)
    }

    /// Runs a configured process with its output going to temporary files, not pipes: a pipe's
    /// end of file waits for every process that inherited its write end, and tests start many
    /// processes at once.
    /// - Parameter input: what the process reads on standard input (nothing when nil); it comes
    ///   from a file too, so a process that exits without reading it cannot kill the test with SIGPIPE.
    public static func runCapturing(_ process: Process, input: String? = nil) async throws -> (Int32, String, String) {
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("conduit-out-\(UUID().uuidString)")
        let errURL = directory.appendingPathComponent("conduit-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let inURL = directory.appendingPathComponent("conduit-in-\(UUID().uuidString)")
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
            try? FileManager.default.removeItem(at: inURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        var stdin: FileHandle?
        if let input {
            _ = FileManager.default.createFile(atPath: inURL.path, contents: Data(input.utf8), attributes: [.posixPermissions: 0o600])
            stdin = try FileHandle(forReadingFrom: inURL)
        }
        process.standardInput = stdin ?? FileHandle.nullDevice
        try process.run()
        try? out.close()
        try? err.close()
        try? stdin?.close()
        await ConduitExecutable.waitForExit(process)
        return (
            process.terminationStatus,
            String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self),
            String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self)
        )
    }

    /// Starts a program in the background; the caller ends it with `terminate()`.
    public static func start(_ arguments: [String]) throws -> (process: Process, output: Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return (process, out)
    }
}

/// Returns once `condition` holds, looking every `interval`; throws after `seconds`, naming `what`.
public func waitUntil(
    _ what: String, seconds: Double = 60, interval: Duration = .milliseconds(100), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestSetupError("timed out waiting for \(what)") }
        try await Task.sleep(for: interval)
    }
}
