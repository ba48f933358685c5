import AWS
import ConduitTesting
import Foundation
import Hub
import Store
import Testing

/// Outbound requests go only to AWS, or to what the operator listed: an attacker who is a tenant
/// admin cannot point Conduit at a host of their choosing.
@Suite("Integration endpoints: AWS's own, or the operator's allowlist")
struct EndpointAllowlistTests {
    @Test("AWS IoT's hosts for the region are accepted; look-alikes, other ports and tricks are not")
    func awsHosts() throws {
        let none = AWSEndpointAllowlist()
        for url in [
            "https://iot.eu-west-1.amazonaws.com", "https://iot.eu-west-1.amazonaws.com/", "https://iot-fips.us-east-1.amazonaws.com",
            "https://a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:443", "https://data.iot-fips.us-east-1.amazonaws.com",
            "https://vpce-0123-abcd.iot.us-east-1.vpce.amazonaws.com", "HTTPS://IOT.EU-WEST-1.AMAZONAWS.COM",
        ] {
            let region = url.lowercased().contains("eu-west-1") ? "eu-west-1" : "us-east-1"
            #expect(throws: Never.self, "\(url)") { try AWSEndpointRules.httpEndpoint(url, region: region, allowlist: none) }
        }
        #expect(throws: Never.self) { try AWSEndpointRules.httpEndpoint("https://iot.cn-north-1.amazonaws.com.cn", region: "cn-north-1", allowlist: none) }
        // China's data endpoints have two labels before .iot.
        #expect(throws: Never.self) { try AWSEndpointRules.mqttEndpoint(host: "a1b2c3.ats.iot.cn-north-1.amazonaws.com.cn", port: 8883, region: "cn-north-1", allowlist: none) }
        // The URL is rebuilt from what was checked, without the scheme's own port (the Host AWS signs is the bare host).
        #expect(try AWSEndpointRules.httpEndpoint("HTTPS://IOT.EU-WEST-1.AMAZONAWS.COM:443/", region: "eu-west-1", allowlist: none).absoluteString == "https://iot.eu-west-1.amazonaws.com")
        let refused = [
            "http://iot.eu-west-1.amazonaws.com",  // not HTTPS
            "https://iot.eu-west-1.amazonaws.com:8443",  // another port
            "https://iot.us-east-1.amazonaws.com",  // another region than the integration's
            "https://iot.eu-west-1.amazonaws.com.attacker.example",  // a look-alike
            "https://attacker.example#.iot.eu-west-1.amazonaws.com",  // a fragment
            "https://iot.eu-west-1.amazonaws.com@attacker.example",  // user info
            "https://attacker.example/?.iot.eu-west-1.amazonaws.com",  // a query
            "https://iot.eu-west-1.amazonaws.com/%2e%2e",  // percent-escapes
            "https://iot.eu-west-1.amazonaws.com/prefix",  // a path
            "https://a.b.iot.eu-west-1.amazonaws.com",  // two labels outside a VPC endpoint
            "https://s3.eu-west-1.amazonaws.com",  // AWS, but not AWS IoT
            "https://169.254.169.254", "https://[::1]:443", "file:///etc/passwd", "iot.eu-west-1.amazonaws.com",
        ]
        for url in refused {
            #expect(throws: AWSEndpointRules.Refusal.self, "\(url)") { try AWSEndpointRules.httpEndpoint(url, region: "eu-west-1", allowlist: none) }
        }
        // The MQTT data endpoint: an account's data host on 8883 or 443, never the control plane.
        #expect(throws: Never.self) { try AWSEndpointRules.mqttEndpoint(host: "a1-ats.iot.eu-west-1.amazonaws.com", port: 8883, region: "eu-west-1", allowlist: none) }
        #expect(throws: Never.self) { try AWSEndpointRules.mqttEndpoint(host: "a1-ats.iot.eu-west-1.amazonaws.com", port: 443, region: "eu-west-1", allowlist: none) }
        for (host, port) in [("a1-ats.iot.eu-west-1.amazonaws.com", 1883), ("iot.eu-west-1.amazonaws.com", 8883), ("127.0.0.1", 8883), ("localhost", 8883)] {
            #expect(throws: AWSEndpointRules.Refusal.self, "\(host):\(port)") {
                try AWSEndpointRules.mqttEndpoint(host: host, port: port, region: "eu-west-1", allowlist: none)
            }
        }
        // The operator's entries are exact: scheme, host and port.
        let listed = try AWSEndpointAllowlist(parsing: "http://127.0.0.1:5000, mqtts://localhost:8884")
        #expect(try AWSEndpointRules.httpEndpoint("http://127.0.0.1:5000/", region: "eu-west-1", allowlist: listed).absoluteString == "http://127.0.0.1:5000")
        for url in ["https://127.0.0.1:5000", "http://127.0.0.1:5001", "http://localhost:5000", "http://127.0.0.1:5000/%23", "http://127.0.0.1:5000/x"] {
            #expect(throws: AWSEndpointRules.Refusal.self, "\(url)") { try AWSEndpointRules.httpEndpoint(url, region: "eu-west-1", allowlist: listed) }
        }
        #expect(throws: Never.self) { try AWSEndpointRules.mqttEndpoint(host: "localhost", port: 8884, region: "eu-west-1", allowlist: listed) }
        #expect(throws: AWSEndpointRules.Refusal.self) { try AWSEndpointRules.mqttEndpoint(host: "127.0.0.1", port: 8884, region: "eu-west-1", allowlist: listed) }
        // An entry must be whole.
        for entry in ["http://127.0.0.1", "127.0.0.1:5000", "http://127.0.0.1:5000/path", "ftp://127.0.0.1:21", "http://u@127.0.0.1:5000"] {
            #expect(throws: AWSEndpointRules.Refusal.self, "\(entry)") { try AWSEndpointAllowlist(parsing: entry) }
        }
    }

    @Test("a tenant admin cannot point an integration at a host the operator did not list: refused before any connection")
    func refusedBeforeConnecting() async throws {
        let listener = holdLoopbackPort()
        defer { close(listener.socket) }
        let target = "http://127.0.0.1:\(listener.port)"
        let account = MotoPeer.Account()
        // The motos are listed; the listener is not.
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let attempts: [([String: Any], String)] = [
                (["endpointUrl": target], "endpointUrl: \(target) is not AWS IoT's for region us-east-1"),
                (["endpointUrl": "\(target)/%23"], "endpointUrl: must not contain percent-escapes"),
                (["endpointUrl": try MotoPeer.url().absoluteString + "/topics%3F"], "endpointUrl: must not contain percent-escapes"),
                (["endpointUrl": "http://user@127.0.0.1:\(listener.port)"], "endpointUrl: must not contain user info"),
                (["mqttEndpoint": "127.0.0.1:\(listener.port)"], "mqttEndpoint: 127.0.0.1:\(listener.port) is not an AWS IoT data endpoint for region us-east-1"),
            ]
            for (fields, message) in attempts {
                let reply = try await api.call(.post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, fields))
                #expect(reply.status == .badRequest, "\(fields)")
                #expect(reply.errorMessage?.hasPrefix(message) == true, "\(reply.errorMessage ?? reply.text)")
            }
            #expect(try await api.call(.get, "/v1/integrations", token: api.admin).items.isEmpty)
            // An allowlisted moto works.
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account))
            #expect(created.status == .created, "\(created.text)")
            // Changing a saved integration is held to the same rule.
            let id = try #require(created.json?["id"] as? String)
            let moved = try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"mqttEndpoint": "127.0.0.1:\#(listener.port)"}"#)
            #expect(moved.status == .badRequest)
            #expect(moved.errorMessage?.hasPrefix("mqttEndpoint: 127.0.0.1:\(listener.port) is not an AWS IoT data endpoint") == true)
        }
        #expect(connectionsMade(to: listener.socket) == 0)

        // The same listener, once the operator lists it, is reached: the refusals above were the rule's.
        var listed = try MotoPeer.environment()
        try listed.endpointAllowlist.add(target)
        try await APIHarness.run(.sqlite, aws: listed) { api in
            let reply = try await api.call(.post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, ["endpointUrl": target]))
            #expect(reply.status == .badRequest)
            #expect(reply.errorMessage?.hasPrefix("endpointUrl: cannot reach AWS IoT") == true, "\(reply.errorMessage ?? reply.text)")
        }
        #expect(connectionsMade(to: listener.socket) > 0)
    }

    @Test("moto itself, reachable but not listed by this installation's operator, is refused")
    func reachableButNotListed() async throws {
        var unlisted = try MotoPeer.environment()
        unlisted.endpointAllowlist = AWSEndpointAllowlist()
        try await APIHarness.run(.sqlite, aws: unlisted) { api in
            let moto = try MotoPeer.url()
            let reply = try await api.call(.post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: MotoPeer.Account()))
            #expect(reply.status == .badRequest)
            #expect(reply.errorMessage == "endpointUrl: http://127.0.0.1:\(moto.port!) is not AWS IoT's for region us-east-1 (https://iot.us-east-1.amazonaws.com, its -ats data endpoint, FIPS or VPC endpoints, on port 443) and is not in the operator's --aws-endpoint-allowlist")
        }
    }

    @Test("a stored integration is checked again when used: one saved before the operator narrowed the list reaches nothing", arguments: TestDatabase.allCases)
    func checkedWhenUsed(database: TestDatabase) async throws {
        try await database.withStore { store in
            let allowed = Hub(store: store, logger: .quiet, aws: try MotoPeer.environment())
            let tenant = try await allowed.access.ensureDefaultTenant()
            let admin = Principal(tenantID: tenant.id, role: .admin, actor: "test")
            var draft = IntegrationDraft()
            draft.name = "prod"
            draft.region = "us-east-1"
            draft.endpointURL = .some(try MotoPeer.url().absoluteString)
            draft.credentials = .init(roleARN: MotoPeer.Account().roleARN, externalID: "conduit-test")
            draft.policy = .init(perThing: true)
            draft.bind = .init(labels: ["fleet"])
            let integration = try await allowed.integrations.create(draft, by: admin)
            #expect(try await allowed.integrations.reconcile(integration.id, by: admin).isEmpty)

            var narrowed = try MotoPeer.environment()
            narrowed.endpointAllowlist = AWSEndpointAllowlist()
            let now = Hub(store: store, logger: .quiet, aws: narrowed)
            let error = await #expect(throws: HubError.self) { try await now.integrations.reconcile(integration.id, by: admin) }
            #expect(error?.message.hasPrefix("endpointUrl: http://127.0.0.1:") == true, "\(String(describing: error))")
        }
    }
}
