import ConduitTesting
import Foundation
import Logging
import MQTT
import MQTTBroker
import Synchronization

/// A broker on a free loopback port for one test, stopped when the test's body returns.
func withBroker<R>(
    _ configuration: MQTTBrokerConfiguration = .init(port: 0),
    authenticator: any MQTTAuthenticator = MQTTAllowAll(), authorizer: any MQTTAuthorizer = MQTTAllowAll(),
    observer: (any MQTTPublishObserver)? = nil,
    _ body: (MQTTBroker, Int) async throws -> R
) async throws -> R {
    var configuration = configuration
    configuration.port = 0
    let broker = MQTTBroker(
        configuration: configuration, authenticator: authenticator, authorizer: authorizer, observer: observer, logger: .quiet
    )
    let port = try await broker.start()
    do {
        let result = try await body(broker, port)
        await broker.shutdown()
        return result
    } catch {
        await broker.shutdown()
        throw error
    }
}

/// `mosquitto_sub` waiting for `count` messages; `start` returns once its SUBACK has arrived.
final class Subscriber: Sendable {
    let process: Process
    private let buffer = Mutex("")

    private init(process: Process) {
        self.process = process
    }

    static func start(port: Int, version: String, topic: String, count: Int, qos: Int = 0, extra: [String] = []) async throws -> Subscriber {
        let (process, output) = try Subprocess.start(
            ["timeout", "--signal=KILL", "20", "stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", "\(port)", "-V", version, "-t", topic,
             "-C", "\(count)", "-q", "\(qos)", "-v"] + extra
        )
        let subscriber = Subscriber(process: process)
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { subscriber.buffer.withLock { $0 += String(decoding: data, as: UTF8.self) } }
        }
        for _ in 0..<200 {
            if subscriber.buffer.withLock({ $0.contains("received SUBACK") }) { return subscriber }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestSetupError("mosquitto_sub never got its SUBACK:\n\(subscriber.buffer.withLock { $0 })")
    }

    /// The messages it printed (`topic payload`), once it exits.
    func lines() async -> [String] {
        await ConduitExecutable.waitForExit(self.process)
        try? await Task.sleep(for: .milliseconds(50))
        return self.buffer.withLock { $0 }.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("Client ") && !$0.hasPrefix("Subscribed (")
        }
    }
}
