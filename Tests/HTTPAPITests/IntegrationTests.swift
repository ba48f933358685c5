import ConduitTesting
import Foundation
import HTTPAPI
import Hub
import Hummingbird
import HummingbirdTesting
import SQLKit
import Store
import Testing

@Suite("Integrations API, against moto")
struct IntegrationTests {
    /// A create body into a fresh moto account, with `extra` fields merged over it.
    static func body(account: MotoPeer.Account, _ extra: [String: Any] = [:]) throws -> String {
        var fields: [String: Any] = [
            "name": "prod", "type": "aws-iot-core", "region": "us-east-1", "endpointUrl": try MotoPeer.url().absoluteString,
            "credentials": ["roleArn": account.roleARN, "externalId": "conduit-test"], "policy": ["perThing": true],
            "thingGroup": "conduit-prod", "bind": ["labels": ["fleet"]],
        ]
        fields.merge(extra) { _, new in new }
        return String(decoding: try JSONSerialization.data(withJSONObject: fields.filter { !($0.value is NSNull) }), as: UTF8.self)
    }

    @Test("create, read, change and delete an integration; only admins; secrets never shown", arguments: TestDatabase.allCases)
    func crud(database: TestDatabase) async throws {
        try await APIHarness.run(database, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            for token in [api.operator, api.reader] {
                let refused = try await api.call(.post, "/v1/integrations", token: token, json: try Self.body(account: account))
                #expect(refused.status == .forbidden)
            }
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: account))
            #expect(created.status == .created, "\(created.text)")
            let json = try #require(created.json)
            let id = try #require(json["id"] as? String)
            #expect(created.headers[.location] == "/v1/integrations/\(id)")
            #expect((json["credentials"] as? [String: String]) == ["roleArn": account.roleARN, "externalId": "conduit-test"])
            #expect((json["dataEndpoint"] as? String)?.hasSuffix("-ats.iot.us-east-1.amazonaws.com") == true)
            #expect(json["uplinkTopic"] as? String == "conduit/{deviceId}/up")
            #expect(json["downlinkPrefix"] as? String == "conduit/devices")
            #expect(json["payloadFormat"] as? String == "raw")
            #expect((json["policy"] as? [String: Bool]) == ["perThing": true])
            #expect(json["status"] as? String == "active")

