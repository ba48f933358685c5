import Foundation
import Synchronization

/// A CA, a server certificate for localhost and 127.0.0.1, and client certificates, made by openssl.
public struct TestPKI: Sendable {
    public let directory: URL

    public func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }
    public func read(_ name: String) throws -> String { try String(contentsOfFile: self.path(name), encoding: .utf8) }

    public static func make(in directory: URL) async throws -> TestPKI {
        let script = """
            set -e
            cd '\(directory.path)'
            printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext
            for ca in ca other-ca; do
              openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $ca.key -out $ca.pem -days 2 -subj "/CN=$ca" 2>/dev/null
            done
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null
            for client in gateway:ca stranger:other-ca; do
              name=${client%%:*}; ca=${client##*:}
              openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout $name.key -out $name.csr -subj /CN=$name 2>/dev/null
              openssl x509 -req -in $name.csr -CA $ca.pem -CAkey $ca.key -CAcreateserial -out $name.pem -days 2 2>/dev/null
            done
            chmod 644 *.key
            """
        let result = try await Subprocess.run(["sh", "-c", script], timeout: 30)
        guard result.status == 0 else { throw TestSetupError("openssl failed: \(result.stderr)") }
        return TestPKI(directory: directory)
    }
}

/// mosquitto on a port of its own, with TLS that requires a client certificate of the test CA.
public final class TLSMosquitto: Sendable {
    public let port = freeLoopbackPort()
    /// A plain listener beside the TLS one, for test publishers.
    public let plainPort = freeLoopbackPort()
    public let pki: TestPKI
    private let process = Mutex<Process?>(nil)

    public init(pki: TestPKI) throws {
        self.pki = pki
        let configuration = """
            user root
            listener \(self.port) 127.0.0.1
            cafile \(pki.path("ca.pem"))
            certfile \(pki.path("server.pem"))
            keyfile \(pki.path("server.key"))
            require_certificate true
            use_identity_as_username true
            listener \(self.plainPort) 127.0.0.1
            allow_anonymous true
            """
        try configuration.write(toFile: pki.path("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    public func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", self.pki.path("mosquitto.conf")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        if try await loopbackPortAccepts(self.port) { return }
        await self.stop()
        throw TestSetupError("mosquitto did not start")
    }

    deinit {
        // A test that failed midway still leaves no mosquitto behind.
        if let process = self.process.withLock({ $0 }), process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    public func stop() async {
        guard let process = self.process.withLock({ $0 }) else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await ConduitExecutable.waitForExit(process)
    }

    /// Publishes as the test CA's gateway client would.
    public func publish(_ topic: String, _ message: String) async throws {
        let result = try await Subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(self.port)", "--cafile", self.pki.path("ca.pem"), "--cert", self.pki.path("gateway.pem"),
             "--key", self.pki.path("gateway.key"), "-i", "test-publisher", "-q", "1", "-t", topic, "-m", message], timeout: 10
        )
        guard result.status == 0 else { throw TestSetupError("mosquitto_pub failed: \(result.stderr)") }
    }
}

/// Waits (5 s at most) until something accepts TCP connections on the loopback port.
func loopbackPortAccepts(_ port: Int) async throws -> Bool {
    for _ in 0..<100 {
        if (try? await Subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(port)"], timeout: 2))?.status == 0 { return true }
        try await Task.sleep(for: .milliseconds(50))
    }
    return false
}
