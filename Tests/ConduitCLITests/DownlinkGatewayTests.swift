import AWSIoT
import ConduitTesting
import Foundation
import Testing

/// mosquitto stands in for AWS IoT's data endpoint: TLS with `require_certificate true`, its own
/// test CA in place of Amazon's. moto is the control plane, where Conduit registers the gateway's
/// certificate (from the test CA), makes its thing and policy, and the devices' things.
@Suite("Downlinks from AWS IoT through the integration's gateway")
struct DownlinkGatewayTests {
    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// What arrives on the device's downlink topic, as the device sees it: mosquitto_sub with its
    /// secret, until `count` messages came.
    static func receive(_ mqtt: Int, _ id: String, _ secret: String, count: Int) -> Task<Subprocess.Result, any Error> {
        Task {
            try await Subprocess.run(
                ["stdbuf", "-oL", "mosquitto_sub", "-p", "\(mqtt)", "-i", id, "-u", id, "-P", secret, "-t", "devices/\(id)/down", "-q", "1",
                 "-C", "\(count)"],
                timeout: 40
            )
        }
    }

    /// Conduit's AWS settings for a test whose data endpoint is `mosquitto`: STS at moto, and the
    /// operator's allowlist naming the motos and the mosquitto standing in for AWS's broker.
    static func environment(accessKey: String, mosquitto: TLSMosquitto) throws -> [String: String] {
        [
            "AWS_ACCESS_KEY_ID": accessKey, "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": try MotoPeer.url().absoluteString,
            "CONDUIT_AWS_ENDPOINT_ALLOWLIST": (try MotoPeer.allowlistEntries() + ["mqtts://localhost:\(mosquitto.port)"]).joined(separator: ","),
        ]
    }

    /// An integration binding every device, at moto in `account`, whose gateway connects to
    /// `mosquitto` with the test PKI's certificate.
    static func integration(_ name: String, account: MotoPeer.Account, mosquitto: TLSMosquitto, pki: TestPKI) throws -> [String: Any] {
        [
            "name": name, "region": "us-east-1", "endpointUrl": try MotoPeer.url().absoluteString,
            "credentials": ["roleArn": account.roleARN, "externalId": "conduit-test"], "bind": ["all": true],
            "mqttEndpoint": "localhost:\(mosquitto.port)", "mqttTrustRoots": try pki.read("ca.pem"),
            "gateway": ["certificatePem": try pki.read("gateway.pem"), "privateKey": try pki.read("gateway.key")],
        ]
    }