            let duplicate = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: account))
            #expect(duplicate.status == .conflict)
            #expect(duplicate.errorCode == "integration_exists")

            // An access key: sealed at rest, "<hidden>" in every answer.
            let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            let keyed = try await api.call(
                .patch, "/v1/integrations/\(id)", token: api.admin,
                json: #"{"credentials": {"accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "\#(secret)"}, "bind": {"all": true}}"#
            )
            #expect(keyed.status == .ok, "\(keyed.text)")
            #expect((keyed.json?["credentials"] as? [String: String]) == ["accessKeyId": "AKIAIOSFODNN7EXAMPLE", "secretAccessKey": "<hidden>"])
            #expect((keyed.json?["bind"] as? [String: Bool]) == ["all": true])
            let listed = try await api.call(.get, "/v1/integrations", token: api.admin)
            #expect(!listed.text.contains(secret))
            #expect(listed.items.map { $0["id"] as? String } == [id])
            let stored = try await api.hub.store.session.sql.raw("SELECT credentials FROM integrations").all()
            let raw = try stored.map { try $0.decode(column: "credentials", as: String.self) }.joined()
            #expect(!raw.contains(secret))
            #expect(raw.contains("v2:"))

            // One shared policy instead of one per thing: the answer says so, and so does a read.
            let shared = try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"policy": {"shared": true}}"#)
            #expect(shared.status == .ok, "\(shared.text)")
            #expect((shared.json?["policy"] as? [String: Bool]) == ["shared": true])
            #expect((try await api.call(.get, "/v1/integrations/\(id)", token: api.admin).json?["policy"] as? [String: Bool]) == ["shared": true])

            // Tenants do not see each other's integrations.
            #expect(try await api.call(.get, "/v1/integrations/\(id)", token: api.otherTenantAdmin).status == .notFound)
            #expect(try await api.call(.get, "/v1/integrations", token: api.otherTenantAdmin).items.isEmpty)
            #expect(try await api.call(.get, "/v1/integrations/\(id)", token: api.reader).status == .forbidden)

            let deleted = try await api.call(.delete, "/v1/integrations/\(id)", token: api.admin)
            #expect(deleted.status == .accepted)
            #expect(deleted.json?["status"] as? String == "deleting")
            try await Provisioner(hub: api.hub).drain()
            #expect(try await api.call(.get, "/v1/integrations/\(id)", token: api.admin).status == .notFound)
        }
    }

    @Test("bad input is refused naming the field and the rule")
    func badInput() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let (certificate, key, otherKey, ca) = (try pki.read("gateway.pem"), try pki.read("gateway.key"), try pki.read("stranger.key"), try pki.read("ca.pem"))
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            let cases: [([String: Any], String)] = [
                (["mqttEndpoint": "localhost"], "mqttEndpoint: must be host:port, such as a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883"),
                (["mqttEndpoint": "localhost:99999"], "mqttEndpoint: must be host:port, such as a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883"),
                (["mqttEndpoint": "bad host:8883"], "mqttEndpoint: must be host:port, such as a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883"),
                (["mqttTrustRoots": "no certificate here"], "mqttTrustRoots: must hold at least one certificate (PEM)"),
                (["gateway": "x"], "gateway: must be an object, not a string"),
                (["gateway": ["certificatePem": certificate]], "gateway.privateKey: is required"),
                (["gateway": ["privateKey": key]], "gateway.certificatePem: is required"),
                (["gateway": ["certificatePem": certificate, "privateKey": otherKey]], "gateway.privateKey: is not the private key of gateway.certificatePem"),
                (
                    ["gateway": ["certificatePem": certificate, "privateKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"]],
                    "gateway.privateKey: must be an EC or RSA private key in PEM (PKCS#8, SEC1 or PKCS#1)"
                ),
                (["gateway": ["certificatePem": "x", "privateKey": key]], "gateway.certificatePem: must be an X.509 certificate in PEM (-----BEGIN CERTIFICATE-----)"),
                (
                    ["gateway": ["certificatePem": certificate + ca, "privateKey": key]],
                    "gateway.certificatePem: must hold exactly one certificate (AWS registers the gateway's own, without its CA)"
                ),
                (["gateway": ["certificatePem": certificate, "privateKey": key, "chain": ca]], "gateway.chain: unknown field; allowed: certificatePem, privateKey"),
                (["thingGroup": "my group"], "thingGroup: must match [a-zA-Z0-9_-]{1,128}"),
                (["thingGroup": String(repeating: "g", count: 129)], "thingGroup: must match [a-zA-Z0-9_-]{1,128}"),
                (["thingGroup": "a:b"], "thingGroup: must match [a-zA-Z0-9_-]{1,128}"),
                (["uplinkTopic": "conduit/{device}/up"], "uplinkTopic: unknown placeholder {device}; known: {deviceId}, {deviceName}, {subtopic}"),
                (["uplinkTopic": "conduit/+/up"], "uplinkTopic: must not contain the MQTT wildcards + or #"),
                (["uplinkTopic": "conduit/{deviceId}/#"], "uplinkTopic: must not contain the MQTT wildcards + or #"),
                (["uplinkTopic": "$aws/things/{deviceId}"], "uplinkTopic: must not start with $ (reserved by AWS IoT)"),
                (["uplinkTopic": "a/b/c/d/e/f/g/h/{deviceId}"], "uplinkTopic: must have at most 7 slashes (AWS IoT allows 8 topic levels)"),
                (["uplinkTopic": "conduit/{deviceId/up"], "uplinkTopic: has a '{' without its '}'"),
                (["uplinkTopic": ""], "uplinkTopic: must not be empty"),
                (["downlinkPrefix": "down/"], "downlinkPrefix: must not end with '/'"),
                (["downlinkPrefix": "a/{deviceId}"], "downlinkPrefix: takes no placeholders"),
                (["payloadFormat": "json"], "payloadFormat: must be raw or envelope"),
                (["region": "Europe"], "region: must be an AWS region such as eu-west-1"),
                (["type": "azure"], "type: must be \"aws-iot-core\""),
                (["endpointUrl": "ftp://x"], "endpointUrl: must use https or http, not 'ftp'"),
                (["credentials": ["roleArn": "arn:aws:iam::12:role/x"]], "credentials.roleArn: must be an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME"),
                (["credentials": ["accessKeyId": "AKIAIOSFODNN7EXAMPLE"]], "credentials.secretAccessKey: is required with accessKeyId"),
                (["credentials": ["source": "env"]], "credentials.source: must be \"default\" (Conduit's own AWS credentials)"),
                (
                    ["credentials": ["source": "default", "roleArn": account.roleARN]],
                    "credentials: give one of {accessKeyId, secretAccessKey}, {roleArn, externalId} or {source: \"default\"}"
                ),
                (["credentials": ["token": "x"]], "credentials.token: unknown field; allowed: accessKeyId, externalId, roleArn, secretAccessKey, source"),
                (["policy": ["name": "a b"]], "policy.name: must match [\\w+=,.@-]{1,128} (an AWS IoT policy name)"),
                (["policy": ["name": "p", "perThing": true]], "policy: give one of {name: an existing AWS IoT policy}, {perThing: true} or {shared: true}"),
                (["policy": ["perThing": true, "shared": true]], "policy: give one of {name: an existing AWS IoT policy}, {perThing: true} or {shared: true}"),
                (["policy": ["shared": "yes"]], "policy.shared: must be true or false, not a string"),
                (["thingAttributes": ["a", "b", "c"]], "thingAttributes: at most 2: a thing without a thing type has 3 attributes, and name is one"),
                (["thingAttributes": ["name"]], "thingAttributes[0]: name is always set; list other attributes"),
                (["bind": ["labels": ["a"], "all": true]], "bind: give one of {devices: [ids]}, {labels: [labels]} or {all: true}"),
                (["bind": ["devices": ["bad id"]]], "bind.devices[0]: must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
                (["bind": NSNull()], "bind: is required: {devices: [ids]}, {labels: [labels]} or {all: true}"),
                (["active": "yes"], "active: must be true or false, not a string"),
            ]
            for (fields, message) in cases {
                let reply = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: account, fields))
                #expect(reply.status == .badRequest, "\(fields)")
                #expect(reply.errorMessage == message, "\(fields)")
            }
            #expect(try await api.call(.get, "/v1/integrations", token: api.admin).items.isEmpty)
        }
    }

    @Test("a gateway certificate of one's own: its key sealed at rest and hidden in answers; null goes back to one AWS signs")
    func ownGatewayCertificate() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let key = try pki.read("gateway.key")
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment(allowing: ["mqtts://localhost:8883"])) { api in
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: MotoPeer.Account()))
            let id = try #require(created.json?["id"] as? String)
            #expect((created.json?["gateway"] as? [String: String]) == ["thingName": "conduit-gateway-\(id)", "certificateSource": "aws"])
            let own = try await api.call(
                .patch, "/v1/integrations/\(id)", token: api.admin,
                json: String(
                    decoding: try JSONSerialization.data(withJSONObject: [
                        "gateway": ["certificatePem": try pki.read("gateway.pem"), "privateKey": key], "mqttEndpoint": "localhost:8883",
                        "mqttTrustRoots": try pki.read("ca.pem"),
                    ]),
                    as: UTF8.self
                )
            )
            #expect(own.status == .ok, "\(own.text)")
            #expect((own.json?["gateway"] as? [String: String])?["certificateSource"] == "registered")
            #expect((own.json?["gateway"] as? [String: String])?["privateKey"] == "<hidden>")
            #expect(own.json?["mqttEndpoint"] as? String == "localhost:8883")
            #expect(!own.text.contains("PRIVATE KEY"))
            let stored = try await api.hub.store.session.sql.raw("SELECT credentials, settings FROM integrations").all()
            let raw = try stored.map { try $0.decode(column: "credentials", as: String.self) + $0.decode(column: "settings", as: String.self) }.joined()
            #expect(!raw.contains("PRIVATE KEY") && raw.contains("v2:"), "the key is sealed")
            // Another integration may not share it: removing one would take the other's away.
            let sharing = try await api.call(
                .post, "/v1/integrations", token: api.admin,
                json: try Self.body(
                    account: MotoPeer.Account(), ["name": "second", "gateway": ["certificatePem": try pki.read("gateway.pem"), "privateKey": key]]
                )
            )
            #expect(sharing.status == .conflict)
            #expect(sharing.errorCode == "gateway_certificate_in_use")
            let back = try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"gateway": null, "mqttEndpoint": null}"#)
            #expect((back.json?["gateway"] as? [String: String]) == ["thingName": "conduit-gateway-\(id)", "certificateSource": "aws"])
            #expect(back.json?["mqttEndpoint"] == nil)
        }
    }

    @Test("wrong credentials are refused with AWS's code, and nothing is stored; a host that is not AWS has its answer withheld")
    func wrongCredentials() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment(allowing: ["http://127.0.0.1:9"])) { api in
            let body = try Self.body(
                account: MotoPeer.Account(),
                [
                    "endpointUrl": try MotoPeer.authenticatingURL().absoluteString,
                    "credentials": ["accessKeyId": "AKIANOTAREALKEY00000", "secretAccessKey": "not-the-secret"],
                ]
            )
            let reply = try await api.call(.post, "/v1/integrations", token: api.admin, json: body)
            #expect(reply.status == .badRequest)
            // moto is not an AWS host: its code decides, but its words are not repeated.
            #expect(reply.errorMessage?.hasPrefix("credentials: AWS refused them: InvalidClientTokenId: ") == true, "\(reply.text)")
            #expect(reply.errorMessage?.hasSuffix("(the answer of 127.0.0.1, which is not an AWS host, is not shown)") == true, "\(reply.text)")
            #expect(!reply.text.contains("security token"))
            #expect(!reply.text.contains("not-the-secret"))
            #expect(try await api.call(.get, "/v1/integrations", token: api.admin).items.isEmpty)

            // Listed by the operator, but nothing answers there.
            let unreachable = try Self.body(account: MotoPeer.Account(), ["endpointUrl": "http://127.0.0.1:9"])
            let away = try await api.call(.post, "/v1/integrations", token: api.admin, json: unreachable)
            #expect(away.status == .badRequest)
            #expect(away.errorMessage?.hasPrefix("endpointUrl: cannot reach AWS IoT at http://127.0.0.1:9") == true)
        }
    }

    @Test("a device's AWS state, its credentials once, and rotation, through the API", arguments: TestDatabase.allCases)
    func deviceCredentials(database: TestDatabase) async throws {
        try await APIHarness.run(database, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: account))
            let integrationID = try #require(created.json?["id"] as? String)
            try await api.createDevice("api-dev-1", labels: ["fleet"])
            try await api.createDevice("unbound", labels: ["other"])
            let pending = try await api.call(.get, "/v1/devices/api-dev-1/aws", token: api.reader)
            #expect(pending.items.map { $0["state"] as? String } == ["pending"])
            #expect(try await api.call(.get, "/v1/devices/unbound/aws", token: api.reader).items.isEmpty)
            #expect(try await api.call(.post, "/v1/devices/api-dev-1/accept", token: api.operator).status == .ok)
            let early = try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/credentials", token: api.admin)
            #expect(early.status == .conflict)
            #expect(early.errorCode == "not_provisioned")
            try await Provisioner(hub: api.hub).drain()

            let status = try #require(try await api.call(.get, "/v1/devices/api-dev-1/aws", token: api.reader).items.first)
            #expect(status["state"] as? String == "provisioned")
            #expect(status["integrationName"] as? String == "prod")
            #expect((status["thingArn"] as? String)?.hasSuffix(":\(account.id):thing/api-dev-1") == true)
            #expect(status["attempts"] as? Int == 0)
            let certificateID = try #require(status["certificateId"] as? String)

            #expect(try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/credentials", token: api.operator).status == .forbidden)
            let bundle = try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/credentials", token: api.admin)
            #expect(bundle.status == .ok)
            #expect(bundle.headers[.cacheControl] == "no-store")
            #expect(bundle.json?["certificateId"] as? String == certificateID)
            #expect((bundle.json?["privateKey"] as? String)?.contains("BEGIN PRIVATE KEY") == true)
            #expect(bundle.json?["clientId"] as? String == "api-dev-1")
            #expect(bundle.json?["port"] as? Int == 8883)
            let again = try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/credentials", token: api.admin)
            #expect(again.status == .conflict)
            #expect(again.errorCode == "credentials_issued")

            let runner = Task { await Provisioner(hub: api.hub).run() }
            let rotated = try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/rotate", token: api.admin)
            runner.cancel()
            await runner.value
            #expect(rotated.status == .ok, "\(rotated.text)")
            let newID = try #require(rotated.json?["certificateId"] as? String)
            #expect(newID != certificateID)
            let fresh = try await api.call(.post, "/v1/devices/api-dev-1/aws/\(integrationID)/credentials", token: api.admin)
            #expect(fresh.json?["certificateId"] as? String == newID)

            let overview = try await api.call(.get, "/v1/integrations/\(integrationID)", token: api.admin)
            let devices = try #require(overview.json?["devices"] as? [String: Any])
            #expect(devices["count"] as? Int == 1)
            #expect((devices["states"] as? [String: Int]) == ["provisioned": 1])

            // Unbinding a device takes it out of AWS; deleting one does too.
            try await api.createDevice("api-dev-2", labels: ["fleet"])
            #expect(try await api.call(.post, "/v1/devices/api-dev-2/accept", token: api.operator).status == .ok)
            try await Provisioner(hub: api.hub).drain()
            let iot = try account.iot()
            let gateway = "conduit-gateway-\(integrationID)"
            func deviceThings() async throws -> [String] { try await iot.listThings().map(\.thingName).filter { $0 != gateway } }
            #expect(Set(try await deviceThings()) == ["api-dev-1", "api-dev-2"])
            let rebound = try await api.call(.patch, "/v1/integrations/\(integrationID)", token: api.admin, json: #"{"bind": {"devices": ["api-dev-1"]}}"#)
            #expect(rebound.status == .ok, "\(rebound.text)")
            try await Provisioner(hub: api.hub).drain()
            #expect(try await deviceThings() == ["api-dev-1"])
            #expect(try await api.call(.get, "/v1/devices/api-dev-2/aws", token: api.reader).items.isEmpty)
            #expect(try await api.call(.delete, "/v1/devices/api-dev-1", token: api.operator).status == .noContent)
            try await Provisioner(hub: api.hub).drain()
            // What is left is the integration's downlink gateway.
            #expect(try await deviceThings().isEmpty)
            #expect(try await iot.listCertificates().map(\.certificateArn) == (try await iot.listThingPrincipals(thing: gateway)))
            #expect(try await iot.listPolicies() == ["conduit-gateway@\(integrationID)"])
        }
    }

    @Test("another tenant may not use Conduit's own credentials, and its role's ExternalId is its tenant id")
    func tenantCredentials() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            let own = try await api.call(
                .post, "/v1/integrations", token: api.otherTenantAdmin, json: try Self.body(account: account, ["credentials": ["source": "default"]])
            )
            #expect(own.status == .forbidden)
            #expect(own.errorMessage == "credentials.source: Conduit's own AWS credentials are for the installation's default tenant only")
            let foreign = try await api.call(.post, "/v1/integrations", token: api.otherTenantAdmin, json: try Self.body(account: account))
            #expect(foreign.status == .badRequest)
            #expect(foreign.errorMessage?.hasPrefix("credentials.externalId: must be this tenant's id") == true)
            let role = try await api.call(
                .post, "/v1/integrations", token: api.otherTenantAdmin,
                json: try Self.body(account: account, ["credentials": ["roleArn": account.roleARN]])
            )
            #expect(role.status == .created, "\(role.text)")
            let tenant = try await api.hub.access.tenant(named: "other")
            #expect((role.json?["credentials"] as? [String: String])?["externalId"] == tenant.id)
        }
    }

    @Test("an integration that holds devices in AWS cannot move to another region or endpoint")
    func noMoveWhileInUse() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let created = try await api.call(.post, "/v1/integrations", token: api.admin, json: try Self.body(account: MotoPeer.Account()))
            let id = try #require(created.json?["id"] as? String)
            // Nothing made yet: it may move.
            #expect(try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"region": "eu-west-1"}"#).status == .ok)
            try await api.createDevice("mover-1", labels: ["fleet"])
            #expect(try await api.call(.post, "/v1/devices/mover-1/accept", token: api.operator).status == .ok)
            try await Provisioner(hub: api.hub).drain()
            let moved = try await api.call(.patch, "/v1/integrations/\(id)", token: api.admin, json: #"{"region": "us-east-1"}"#)
            #expect(moved.status == .conflict)
            #expect(moved.errorCode == "integration_in_use")
            #expect(try await api.call(.get, "/v1/integrations/\(id)", token: api.admin).json?["region"] as? String == "eu-west-1")
        }
    }
}
