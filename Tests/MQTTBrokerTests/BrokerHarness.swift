import ConduitTesting
import Foundation
import Logging
import MQTT
import MQTTBroker
import NIOCore
import NIOPosix

/// A broker on a free loopback port for one test, stopped when the test's body returns.
func withBroker<R>(
    _ configuration: MQTTBrokerConfiguration = .init(port: 0),
    authenticator: any MQTTAuthenticator = MQTTAllowAll(), authorizer: any MQTTAuthorizer = MQTTAllowAll(),
    observer: (any MQTTPublishObserver)? = nil, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    _ body: (MQTTBroker, Int) async throws -> R
) async throws -> R {
    var configuration = configuration
    configuration.port = 0
    let broker = MQTTBroker(
        configuration: configuration, authenticator: authenticator, authorizer: authorizer, observer: observer, logger: .quiet,
        eventLoopGroup: eventLoopGroup
    )
    guard let port = try await broker.start() else { throw TestSetupError("the broker has no TCP listener") }
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
/// Its output goes to a file, not a pipe: a pipe's last bytes can still be in flight when the
/// process has exited, and its end of file waits for every process that inherited it.
final class Subscriber: Sendable {
    let process: Process
    let output: URL

    private init(process: Process, output: URL) {
        self.process = process
        self.output = output
    }

    private var text: String { (try? String(contentsOf: self.output, encoding: .utf8)) ?? "" }

    /// `timeout`: seconds before it is killed, whatever it received.
    static func start(
        port: Int, version: String, topic: String, count: Int, qos: Int = 0, extra: [String] = [], timeout: Int = 60
    ) async throws -> Subscriber {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mosquitto-sub-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["timeout", "--signal=KILL", "\(timeout)", "stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", "\(port)",
                             "-V", version, "-t", topic, "-C", "\(count)", "-q", "\(qos)", "-v"] + extra
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
        let subscriber = Subscriber(process: process, output: output)
        for _ in 0..<400 {
            if subscriber.text.contains("received SUBACK") { return subscriber }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw TestSetupError("mosquitto_sub never got its SUBACK:\n\(subscriber.text)")
    }

    /// The messages it printed (`topic payload`), once it exits.
    func lines() async -> [String] {
        await ConduitExecutable.waitForExit(self.process)
        defer { try? FileManager.default.removeItem(at: self.output) }
        return self.text.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("Client ") && !$0.hasPrefix("Subscribed (")
        }
    }
}