    /// Publishes as AWS IoT would, to mosquitto's plain listener.
    static func publishFromAWS(_ mosquitto: TLSMosquitto, _ topic: String, _ message: String) async throws {
        let result = try await Subprocess.run(
            ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(mosquitto.plainPort)", "-i", "aws-side", "-q", "1", "-t", topic, "-m", message],
            timeout: 10
        )
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test("a downlink published at the data endpoint reaches a connected device, and one that connects later; one for an unprovisioned device and malformed JSON are recorded and skipped; one sent while Conduit is down comes after its restart")
    func downlinksThroughTheGateway() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let pki = try await TestPKI.make(in: directory)
        let mosquitto = try TLSMosquitto(pki: pki)
        try await mosquitto.start()
        let account = MotoPeer.Account()
        let iot = try account.iot()
        let environment = try Self.environment(accessKey: "AKIACONDUITGATEWAY01", mosquitto: mosquitto)
        let mqtt = freeLoopbackPort()
        func serve() async throws -> (ConduitServer, Int) {
            try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "\(mqtt)"], in: directory, environment: environment)
        }
        var (server, http) = try await serve()
        do {
            let token = try #require(server.bootstrapToken)
            var secrets: [String: String] = [:]
            for id in ["near", "far", "waiting"] {
                let created = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"\#(id)","name":"\#(id)"}"#)
                secrets[id] = try #require(created.body["secret"] as? String)
            }
            for id in ["near", "far"] {
                #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/\(id)/accept", token: token).status == 200)
            }
            let created = try await ConduitCLITests.http(
                "POST", http, "/v1/integrations", token: token,
                json: try Self.json(try Self.integration("downlinks", account: account, mosquitto: mosquitto, pki: pki))
            )
            #expect(created.status == 201, "\(created.body)")
            let integrationID = try #require(created.body["id"] as? String)
            let gatewayThing = "conduit-gateway-\(integrationID)"
            let gatewayPolicy = "conduit-gateway@\(integrationID)"
            #expect((created.body["gateway"] as? [String: Any])?["privateKey"] as? String == "<hidden>")
            #expect((created.body["gateway"] as? [String: Any])?["certificateSource"] as? String == "registered")

            // The gateway is made in AWS and connects; the devices are provisioned.
            var gateway: [String: Any] = [:]
            try await waitUntil("the gateway to connect and the devices to be provisioned") {
                let integration = try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).body
                gateway = integration["gateway"] as? [String: Any] ?? [:]
                let states = (integration["devices"] as? [String: Any])?["states"] as? [String: Int]
                return gateway["connected"] as? Bool == true && states?["provisioned"] == 2
            }
            #expect(gateway["state"] as? String == "provisioned")
            #expect(gateway["endpoint"] as? String == "localhost:\(mosquitto.port)")
            let certificateID = try #require(gateway["certificateId"] as? String)
            let described = try await iot.describeCertificate(id: certificateID)
            #expect(described.status == "ACTIVE")
            #expect(described.certificatePem?.contains(try pki.read("gateway.pem").split(separator: "\n")[1]) == true, "the test CA's certificate is the one registered")
            #expect(try await iot.listThingPrincipals(thing: gatewayThing) == [described.certificateArn])
            #expect(try await iot.listAttachedPolicies(target: described.certificateArn) == [gatewayPolicy])
            let policy = try #require(try await iot.getPolicy(name: gatewayPolicy).policyDocument)
            let statements = try #require(
                (try JSONSerialization.jsonObject(with: Data(policy.utf8)) as? [String: Any])?["Statement"] as? [[String: Any]]
            )
            // Each action's resources, whether a statement names one or several.
            let allowed = Dictionary(grouping: statements, by: { $0["Action"] as? String ?? "" }).mapValues { group in
                group.flatMap { ($0["Resource"] as? [String]) ?? [$0["Resource"] as? String ?? ""] }
            }
            #expect(Set(allowed.keys) == ["iot:Connect", "iot:Subscribe", "iot:Receive"], "the gateway may not publish: \(policy)")
            #expect(allowed["iot:Connect"]?.count == 1 && allowed["iot:Connect"]?.first?.hasSuffix(":client/\(gatewayThing)") == true)
            #expect(allowed["iot:Subscribe"]?.map { $0.split(separator: ":").last.map(String.init) ?? "" } == [
                "topicfilter/conduit/devices/+/down", "topicfilter/$aws/things/+/shadow/update/documents", "topicfilter/$aws/things/+/shadow/name/+/update/documents",
            ])
            #expect(allowed["iot:Receive"]?.map { $0.split(separator: ":").last.map(String.init) ?? "" } == [
                "topic/conduit/devices/*/down", "topic/$aws/things/*/shadow/update/documents", "topic/$aws/things/*/shadow/name/*/update/documents",
            ])

            // A connected device gets its downlink at once.
            let near = Self.receive(mqtt, "near", secrets["near"]!, count: 1)
            try await Task.sleep(for: .seconds(1))
            try await Self.publishFromAWS(mosquitto, "conduit/devices/near/down", #"{"payload_raw": "\#(Self.base64("hello near"))", "confirmed": true}"#)
            let nearResult = try await near.value
            #expect(nearResult.stdout == "hello near\n", "\(nearResult.stderr)")

            // One for a device that is away waits in its queue, and reaches it when it connects.
            try await Self.publishFromAWS(mosquitto, "conduit/devices/far/down", #"{"payload_raw": "\#(Self.base64("for later"))", "port": 9}"#)
            try await waitUntil("the downlink in far's queue") {
                try await DownlinkTests.queued(http, token, "far").count == 1
            }
            let far = try await Self.receive(mqtt, "far", secrets["far"]!, count: 1).value
            #expect(far.stdout == "for later\n", "\(far.stderr)")

            // An unprovisioned device, an unknown one and malformed JSON: recorded, skipped, and
            // the subscription goes on.
            try await Self.publishFromAWS(mosquitto, "conduit/devices/waiting/down", #"{"payload_raw": "\#(Self.base64("no"))"}"#)
            try await Self.publishFromAWS(mosquitto, "conduit/devices/ghost/down", #"{"payload_raw": "\#(Self.base64("no"))"}"#)
            try await Self.publishFromAWS(mosquitto, "conduit/devices/near/down", #"{"payload_raw": "#)
            try await Self.publishFromAWS(mosquitto, "conduit/devices/near/down", #"{"payload_raw": 42}"#)
            var skipped: [[String: Any]] = []
            try await waitUntil("four downlink.skipped events") {
                skipped = try await ConduitCLITests.http("GET", http, "/v1/events?type=downlink.skipped", token: token).body["items"] as? [[String: Any]] ?? []
                return skipped.count >= 4
            }
            let reasons = skipped.compactMap { ($0["data"] as? [String: Any])?["reason"] as? String }
            #expect(reasons.count == 4)
            #expect(reasons.filter { $0.hasPrefix("no device 'waiting' provisioned") }.count == 1, "\(reasons)")
            #expect(reasons.filter { $0.hasPrefix("no device 'ghost' provisioned") }.count == 1, "\(reasons)")
            #expect(reasons.contains("body: must be a JSON object"), "\(reasons)")
            #expect(reasons.contains("payload_raw: has the wrong type"), "\(reasons)")
            #expect(try await DownlinkTests.queued(http, token, "near").isEmpty)
            let after = Self.receive(mqtt, "near", secrets["near"]!, count: 1)
            try await Task.sleep(for: .seconds(1))
            try await Self.publishFromAWS(mosquitto, "conduit/devices/near/down", #"{"payload_raw": "\#(Self.base64("still here"))"}"#)
            #expect(try await after.value.stdout == "still here\n")

            // Made inactive, the integration lets go of its connection; active again, it takes
            // what AWS kept for it meanwhile.
            func connected() async throws -> Bool? {
                let body = try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).body
                return (body["gateway"] as? [String: Any])?["connected"] as? Bool
            }
            #expect(try await ConduitCLITests.http("PATCH", http, "/v1/integrations/\(integrationID)", token: token, json: #"{"active": false}"#).status == 200)
            try await waitUntil("the gateway to let go") { try await connected() == nil }
            try await Self.publishFromAWS(mosquitto, "conduit/devices/far/down", #"{"payload_raw": "\#(Self.base64("kept for you"))"}"#)
            #expect(try await ConduitCLITests.http("PATCH", http, "/v1/integrations/\(integrationID)", token: token, json: #"{"active": true}"#).status == 200)
            let kept = try await Self.receive(mqtt, "far", secrets["far"]!, count: 1).value
            #expect(kept.stdout == "kept for you\n", "\(kept.stderr)")

            // Conduit dies; what AWS sends meanwhile waits in the gateway's persistent session and
            // reaches the device after the restart.
            // The device's acknowledgement has reached the queue (else the restart sends it again,
            // as at least once allows, ahead of the one below).
            try await waitUntil("far's queue to empty") { try await DownlinkTests.queued(http, token, "far").isEmpty }
            await server.kill()
            try await Self.publishFromAWS(mosquitto, "conduit/devices/far/down", #"{"payload_raw": "\#(Self.base64("while you were away"))"}"#)
            (server, http) = try await serve()
            let late = try await Self.receive(mqtt, "far", secrets["far"]!, count: 1).value
            #expect(late.stdout == "while you were away\n", "\(late.stderr)")

            // Deleting the integration removes the gateway from AWS with everything else.
            #expect(try await ConduitCLITests.http("DELETE", http, "/v1/integrations/\(integrationID)", token: token).status == 202)
            try await waitUntil("the integration to be gone") {
                try await ConduitCLITests.http("GET", http, "/v1/integrations/\(integrationID)", token: token).status == 404
            }
            #expect(try await iot.listThings().isEmpty)
            #expect(try await iot.listCertificates().isEmpty)
            #expect(try await iot.listPolicies().isEmpty)
        } catch {
            await server.stop()
            await mosquitto.stop()
            throw error
        }
        await server.stop()
        await mosquitto.stop()
    }
}
