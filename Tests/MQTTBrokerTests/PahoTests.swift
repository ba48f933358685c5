import ConduitTesting
import Foundation
import MQTTBroker
import NIOCore
import Synchronization
import Testing

/// The paho-mqtt scenarios in Peers/paho_scenarios.py, each against a broker of its own.
@Suite("Interop: paho-mqtt")
struct PahoTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/paho_scenarios.py").path

    @Test(
        "paho-mqtt scenario",
        arguments: [
            "persistent_session_v311", "persistent_session_v5", "qos2_exactly_once", "wills", "will_delay", "retained",
            "topic_aliases", "shared_subscriptions", "v5_properties", "message_expiry", "flow_control", "takeover",
            "keep_alive", "malformed", "garbage", "slow_subscriber", "qos2_store_retry", "quota_refusal",
            "outbound_topic_aliases", "limited_server",
        ]
    )
    func scenario(name: String) async throws {
        var configuration = MQTTBrokerConfiguration()
        configuration.connectTimeout = .seconds(2)
        // A short queue, so that slow_subscriber shows flow control rather than a long buffer.
        configuration.maximumQueuedMessages = 50
        if name == "limited_server" {
            configuration.maximumKeepAlive = 10
            configuration.maximumQoS = .atLeastOnce
            configuration.retainAvailable = false
            configuration.wildcardSubscriptionAvailable = false
            configuration.sharedSubscriptionAvailable = false
            configuration.subscriptionIdentifiersAvailable = false
        }
        let observer = FailOnceObserver()
        try await withBroker(configuration, observer: observer) { broker, port in
            // A guard against a hung scenario, well past the scenarios' own waits, so that a scenario
            // slowed by a loaded machine reports its own failure (or passes) instead of being cut off.
            let result = try await Subprocess.run(["python3", Self.script, name, "\(port)"], timeout: 600)
            #expect(result.status == 0 && result.stdout.hasSuffix("OK\n"), "\(name):\n\(result.stdout)\(result.stderr)")
            // Whatever the scenario did, nothing is left behind once its clients are gone:
            // connections half-sent or refused are closed (at the latest by the connect timeout).
            var open = broker.openConnectionCount
            for _ in 0..<100 where open > 0 {
                try await Task.sleep(for: .milliseconds(50))
                open = broker.openConnectionCount
            }
            #expect(open == 0, "\(name) left \(open) connections open")
            if name == "qos2_store_retry" {
                // Stored on the second try, and only then acknowledged.
                #expect(observer.attempts(for: "fail-once:important") == 2)
            }
        }
    }
}

/// An observer that fails the first time it sees a payload starting with "fail-once", as a
/// store that is briefly down would, and refuses the first of one starting with "refuse-once",
/// as a full uplink backlog does.
final class FailOnceObserver: MQTTPublishObserver {
    private let seen = Mutex<[String: Int]>([:])

    struct StoreDown: Error {}

    func messagePublished(
        principal: String, clientIdentifier: String, message: MQTTBrokerMessage, on eventLoop: any EventLoop
    ) -> EventLoopFuture<MQTTPublishVerdict> {
        let payload = String(buffer: message.payload)
        let attempt = self.seen.withLock { seen -> Int in
            seen[payload, default: 0] += 1
            return seen[payload]!
        }
        if payload.hasPrefix("fail-once") && attempt == 1 { return eventLoop.makeFailedFuture(StoreDown()) }
        if payload.hasPrefix("refuse-once") && attempt == 1 { return eventLoop.makeSucceededFuture(.refused(.quotaExceeded)) }
        return eventLoop.makeSucceededFuture(.accepted)
    }

    func attempts(for payload: String) -> Int {
        self.seen.withLock { $0[payload] ?? 0 }
    }
}
