import ConduitTesting
import Foundation
import Hub
import Hummingbird
import SQLKit
import Store
import Testing

@Suite("Devices")
struct DeviceTests {
    @Test("create shows the secret once; reads never show it; only a salted hash is stored", arguments: TestDatabase.allCases)
    func secretShownOnce(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let created = try await api.call(
                .post, "/v1/devices", token: api.operator,
                json: #"{"id":"meter-7","name":"Meter 7","labels":["roof","lab","lab"],"attributes":{"floor":"3"}}"#
            )
            #expect(created.status == .created)
            #expect(created.headers[.location] == "/v1/devices/meter-7")
            #expect(created.headers[.cacheControl] == "no-store")
            let secret = try #require(created.json?["secret"] as? String)
            #expect(secret.count >= 32)
            #expect(created.json?["status"] as? String == "pending")
            #expect(created.json?["labels"] as? [String] == ["lab", "roof"])
            #expect(created.json?["attributes"] as? [String: String] == ["floor": "3"])

            let fetched = try await api.call(.get, "/v1/devices/meter-7", token: api.reader)
            #expect(fetched.json?["secret"] == nil)
            #expect(!fetched.text.contains(secret))
            #expect(!(try await api.call(.get, "/v1/devices", token: api.reader).text.contains(secret)))
            #expect(!(try await api.call(.get, "/v1/events", token: api.reader).text.contains(secret)))

            let row = try #require(try await api.hub.store.session.sql.raw("SELECT secret_hash FROM devices WHERE id = 'meter-7'").first())
            let stored = try row.decode(column: "secret_hash", as: String.self)
            #expect(!stored.contains(secret))
            #expect(try await api.hub.devices.verifySecret(deviceID: "meter-7", secret: secret)?.id == "meter-7")
            #expect(try await api.hub.devices.verifySecret(deviceID: "meter-7", secret: secret + "x") == nil)
        }
    }

    @Test("rotating the secret shows a new one once and retires the old", arguments: TestDatabase.allCases)
    func rotateSecret(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let old = try #require(try await api.createDevice("d1")["secret"] as? String)
            let rotated = try await api.call(.post, "/v1/devices/d1/secret", token: api.operator)
            #expect(rotated.status == .ok)
            let new = try #require(rotated.json?["secret"] as? String)
            #expect(new != old)
            #expect(try await api.hub.devices.verifySecret(deviceID: "d1", secret: old) == nil)
            #expect(try await api.hub.devices.verifySecret(deviceID: "d1", secret: new) != nil)
            #expect(try await api.call(.get, "/v1/events?type=device.secret_rotated", token: api.reader).items.count == 1)
        }
    }

    @Test("a device whose id holds a colon is reached with the colon percent-encoded, as HTTP clients write it", arguments: TestDatabase.allCases)
    func encodedPathIDs(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let old = try #require(try await api.createDevice("meter:7")["secret"] as? String)
            let fetched = try await api.call(.get, "/v1/devices/meter%3A7", token: api.reader)
            #expect(fetched.status == .ok)
            #expect(fetched.json?["id"] as? String == "meter:7")
            #expect(try await api.call(.get, "/v1/devices/meter:7", token: api.reader).status == .ok)
            let rotated = try await api.call(.post, "/v1/devices/meter%3a7/secret", token: api.operator)
            #expect(rotated.status == .ok)
            #expect(try await api.hub.devices.verifySecret(deviceID: "meter:7", secret: old) == nil)
            #expect(try await api.call(.post, "/v1/devices/meter%3A7/accept", token: api.operator).json?["status"] as? String == "accepted")
            // An encoded slash stays inside its segment: it names no device, and no other route.
            #expect(try await api.call(.get, "/v1/devices/meter%2F7", token: api.reader).status == .notFound)
            let broken = try await api.call(.get, "/v1/devices/meter%E2%3A7", token: api.reader)
            #expect(broken.status.code / 100 == 4)
            #expect(broken.errorMessage?.contains("id") == true)
            #expect(broken.errorMessage?.contains("percent-encoding") == true)
            #expect(try await api.call(.delete, "/v1/devices/meter%3A7", token: api.operator).status == .noContent)
            #expect(try await api.call(.get, "/v1/devices/meter:7", token: api.reader).status == .notFound)
        }
    }

    @Test("patch changes only what it names; attributes merge and null removes", arguments: TestDatabase.allCases)
    func patch(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            _ = try await api.call(
                .post, "/v1/devices", token: api.operator,
                json: #"{"id":"d1","name":"One","labels":["a"],"attributes":{"floor":"1","room":"9"}}"#
            )
            let renamed = try await api.call(.patch, "/v1/devices/d1", token: api.operator, json: #"{"name":"Uno"}"#)
            #expect(renamed.json?["name"] as? String == "Uno")
            #expect(renamed.json?["labels"] as? [String] == ["a"])
            let merged = try await api.call(
                .patch, "/v1/devices/d1", token: api.operator, json: #"{"attributes":{"floor":"2","room":null,"wing":"E"},"labels":["b"]}"#
            )
            #expect(merged.json?["attributes"] as? [String: String] == ["floor": "2", "wing": "E"])
            #expect(merged.json?["labels"] as? [String] == ["b"])
            #expect(try await api.call(.get, "/v1/devices?label=a", token: api.reader).items.isEmpty)
            #expect(try await api.call(.get, "/v1/devices?label=b", token: api.reader).items.count == 1)
            // A patch that changes nothing records nothing.
            _ = try await api.call(.patch, "/v1/devices/d1", token: api.operator, json: #"{"name":"Uno"}"#)
            let updates = try await api.call(.get, "/v1/events?type=device.updated", token: api.reader).items
            #expect(updates.count == 2)
            #expect((updates.first?["data"] as? [String: Any])?["fields"] as? [String] == ["labels", "attributes"])
        }
    }

    @Test("delete removes the device; its events stay", arguments: TestDatabase.allCases)
    func delete(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("d1")
            #expect(try await api.call(.delete, "/v1/devices/d1", token: api.operator).status == .noContent)
            #expect(try await api.call(.get, "/v1/devices/d1", token: api.reader).status == .notFound)
            #expect(try await api.call(.delete, "/v1/devices/d1", token: api.operator).status == .notFound)
            let events = try await api.call(.get, "/v1/events?deviceId=d1", token: api.reader).items.compactMap { $0["type"] as? String }
            #expect(events == ["device.deleted", "device.created"])
            // The id is free again.
            try await api.createDevice("d1")
        }
    }

    @Test("paging walks every device exactly once, with filters", arguments: TestDatabase.allCases)
    func paging(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            for index in 0..<7 {
                try await api.createDevice(String(format: "dev-%02d", index), labels: index.isMultiple(of: 2) ? ["even"] : ["odd"])
            }
            for index in [0, 1, 2] {
                _ = try await api.call(.post, String(format: "/v1/devices/dev-%02d/accept", index), token: api.operator)
            }
            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let path = "/v1/devices?limit=3" + (cursor.map { "&cursor=\($0)" } ?? "")
                let reply = try await api.call(.get, path, token: api.reader)
                #expect(reply.json?.keys.contains("nextCursor") == true)
                seen += reply.items.compactMap { $0["id"] as? String }
                cursor = reply.json?["nextCursor"] as? String
                pages += 1
            } while cursor != nil && pages < 10
            #expect(seen == (0..<7).map { String(format: "dev-%02d", $0) })
            #expect(pages == 3)
            let even = try await api.call(.get, "/v1/devices?label=even", token: api.reader).items.compactMap { $0["id"] as? String }
            #expect(even == ["dev-00", "dev-02", "dev-04", "dev-06"])
            let accepted = try await api.call(.get, "/v1/devices?status=accepted&label=odd", token: api.reader).items
            #expect(accepted.compactMap { $0["id"] as? String } == ["dev-01"])
        }
    }

    @Test("every change is an event, filterable by device and type and paged newest first", arguments: TestDatabase.allCases)
    func events(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("d1")
            try await api.createDevice("d2")
            _ = try await api.call(.post, "/v1/devices/d1/accept", token: api.operator)
            _ = try await api.call(.patch, "/v1/devices/d1", token: api.operator, json: #"{"name":"renamed"}"#)
            _ = try await api.call(.post, "/v1/devices/d1/reject", token: api.operator)
            let d1 = try await api.call(.get, "/v1/events?deviceId=d1", token: api.reader).items
            #expect(d1.compactMap { $0["type"] as? String } == ["device.rejected", "device.updated", "device.accepted", "device.created"])
            #expect(d1.allSatisfy { ($0["actor"] as? String)?.hasPrefix("token:tok_") == true })
            #expect(d1.allSatisfy { $0["createdAt"] is String && $0["id"] is String })
            let created = try await api.call(.get, "/v1/events?type=device.created", token: api.reader).items
            #expect(created.compactMap { $0["deviceId"] as? String } == ["d2", "d1"])

            var types: [String] = []
            var cursor: String?
            repeat {
                let reply = try await api.call(.get, "/v1/events?limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), token: api.reader)
                types += reply.items.compactMap { $0["type"] as? String }
                cursor = reply.json?["nextCursor"] as? String
            } while cursor != nil && types.count < 50
            let everything = try await api.call(.get, "/v1/events?limit=500", token: api.reader).items.compactMap { $0["type"] as? String }
            #expect(types == everything)
            #expect(everything.count == 8) // the harness's 3 token.created in this tenant + 5 device events
        }
    }
}
