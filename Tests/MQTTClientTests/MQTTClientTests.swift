import Backoff
import ConduitTesting
import Foundation
import MQTT
import MQTTClient
import NIOCore
import Synchronization
import Testing

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
                subscriptions: ["conduit/devices/+/down"], keepAlive: 5, reconnectBackoff: Backoff(first: 0.1, maximum: 0.5)
            ),
            logger: .quiet
        )
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
        try await waitUntil("the subscription", seconds: 10, interval: .milliseconds(50)) { client.isConnected }
        for word in ["one", "two", "three"] { try await server.publish("conduit/devices/d1/down", word) }
        try await server.publish("elsewhere/d1/down", "not subscribed")
        try await waitUntil("three messages", seconds: 10, interval: .milliseconds(50)) { received.withLock { $0.count } >= 3 }
        #expect(received.withLock { $0 } == ["conduit/devices/d1/down one", "conduit/devices/d1/down two", "conduit/devices/d1/down three"])

        await server.stop()
        try await waitUntil("the client to notice", seconds: 10, interval: .milliseconds(50)) { !client.isConnected }
        try await server.start()
        try await waitUntil("the client to come back", seconds: 10, interval: .milliseconds(50)) { client.isConnected && client.connectionCount == 2 }
        try await server.publish("conduit/devices/d2/down", "four")
        try await waitUntil("the fourth message", seconds: 10, interval: .milliseconds(50)) { received.withLock { $0.count } >= 4 }
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
