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

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }
    }

    /// Runs `conduit` with `arguments` in `directory` to completion, with `input` on its standard input.
    public static func run(
        _ arguments: [String], in directory: URL, environment: [String: String] = [:], input: String? = nil
    ) async throws -> Result {
        let process = Process()
        process.executableURL = try self.url()
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = self.environment(environment)
        let (status, stdout, stderr) = try await Subprocess.runCapturing(process, input: input)
        return Result(status: status, stdout: stdout, stderr: stderr)
    }

    /// Waits for the process to exit without blocking a cooperative thread.
    public static func waitForExit(_ process: Process) async {
        // Polling, not waitUntilExit: that one spins a run loop on whatever thread calls it.
        while process.isRunning {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The test process's environment without any CONDUIT_ setting, plus `extra`. The motos the
    /// tests share are in the operator's endpoint allowlist, unless `extra` sets its own.
    static func environment(_ extra: [String: String]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("CONDUIT_") }
        if let motos = try? MotoPeer.allowlistEntries(), !motos.isEmpty {
            environment["CONDUIT_AWS_ENDPOINT_ALLOWLIST"] = motos.joined(separator: ",")
        }
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
    ///
    /// Unless the test names one, the MQTT port is a free one picked here (0 would turn the
    /// plaintext listener off). Another test's server may take it before this one binds it (seen
    /// in CI); the start is then tried again on another.
    public static func start(
        _ arguments: [String] = [], in directory: URL, environment: [String: String] = [:]
    ) async throws -> (server: ConduitServer, port: Int) {
        let picksPort = environment["CONDUIT_MQTT_PORT"] == nil && !arguments.contains("--mqtt-port")
        var attempt = 1
        while true {
            do {
                return try await self.startOnce(arguments, in: directory, environment: environment)
            } catch let error as TestSetupError where picksPort && attempt < 3 && error.description.contains("MQTT 127.0.0.1:") && error.description.contains("is in use") {
                attempt += 1
            }
        }
    }

    private static func startOnce(
        _ arguments: [String], in directory: URL, environment: [String: String]
    ) async throws -> (server: ConduitServer, port: Int) {
        let process = Process()
        process.executableURL = try ConduitExecutable.url()
        process.arguments = ["serve"] + arguments
        process.currentDirectoryURL = directory
        // Each test's server takes a free MQTT port unless the test says otherwise: 1883 is one port.
        process.environment = ConduitExecutable.environment(["CONDUIT_MQTT_PORT": "\(freeLoopbackPort())"].merging(environment) { _, new in new })
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
            Foundation.kill(self.process.processIdentifier, SIGTERM)
        }
        await ConduitExecutable.waitForExit(self.process)
        return self.process.terminationStatus
    }

    /// Kills the process with SIGKILL, as a crash or a power cut would, and waits for it to be gone.
    public func kill() async {
        if self.process.isRunning {
            Foundation.kill(self.process.processIdentifier, SIGKILL)
        }
        await ConduitExecutable.waitForExit(self.process)
    }

    deinit {
        if self.process.isRunning {
            Foundation.kill(self.process.processIdentifier, SIGKILL)
        }
    }
}

/// Every port ``freeLoopbackPort()`` has looked at in this process.
private let portsLookedAt = Mutex<Set<Int>>([])

/// A loopback TCP port nothing listens on now, below the ephemeral range (as scripts/test picks
/// them), and never one this process was given before: tests run side by side, and two that drew
/// the same free port would race to bind it.
public func freeLoopbackPort() -> Int {
    while true {
        let port = Int.random(in: 20000...31999)
        guard portsLookedAt.withLock({ $0.insert(port).inserted }) else { continue }
        if let fd = bindLoopback(port: port) {
            close(fd)
            return port
        }
    }
}

/// A loopback port held by a listening socket of the test's own, as another program would hold
/// it; close the socket to let it go.
public func holdLoopbackPort() -> (socket: Int32, port: Int) {
    while true {
        let port = freeLoopbackPort()
        guard let fd = bindLoopback(port: port) else { continue }
        if listen(fd, 8) == 0 { return (fd, port) }
        close(fd)
    }
}

