import ConduitTesting
import Foundation
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
            "keep_alive", "malformed",
        ]
    )
    func scenario(name: String) async throws {
        try await withBroker { _, port in
            let result = try await Subprocess.run(["python3", Self.script, name, "\(port)"], timeout: 40)
            #expect(result.status == 0 && result.stdout.hasSuffix("OK\n"), "\(name):\n\(result.stdout)\(result.stderr)")
        }
    }
}
