import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Testing

/// Para's documentation, "IoT with AWS": create a thing with `serviceBroker: "AWS"` (its
/// certificates in `deviceDetails`, once), read its `deviceState` (the shadow's desired state),
/// change it with PATCH, delete it (and its certificate and policy in AWS).
@Suite("Para-compatible /v1/things, against moto")
struct ThingTests {
    @Test("the Para flow end to end: created with credentials once, state read and patched through the shadow, deleted with nothing left in AWS", arguments: TestDatabase.allCases)
    func paraFlow(database: TestDatabase) async throws {
        try await APIHarness.run(database, aws: try MotoPeer.environment()) { api in
            let account = MotoPeer.Account()
            let iot = try account.iot()
            let data = try account.data()
            let integration = try await api.call(
                .post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, ["bind": ["labels": ["fleet"]]])
            )
            let integrationID = try #require(integration.json?["id"] as? String)
            let endpoint = try #require(integration.json?["dataEndpoint"] as? String)
            // The integration's downlink gateway is made first; the thing is made by the request alone.
            try await Provisioner(hub: api.hub).drain()

            let created = try await api.call(.post, "/v1/things", token: api.admin, json: #"{"name": "MyThing", "serviceBroker": "AWS"}"#)
            #expect(created.status == .created, "\(created.text)")
            let thing = try #require(created.json)
            let id = try #require(thing["id"] as? String)
            #expect(created.headers[.location] == "/v1/things/\(id)")
            #expect(thing["type"] as? String == "thing")
            #expect(thing["name"] as? String == "MyThing")
            #expect(thing["serviceBroker"] as? String == "AWS")
            #expect((thing["deviceState"] as? [String: Any])?.isEmpty == true)
            #expect((thing["timestamp"] as? Int).map { abs(Double($0) / 1000 - Date().timeIntervalSince1970) < 120 } == true)
            let details = try #require(thing["deviceDetails"] as? [String: Any])
            #expect(
                Set(details.keys) == [
                    "thingId", "thingName", "thingARN", "clientId", "clientCertId", "clientCertARN", "clientCert", "privateKey", "publicKey",
                    "region", "port", "host",
                ]
            )
            #expect(details["thingId"] as? String == id)
            #expect(details["thingName"] as? String == id)
            #expect(details["clientId"] as? String == id)
            #expect(details["port"] as? Int == 8883)
            #expect(details["host"] as? String == endpoint)
            #expect(details["region"] as? String == "us-east-1")
            #expect((details["privateKey"] as? String)?.hasPrefix("-----BEGIN PRIVATE KEY-----") == true)
            #expect((details["publicKey"] as? String)?.hasPrefix("-----BEGIN PUBLIC KEY-----") == true)
            #expect((details["clientCert"] as? String)?.contains("BEGIN CERTIFICATE") == true)

            // AWS holds it before the answer: the thing, its active certificate and its policy.
            let described = try await iot.describeThing(name: id)
            #expect(described.thingArn == details["thingARN"] as? String)
            let certificateID = try #require(details["clientCertId"] as? String)
            #expect(try await iot.describeCertificate(id: certificateID).status == "ACTIVE")
            #expect(try await iot.listThingPrincipals(thing: id) == [try #require(details["clientCertARN"] as? String)])
            #expect(try await iot.listAttachedPolicies(target: try #require(details["clientCertARN"] as? String)) == ["conduit-\(id)"])

            // The keys are shown once: never on a read, and the credentials endpoint says so.
            let read = try await api.call(.get, "/v1/things/\(id)", token: api.reader)
            #expect(read.status == .ok)
            #expect(read.json?["deviceDetails"] == nil)
            #expect(!read.text.contains("PRIVATE KEY"))
            let again = try await api.call(.post, "/v1/devices/\(id)/aws/\(integrationID)/credentials", token: api.admin)
            #expect(again.errorCode == "credentials_issued")

            // deviceState is the shadow's desired state: written by PATCH, read fresh from AWS.
            let patched = try await api.call(.patch, "/v1/things/\(id)", token: api.admin, json: #"{"deviceState": {"color": "red", "on": true}}"#)
            #expect(patched.status == .ok, "\(patched.text)")
            #expect((patched.json?["deviceState"] as? [String: Any])?["color"] as? String == "red")
            let shadow = try JSONSerialization.jsonObject(with: Data(try #require(try await data.getThingShadow(thing: id)))) as? [String: Any]
            #expect(((shadow?["state"] as? [String: Any])?["desired"] as? [String: Any])?["color"] as? String == "red")
            _ = try await data.updateThingShadow(thing: id, document: Array(#"{"state": {"desired": {"color": "blue"}}}"#.utf8))
            let fresh = try await api.call(.get, "/v1/things/\(id)", token: api.reader)
            #expect((fresh.json?["deviceState"] as? [String: Any])?["color"] as? String == "blue")
            #expect((fresh.json?["deviceState"] as? [String: Any])?["on"] as? Bool == true)

            let listed = try await api.call(.get, "/v1/things", token: api.reader)
            #expect(listed.json?["totalHits"] as? Int == 1)
            #expect((listed.json?["items"] as? [[String: Any]])?.first?["id"] as? String == id)
            #expect((listed.json?["items"] as? [[String: Any]])?.first?["deviceDetails"] == nil)

            // Deleted: its shadow, certificate, policy and thing leave AWS before the answer; the
            // shadow while the thing still exists, its certificate already inactive.
            #expect(try await api.call(.delete, "/v1/things/\(id)", token: api.admin).status == .ok)
            let requests = try MotoPeer.recordedRequests().map { "\($0.method) \($0.path)" }
            let shadowDeleted = try #require(requests.lastIndex(of: "DELETE /things/\(id)/shadow"), "no DeleteThingShadow for \(id)")
            let thingDeleted = try #require(requests.lastIndex(of: "DELETE /things/\(id)"), "no DeleteThing for \(id)")
            #expect(shadowDeleted < thingDeleted)
            #expect(try await data.getThingShadow(thing: id) == nil)
            #expect(try await iot.listThings().map(\.thingName).filter { !$0.hasPrefix("conduit-gateway-") }.isEmpty)
            #expect(try await iot.listPolicies().filter { !$0.hasPrefix("conduit-gateway@") }.isEmpty)
            let gatewayCertificates = try await iot.listThingPrincipals(thing: "conduit-gateway-\(integrationID)")
            #expect(try await iot.listCertificates().map(\.certificateArn).filter { !gatewayCertificates.contains($0) }.isEmpty)
            #expect(try await api.call(.get, "/v1/things/\(id)", token: api.reader).status == .notFound)
            #expect(try await api.call(.get, "/v1/things", token: api.reader).json?["totalHits"] as? Int == 0)
        }
    }

    @Test("which integration: none is a 409, several need integrationId (a 409 too); bad input names the field; readers cannot create")
    func choosingAndRefusing() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            // One list is at most 100 AWS calls: a larger page is refused before any is made.
            let tooMany = try await api.call(.get, "/v1/things?limit=101", token: api.reader)
            #expect(tooMany.status == .badRequest)
            #expect(tooMany.errorMessage == "limit: must be between 1 and 100 for things: each one listed is a call to AWS")
            #expect(try await api.call(.get, "/v1/things?limit=100", token: api.reader).status == .ok)
            let none = try await api.call(.post, "/v1/things", token: api.admin, json: #"{"name": "t", "serviceBroker": "AWS"}"#)
            #expect(none.status == .conflict)
            #expect(none.errorCode == "no_integration")
            let account = MotoPeer.Account()
            var ids: [String] = []
            for name in ["one", "two", "listed"] {
                let bind: [String: Any] = name == "listed" ? ["devices": []] : ["labels": ["fleet-\(name)"]]
                let created = try await api.call(
                    .post, "/v1/integrations", token: api.admin,
                    json: try IntegrationTests.body(account: account, ["name": name, "bind": bind, "thingGroup": NSNull()])
                )
                ids.append(try #require(created.json?["id"] as? String, "\(created.text)"))
            }
            let ambiguous = try await api.call(.post, "/v1/things", token: api.admin, json: #"{"name": "t", "serviceBroker": "AWS"}"#)
            // (three integrations now: one, two and listed)
            #expect(ambiguous.status == .conflict)
            #expect(ambiguous.errorCode == "integration_required")
            #expect(ambiguous.errorMessage?.hasPrefix("integrationId: is required: the tenant has several AWS integrations") == true)
            let cases: [(String, String)] = [
                (#"{"name": "t", "serviceBroker": "Azure"}"#, "serviceBroker: must be \"AWS\" (Conduit brokers things to AWS IoT Core only)"),
                (#"{"name": "t"}"#, "serviceBroker: is required: \"AWS\""),
                (#"{"serviceBroker": "AWS"}"#, "name: is required"),
                (#"{"name": "t", "serviceBroker": "AWS", "type": "user"}"#, "type: must be \"thing\""),
            ]
            for (body, message) in cases {
                let reply = try await api.call(.post, "/v1/things", token: api.admin, json: body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errorMessage == message, "\(body)")
            }
            // A deviceState AWS would refuse is refused before anything is made.
            let deep = try await api.call(
                .post, "/v1/things", token: api.admin,
                json: #"{"name": "t", "serviceBroker": "AWS", "integrationId": "\#(ids[0])", "deviceState": {"list": [1, null]}}"#
            )
            #expect(deep.status == .badRequest)
            #expect(deep.errorMessage == "deviceState.list[1]: is null inside an array; AWS IoT allows null only as an object's value (to remove its key)")
            #expect(try await api.call(.get, "/v1/devices?label=para:thing", token: api.reader).items.isEmpty)
            let unknown = try await api.call(.post, "/v1/things", token: api.admin, json: #"{"name": "t", "serviceBroker": "AWS", "colour": "red"}"#)
            #expect(unknown.errorMessage?.hasPrefix("colour: unknown field") == true)
            #expect(try await api.call(.post, "/v1/things", token: api.reader, json: #"{"name": "t", "serviceBroker": "AWS"}"#).status == .forbidden)

            // An integration that binds a list of devices does not take things.
            let listed = try await api.call(.post, "/v1/things", token: api.admin, json: #"{"name": "t", "serviceBroker": "AWS", "integrationId": "\#(ids[2])"}"#)
            #expect(listed.status == .conflict)
            #expect(listed.errorCode == "integration_binds_devices")

            // Named, the integration binds the new thing by its label, with a background worker
            // racing the request for the job; Para's own fields (appid, tags...) are accepted.
            let worker = Task { await Provisioner(hub: api.hub).run() }
            defer { worker.cancel() }
            let chosen = try await api.call(
                .post, "/v1/things", token: api.admin,
                json: #"{"name": "t", "serviceBroker": "AWS", "integrationId": "\#(ids[1])", "appid": "myapp", "tags": [], "deviceState": {"mode": "eco"}}"#
            )
            #expect(chosen.status == .created, "\(chosen.text)")
            let id = try #require(chosen.json?["id"] as? String)
            #expect((chosen.json?["deviceState"] as? [String: Any])?["mode"] as? String == "eco")
            #expect((chosen.json?["deviceDetails"] as? [String: Any])?["privateKey"] != nil)
            let device = try await api.call(.get, "/v1/devices/\(id)", token: api.reader)
            #expect(Set(device.json?["labels"] as? [String] ?? []) == ["para:thing", "fleet-two"])
            #expect(try await api.call(.get, "/v1/devices/\(id)/aws", token: api.reader).items.map { $0["integrationId"] as? String } == [ids[1]])
            #expect(try await api.call(.get, "/v1/things/nope", token: api.reader).status == .notFound)
        }
    }
}