/// A TCP socket bound to 127.0.0.1:`port`, or nil when the port is taken.
private func bindLoopback(port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else {
        close(fd)
        return nil
    }
    return fd
}

/// A moto_server of a test's own, on a port of its own, recording what it gets to a file; for
/// tests that stop and start it (the shared one must stay up).
public final class MotoServer: Sendable {
    public let port: Int
    public let recording: String
    private let process: Mutex<Process?>

    public init(recording: String) {
        self.port = freeLoopbackPort()
        self.recording = recording
        self.process = Mutex(nil)
    }

    public var url: URL { URL(string: "http://127.0.0.1:\(self.port)")! }

    /// Starts it (again) and waits until it answers.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", "\(self.port)"]
        var environment = ProcessInfo.processInfo.environment
        environment["MOTO_ENABLE_RECORDING"] = "true"
        environment["MOTO_RECORDER_FILEPATH"] = self.recording
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        for _ in 0..<200 {
            let probe = try await Subprocess.run(["curl", "-sf", "-o", "/dev/null", "\(self.url.absoluteString)/moto-api/"], timeout: 5)
            if probe.status == 0 {
                try await Self.warmUp(self.url)
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        await self.stop()
        throw TestSetupError("moto_server did not start on port \(self.port)")
    }

    /// moto loads a service's backend on its first request to it, which on a loaded machine takes
    /// seconds: longer than the time Conduit gives AWS to answer when an integration is checked.
    /// One unsigned call to IoT and one to STS loads both before a test begins.
    static func warmUp(_ url: URL) async throws {
        for (service, arguments) in [("iot", ["\(url.absoluteString)/endpoint?endpointType=iot%3AData-ATS"]), ("sts", ["-d", "Action=GetCallerIdentity&Version=2011-06-15", url.absoluteString])] {
            let authorization = "Authorization: AWS4-HMAC-SHA256 Credential=AKIAWARMUP/20260101/us-east-1/\(service)/aws4_request, SignedHeaders=host, Signature=0"
            _ = try await Subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", authorization] + arguments, timeout: 60)
        }
    }

    deinit {
        // A test that failed midway still leaves no moto_server behind.
        if let process = self.process.withLock({ $0 }), process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    /// Stops it with SIGKILL (an outage, not a goodbye) and waits for it to be gone.
    public func stop() async {
        guard let process = self.process.withLock({ $0 }) else { return }
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        await ConduitExecutable.waitForExit(process)
    }
}

/// A fresh empty directory under the system's temporary directory.
public func makeTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-cli-\(UUID().uuidString.lowercased())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// How many connections reached a socket from ``holdLoopbackPort()`` and wait to be accepted:
/// accepts (and closes) each without waiting. A client that connected and gave up still counts,
/// since the kernel completed its handshake.
public func connectionsMade(to socket: Int32) -> Int {
    let flags = fcntl(socket, F_GETFL)
    _ = fcntl(socket, F_SETFL, flags | O_NONBLOCK)
    var count = 0
    while true {
        let accepted = accept(socket, nil, nil)
        guard accepted >= 0 else { break }
        close(accepted)
        count += 1
    }
    return count
}

/// The TCP ports the process listens on, IPv4 and IPv6, as the kernel lists them: its sockets
/// (from `/proc/PID/fd`) matched by inode against the listening ones in `/proc/net/tcp{,6}`.
public func listeningTCPPorts(of pid: Int32) -> Set<Int> {
    var inodes: Set<String> = []
    let fds = "/proc/\(pid)/fd"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: fds)) ?? [] {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(name)"), target.hasPrefix("socket:[")
        else { continue }
        inodes.insert(String(target.dropFirst("socket:[".count).dropLast()))
    }
    var ports: Set<Int> = []
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // Read to the end: a /proc file states no size, and a single read may return its first page only.
        guard let handle = FileHandle(forReadingAtPath: table) else { continue }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        try? handle.close()
        for line in text.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ")
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            guard columns.count > 9, columns[3] == "0A", inodes.contains(String(columns[9])),
                let portHex = columns[1].split(separator: ":").last, let port = Int(portHex, radix: 16)
            else { continue }
            ports.insert(port)
        }
    }
    return ports
}
