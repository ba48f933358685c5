import ConduitTesting
import Foundation
import Testing

/// A tenant admin's uplink template cannot make Conduit write a per-thing policy that lets one
/// device publish on another device's topics.
@Suite("Per-thing policies grant what they say")
struct PolicyScopeTests {
    @Test("a template that would widen a per-thing policy is refused with the reason; with the operator's own policy it is allowed")
    func wideningTemplatesRefused() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            let suffix = ", or the policy Conduit makes (per thing or shared) would let one thing publish on another's topics; use an existing policy (policy.name) for such a template"
            let cases: [(String, String)] = [
                ("fleet/{deviceName}/up", "uplinkTopic: must not use {deviceName} (names are neither unique nor fixed)"),
                ("conduit/pump{deviceId}/up", "uplinkTopic: must have {deviceId} once, as a whole topic level (such as conduit/{deviceId}/up)"),
                ("conduit/{deviceId}{subtopic}", "uplinkTopic: must have {deviceId} once, as a whole topic level (such as conduit/{deviceId}/up)"),
                ("conduit/{subtopic}/up", "uplinkTopic: must have {deviceId} once, as a whole topic level (such as conduit/{deviceId}/up)"),
                ("conduit/{deviceId}/{deviceId}", "uplinkTopic: must have {deviceId} once, as a whole topic level (such as conduit/{deviceId}/up)"),
                (
                    "conduit/{subtopic}/{deviceId}",
                    "uplinkTopic: may have {subtopic} only as the whole last topic level, after {deviceId}'s (such as conduit/{deviceId}/{subtopic})"
                ),
                ("conduit/*/{deviceId}", "uplinkTopic: must not contain '*', which an AWS IoT policy reads as a wildcard or variable"),
                ("conduit/{deviceId}/a?", "uplinkTopic: must not contain '?', which an AWS IoT policy reads as a wildcard or variable"),
            ]
            for (template, message) in cases {
                let reply = try await api.call(
                    .post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, ["uplinkTopic": template])
                )
                #expect(reply.status == .badRequest, "\(template)")
                #expect(reply.errorMessage == message + suffix, "\(template)")
            }
            // The downlink prefix goes into the gateway's policy, which Conduit always makes.
            let prefix = try await api.call(
                .post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, ["downlinkPrefix": "down/*"])
            )
            #expect(prefix.status == .badRequest)
            #expect(prefix.errorMessage?.hasPrefix("downlinkPrefix: must not contain '*'") == true, "\(prefix.text)")
            #expect(try await api.call(.get, "/v1/integrations", token: api.admin).items.isEmpty)

            // What a per-thing policy can scope is taken.
            let scoped = try await api.call(
                .post, "/v1/integrations", token: api.admin,
                json: try IntegrationTests.body(account: account, ["uplinkTopic": "fleet/{deviceId}/{subtopic}"])
            )
            #expect(scoped.status == .created, "\(scoped.text)")
            let id = try #require(scoped.json?["id"] as? String)
            // Changing to a widening template is refused as well: against the integration's stored
            // per-thing policy, a conflict (the request alone is not wrong); with one given, a 400.
            let widened = try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"uplinkTopic": "fleet/{deviceName}/x"}"#)
            #expect(widened.status == .conflict)
            #expect(widened.errorCode == "uplink_topic_out_of_scope")
            #expect(widened.errorMessage?.hasPrefix("uplinkTopic: must not use {deviceName}") == true, "\(widened.text)")
            let both = try await api.call(
                .patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"uplinkTopic": "fleet/{deviceName}/x", "policy": {"perThing": true}}"#
            )
            #expect(both.status == .badRequest)
            // With a policy of the operator's, Conduit writes no policy: the template is the operator's call.
            let named = try await api.call(
                .post, "/v1/integrations", token: api.admin,
                json: try IntegrationTests.body(
                    account: MotoPeer.Account(), ["name": "named", "uplinkTopic": "fleet/{deviceName}/up", "policy": ["name": "fleet-policy"]]
                )
            )
            #expect(named.status == .created, "\(named.text)")
        }
    }
}
