import ConduitTesting
import Foundation
import MQTT
import MQTTClient
import NIOCore
import Synchronization
import Testing

/// A CA, a server certificate for localhost and 127.0.0.1, and client certificates, made by openssl.
struct TestPKI {
    let directory: URL

    func path(_ name: String) -> String { self.directory.appendingPathComponent(name).path }
    func read(_ name: String) throws -> String { try String(contentsOfFile: self.path(name), encoding: .utf8) }

    static func make(in directory: URL) async throws -> TestPKI {
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
final class TLSMosquitto: Sendable {
    let port = freeLoopbackPort()
    let pki: TestPKI
    private let process = Mutex<Process?>(nil)

    init(pki: TestPKI) throws {
        self.pki = pki
        let configuration = """
            user root
            listener \(self.port) 127.0.0.1
            cafile \(pki.path("ca.pem"))
            certfile \(pki.path("server.pem"))
            keyfile \(pki.path("server.key"))
            require_certificate true
            use_identity_as_username true
            allow_anonymous true
            """
        try configuration.write(toFile: pki.path("mosquitto.conf"), atomically: true, encoding: .utf8)
    }

    func start() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/mosquitto")
        process.arguments = ["-c", self.pki.path("mosquitto.conf")]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process.withLock { $0 = process }
        for _ in 0..<100 {
            if (try? await Subprocess.run(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\(self.port)"], timeout: 2))?.status == 0 { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        await self.stop()
        throw TestSetupError("mosquitto did not start")
    }

    deinit {
        // A test that failed midway still leaves no mosquitto behind.
        if let process = self.process.withLock({ $0 }), process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    func stop() async {
        guard let process = self.process.withLock({ $0 }) else { return }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        await ConduitExecutable.waitForExit(process)
    }

    /// Publishes as the test CA's gateway client would.
    func publish(_ topic: String, _ message: String) async throws {
        let result = try await Subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(self.port)", "--cafile", self.pki.path("ca.pem"), "--cert", self.pki.path("gateway.pem"),
             "--key", self.pki.path("gateway.key"), "-i", "test-publisher", "-q", "1", "-t", topic, "-m", message], timeout: 10
        )
        guard result.status == 0 else { throw TestSetupError("mosquitto_pub failed: \(result.stderr)") }
    }
}

@Suite("MQTT client, against mosquitto over mutual TLS")
struct MQTTClientTests {
    static func client(_ pki: TestPKI, port: Int, certificate: String = "gateway", trust: String = "ca.pem") throws -> MQTTClient {
        MQTTClient(
            configuration: MQTTClientConfiguration(
                host: "127.0.0.1", port: port, clientIdentifier: "conduit-gateway-\(certificate)",
                tls: .init(
                    certificateChainPEM: try pki.read("\(certificate).pem"), privateKeyPEM: try pki.read("\(certificate).key"),
                    trustRootsPEM: try pki.read(trust), serverName: "localhost"
                ),
                subscriptions: ["conduit/devices/+/down"], keepAlive: 5, reconnectDelay: (0.1, 0.5)
            ),
            logger: .quiet
        )
    }

    static func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(50)) }
        guard condition() else { throw TestSetupError("timed out waiting for \(what)") }
    }

    @Test("it subscribes, receives in order, and after the server goes away connects and subscribes again")
    func receivesAndReconnects() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let server = try TLSMosquitto(pki: pki)
        try await server.start()
        let client = try Self.client(pki, port: server.port)
        let received = Mutex<[String]>([])
        let running = Task {
            await client.run { message in
                received.withLock { $0.append("\(message.topic) \(String(buffer: message.payload))") }
            }
        }
        try await Self.waitUntil("the subscription") { client.isConnected }
        for word in ["one", "two", "three"] { try await server.publish("conduit/devices/d1/down", word) }
        try await server.publish("elsewhere/d1/down", "not subscribed")
        try await Self.waitUntil("three messages") { received.withLock { $0.count } >= 3 }
        #expect(received.withLock { $0 } == ["conduit/devices/d1/down one", "conduit/devices/d1/down two", "conduit/devices/d1/down three"])

        await server.stop()
        try await Self.waitUntil("the client to notice") { !client.isConnected }
        try await server.start()
        try await Self.waitUntil("the client to come back") { client.isConnected && client.connectionCount == 2 }
        try await server.publish("conduit/devices/d2/down", "four")
        try await Self.waitUntil("the fourth message") { received.withLock { $0.count } >= 4 }
        #expect(received.withLock { $0.last } == "conduit/devices/d2/down four")
        running.cancel()
        await running.value
        await server.stop()
    }

    @Test("a certificate of another CA is refused by the server, and a server the client does not trust is refused by the client")
    func refusals() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let server = try TLSMosquitto(pki: pki)
        try await server.start()
        for client in [try Self.client(pki, port: server.port, certificate: "stranger"), try Self.client(pki, port: server.port, trust: "other-ca.pem")] {
            let running = Task { await client.run { _ in } }
            try await Task.sleep(for: .milliseconds(1500))
            #expect(client.connectionCount == 0)
            running.cancel()
            await running.value
        }
        await server.stop()
    }
}
