import Foundation
import Synchronization

/// The built `conduit` executable, run as a user would run it.
public enum ConduitExecutable {
    /// Where `swift build` put the executable: beside the test bundle, or in `.build/debug`.
    public static func url() throws -> URL {
        var candidates: [URL] = []
        let bundle = Bundle.main.bundleURL
        candidates.append(bundle.appendingPathComponent("conduit"))
        candidates.append(bundle.deletingLastPathComponent().appendingPathComponent("conduit"))
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/conduit"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate
        }
        throw TestSetupError("no conduit executable in \(candidates.map(\.path)): run swift build --build-tests first")
    }

    /// The result of a finished command.
    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
    }

    /// Runs `conduit` with `arguments` in `directory` to completion.
    public static func run(
        _ arguments: [String], in directory: URL, environment: [String: String] = [:]
    ) async throws -> Result {
        let process = Process()
        process.executableURL = try self.url()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = self.environment(environment)
        let (status, stdout, stderr) = try await Subprocess.runCapturing(process)
        return Result(status: status, stdout: stdout, stderr: stderr)
    }

    /// Waits for the process to exit without blocking a cooperative thread.
    public static func waitForExit(_ process: Process) async {
        // Polling, not waitUntilExit: that one spins a run loop on whatever thread calls it.
        while process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The test process's environment without any CONDUIT_ setting, plus `extra`.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CONDUIT_") }
        environment.merge(extra) { _, new in new }
        return environment
    }
}

/// A `conduit serve` running in the background, stopped by its PID.
public final class ConduitServer: Sendable {
    public let process: Process
    private let log: Mutex<String>
    public let directory: URL

    private init(process: Process, directory: URL) {
        self.process = process
        self.log = Mutex("")
        self.directory = directory
    }

    /// Everything the server wrote to standard error so far.
    public var output: String { self.log.withLock { $0 } }

    /// Starts `conduit serve` with `arguments` in `directory` and waits until it serves HTTP.
    public static func start(
        _ arguments: [String] = [], in directory: URL, environment: [String: String] = [:]
    ) async throws -> (server: ConduitServer, port: Int) {
        let process = Process()
        process.executableURL = try ConduitExecutable.url()
        process.arguments = ["serve"] + arguments
        process.currentDirectoryURL = directory
        // Each test's server takes a free MQTT port unless the test says otherwise: 1883 is one port.
        process.environment = ConduitExecutable.environment(["CONDUIT_MQTT_PORT": "0"].merging(environment) { _, new in new })
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let server = ConduitServer(process: process, directory: directory)
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { server.log.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        try process.run()
        for _ in 0..<600 {
            if let port = server.servingPort() { return (server, port) }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        await server.stop()
        throw TestSetupError("conduit serve did not start:\n\(server.output)")
    }

    /// The port from the "conduit is serving" log line, once it is there.
    func servingPort() -> Int? {
        let output = self.output
        guard let range = output.range(of: "conduit.http=http://") else { return nil }
        let rest = output[range.upperBound...]
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        return Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
    }

    /// The MQTT port from the "conduit is serving" log line.
    public var mqttPort: Int? { self.port(after: "conduit.mqtt=mqtt://") }

    /// The MQTT TLS port from the "conduit is serving" log line.
    public var mqttTLSPort: Int? { self.port(after: "conduit.mqtts=mqtts://") }

    private func port(after marker: String) -> Int? {
        let output = self.output
        guard let range = output.range(of: marker) else { return nil }
        let rest = output[range.upperBound...]
        guard let colon = rest.firstIndex(of: ":") else { return nil }
        return Int(rest[rest.index(after: colon)...].prefix { $0.isNumber })
    }

    /// The bootstrap token the first start logged, if any.
    public var bootstrapToken: String? {
        guard let range = self.output.range(of: "conduit.token=") else { return nil }
        return String(self.output[range.upperBound...].prefix { !$0.isWhitespace })
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    @discardableResult
    public func stop() async -> Int32 {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGTERM)
        }
        await ConduitExecutable.waitForExit(self.process)
        return self.process.terminationStatus
    }

    deinit {
        if self.process.isRunning {
            kill(self.process.processIdentifier, SIGKILL)
        }
    }
}

/// A fresh empty directory under the system's temporary directory.
public func makeTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-cli-\(UUID().uuidString.lowercased())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}
