import AWSIoT
import ConduitTesting
import Foundation
import Hub
import Testing

@Suite("Device shadows, against moto")
struct ShadowTests {
    /// An integration into a fresh moto account binding every device, and `id` accepted and provisioned in it.
    static func provisioned(_ api: APIHarness, id: String = "lamp-1") async throws -> (account: MotoPeer.Account, integrationID: String) {
        let account = MotoPeer.Account()
        let created = try await api.call(
            .post, "/v1/integrations", token: api.admin, json: try IntegrationTests.body(account: account, ["bind": ["all": true], "thingGroup": NSNull()])
        )
        let integrationID = try #require(created.json?["id"] as? String, "\(created.text)")
        _ = try await api.createDevice(id)
        #expect(try await api.call(.post, "/v1/devices/\(id)/accept", token: api.operator).status == .ok)
        try await Provisioner(hub: api.hub).drain()
        return (account, integrationID)
    }

    @Test("read, update, null removal, delta against what the device reports, version conflicts, named shadows, delete", arguments: TestDatabase.allCases)
    func lifecycle(database: TestDatabase) async throws {
        try await APIHarness.run(database, aws: try MotoPeer.environment()) { api in
            let (account, _) = try await Self.provisioned(api)
            let data = try account.data()

            // No shadow yet: empty states.
            let empty = try await api.call(.get, "/v1/devices/lamp-1/shadow", token: api.reader)
            #expect(empty.status == .ok, "\(empty.text)")
            #expect(empty.json?["desired"] as? [String: Any] != nil && (empty.json?["desired"] as? [String: Any])?.isEmpty == true)
            #expect((empty.json?["reported"] as? [String: Any])?.isEmpty == true)
            #expect(empty.json?["version"] == nil)

            // Desired set by an admin; AWS holds it.
            let set = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"power": "on", "level": 70, "schedule": {"on": "07:00"}}}"#)
            #expect(set.status == .ok, "\(set.text)")
            #expect((set.json?["desired"] as? [String: Any])?["level"] as? Int == 70)
            let version = try #require(set.json?["version"] as? Int)
            let stored = try JSONSerialization.jsonObject(with: Data(try #require(try await data.getThingShadow(thing: "lamp-1")))) as? [String: Any]
            #expect(((stored?["state"] as? [String: Any])?["desired"] as? [String: Any])?["power"] as? String == "on")

            // The device reports; the delta is what it has yet to do, and metadata stays out.
            _ = try await data.updateThingShadow(thing: "lamp-1", document: Array(#"{"state": {"reported": {"power": "off", "level": 70}}}"#.utf8))
            let read = try await api.call(.get, "/v1/devices/lamp-1/shadow", token: api.reader)
            #expect((read.json?["reported"] as? [String: Any])?["power"] as? String == "off")
            #expect((read.json?["delta"] as? [String: Any])?["power"] as? String == "on")
            #expect((read.json?["delta"] as? [String: Any])?["level"] == nil)
            #expect(read.json?["metadata"] == nil)
            #expect(read.json?["timestamp"] as? Int != nil)
            let current = try #require(read.json?["version"] as? Int)
            #expect(current == version + 1)

            // Numbers come back as they went: a 64-bit serial exactly, a fraction as itself.
            let exact = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"serial": 9007199254740993, "ratio": 0.1}}"#)
            #expect(exact.text.contains(#""serial":9007199254740993"#), "\(exact.text)")
            #expect(exact.text.contains(#""ratio":0.1"#), "\(exact.text)")
            _ = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"serial": null, "ratio": null}}"#)

