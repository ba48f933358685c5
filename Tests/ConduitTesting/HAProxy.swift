import Foundation
import Synchronization

/// HAProxy (Debian's `haproxy`) in TCP mode in front of several nodes' MQTT listeners, configured
/// as the README's "Several nodes on one PostgreSQL" does: least connections, a node whose
/// `/readyz` does not answer takes no new device, a connect a node refuses is tried on another.
/// Its checks run every 500 ms here instead of 2 s, to keep the test short.
public final class HAProxy: Sendable {
    public let port = freeLoopbackPort()
    private let configurationPath: String
    private let process = Mutex<Process?>(nil)

    /// `nodes`: each node's MQTT port and HTTP port.
    public init(in directory: URL, nodes: [(mqtt: Int, http: Int)]) throws {
        self.configurationPath = directory.appendingPathComponent("haproxy.cfg").path
        let servers = nodes.enumerated().map { index, node in
            "    server n\(index + 1) 127.0.0.1:\(node.mqtt) check port \(node.http)"
        }
        let configuration = """
            defaults
                mode tcp
                timeout connect 5s
                timeout client  15m
                timeout server  15m
                retries 3
                option redispatch

            frontend mqtt
                bind 127.0.0.1:\(self.port)
                default_backend conduit_mqtt
            backend conduit_mqtt
                balance leastconn
                option httpchk GET /readyz
                default-server inter 500ms fall 2 rise 2
            \(servers.joined(separator: "\n"))

            """
        try configuration.write(toFile: self.configurationPath, atomically: true, encoding: .utf8)
    }

    /// Starts it in the foreground (stopped by its PID) and waits until it takes connections.
    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/haproxy")
        process.arguments = ["-db", "-f", self.configurationPath]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        if try await loopbackPortAccepts(self.port) { return }
        await self.stop()
        throw TestSetupError("haproxy did not start: haproxy -c -f \(self.configurationPath) tells why")
    }

    deinit {
        if let process = self.process.withLock({ $0 }), process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public func stop() async {
        guard let process = self.process.withLock({ $0 }) else { return }
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        await ConduitExecutable.waitForExit(process)
    }
}