            // null removes a key; other keys stay.
            let removed = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"schedule": null}}"#)
            #expect((removed.json?["desired"] as? [String: Any])?.keys.sorted() == ["level", "power"])

            // A stale version is a 409 that says the current one; the current one passes.
            let latest = try #require(removed.json?["version"] as? Int)
            #expect(latest > current)
            let stale = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"level": 10}, "version": \#(current)}"#)
            #expect(stale.status == .conflict)
            #expect(stale.errorCode == "version_conflict")
            #expect((stale.json?["error"] as? [String: Any])?["currentVersion"] as? Int == latest)
            let fresh = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"level": 10}, "version": \#(latest)}"#)
            #expect(fresh.status == .ok, "\(fresh.text)")
            #expect((fresh.json?["desired"] as? [String: Any])?["level"] as? Int == 10)

            // Named shadows work the same way and are listed.
            let named = try await api.call(.patch, "/v1/devices/lamp-1/shadow?name=config", token: api.admin, json: #"{"desired": {"interval": 30}}"#)
            #expect(named.status == .ok, "\(named.text)")
            #expect((try await api.call(.get, "/v1/devices/lamp-1/shadow?name=config", token: api.reader).json?["desired"] as? [String: Any])?["interval"] as? Int == 30)
            #expect((try await api.call(.get, "/v1/devices/lamp-1/shadow", token: api.reader).json?["desired"] as? [String: Any])?["interval"] == nil)
            #expect(try await api.call(.get, "/v1/devices/lamp-1/shadows", token: api.reader).json?["items"] as? [String] == ["config"])
            #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow?name=config", token: api.admin).status == .noContent)
            #expect((try await api.call(.get, "/v1/devices/lamp-1/shadow?name=config", token: api.reader).json?["desired"] as? [String: Any])?.isEmpty == true)

            // A version for a shadow that does not exist: only 0 (or none) makes it.
            let absent = try await api.call(.patch, "/v1/devices/lamp-1/shadow?name=fresh", token: api.admin, json: #"{"desired": {"a": 1}, "version": 4}"#)
            #expect(absent.status == .conflict)
            #expect((absent.json?["error"] as? [String: Any])?["currentVersion"] as? Int == 0)
            let made = try await api.call(.patch, "/v1/devices/lamp-1/shadow?name=fresh", token: api.admin, json: #"{"desired": {"a": 1}, "version": 0}"#)
            #expect(made.status == .ok, "\(made.text)")
            #expect(made.json?["version"] as? Int == 1)
            #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow?name=fresh", token: api.admin).status == .noContent)

            // Deleted, it reads as empty again; deleting one that is gone is no error.
            #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow", token: api.admin).status == .noContent)
            #expect(try await data.getThingShadow(thing: "lamp-1") == nil)
            #expect((try await api.call(.get, "/v1/devices/lamp-1/shadow", token: api.reader).json?["desired"] as? [String: Any])?.isEmpty == true)
            #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow", token: api.admin).status == .noContent)
        }
    }

    @Test("readers read, only admins change desired, reported is never written; AWS's limits are checked before AWS is called")
    func rulesAndLimits() async throws {
        try await APIHarness.run(.sqlite, aws: try MotoPeer.environment()) { api in
            let (account, integrationID) = try await Self.provisioned(api)
            for token in [api.reader, api.operator] {
                let refused = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: token, json: #"{"desired": {"power": "on"}}"#)
                #expect(refused.status == .forbidden)
                #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow", token: token).status == .forbidden)
            }
            #expect(try await api.call(.get, "/v1/devices/lamp-1/shadow", token: api.otherTenantAdmin).status == .notFound)
            #expect(try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.otherTenantAdmin, json: #"{"desired": {"a": 1}}"#).status == .notFound)
            #expect(try await api.call(.delete, "/v1/devices/lamp-1/shadow", token: api.otherTenantAdmin).status == .notFound)

            let deep = (0..<7).reduce(#"1"#) { inner, level in #"{"l\#(level)": \#(inner)}"# }
            let big = String(repeating: "x", count: 8200)
            let cases: [(String, String)] = [
                (#"{"reported": {"power": "on"}}"#, "reported: is the device's to report and cannot be written from the API; change desired"),
                (#"{"desired": {"power": "on"}, "reported": {"power": "on"}}"#, "reported: is the device's to report and cannot be written from the API; change desired"),
                (#"{"desired": "on"}"#, "desired: must be an object, not a string"),
                (#"{"desired": {"a": \#(deep)}}"#, "desired: nests 8 levels; AWS IoT allows at most 6"),
                (#"{"desired": {"big": "\#(big)"}}"#, "desired: is 8232 bytes; AWS IoT keeps at most 8192 bytes of shadow state"),
                (#"{"desired": {"list": [1, null]}}"#, "desired.list[1]: is null inside an array; AWS IoT allows null only as an object's value (to remove its key)"),
                (#"{"desired": {"a": 1}, "version": -1}"#, "version: must be 0 or more"),
                (#"{"desired": {"a": 1}, "version": "3"}"#, "version: must be a whole number, not a string"),
                // abs(Int64.min) trapped and took the server down (Fuzz/FuzzJSONBody).
                (#"{"desired": {"a": 1}, "version": -9223372036854775808}"#, "version: must be a whole number, not a number"),
            ]
            for (body, message) in cases {
                let reply = try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: body)
                #expect(reply.status == .badRequest, "\(body)")
                #expect(reply.errorMessage == message, "\(body)")
            }
            let badName = try await api.call(.get, "/v1/devices/lamp-1/shadow?name=no%20spaces", token: api.reader)
            #expect(badName.status == .badRequest)
            #expect(badName.errorMessage == "name: must match [a-zA-Z0-9:_-]{1,64}")
            // Nothing reached AWS.
            #expect(try await account.data().getThingShadow(thing: "lamp-1") == nil)
            // Six levels pass.
            let six = (0..<5).reduce(#"1"#) { inner, level in #"{"l\#(level)": \#(inner)}"# }
            #expect(try await api.call(.patch, "/v1/devices/lamp-1/shadow", token: api.admin, json: #"{"desired": {"a": \#(six)}}"#).status == .ok)

            // A device with no thing in AWS, and an integration it is not in.
            _ = try await api.createDevice("waiting-1")
            let pending = try await api.call(.get, "/v1/devices/waiting-1/shadow", token: api.reader)
            #expect(pending.status == .conflict)
            #expect(pending.errorCode == "not_provisioned")
            #expect(try await api.call(.get, "/v1/devices/lamp-1/shadow?integration=\(integrationID)", token: api.reader).status == .ok)
            #expect(try await api.call(.get, "/v1/devices/lamp-1/shadow?integration=int_nope", token: api.reader).status == .notFound)
        }
    }
}
