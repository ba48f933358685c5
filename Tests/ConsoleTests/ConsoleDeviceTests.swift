import ConduitTesting
import Foundation
import Hub
import Hummingbird
import Store
import Testing

/// The device pages' forms over the router: what an operator does, and what they see afterwards.
@Suite("Console device pages")
struct ConsoleDeviceTests {
    @Test("search, filters and paging find devices; the list shows AWS state and last message", arguments: TestDatabase.allCases)
    func list(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            for index in 0..<60 {
                _ = try await console.hub.devices.create(
                    .init(id: String(format: "dev-%03d", index), name: index == 42 ? "Boiler_Room 100%" : "Sensor \(index)", labels: index % 2 == 0 ? ["even"] : []),
                    by: cli
                )
            }
            _ = try await console.hub.devices.perform(.accept, on: "dev-007", by: cli)
            let browser = try await console.signedIn("ops@example.com")
            let first = try await console.get("/devices", as: browser)
            #expect(first.body.components(separatedBy: "<tr data-device-id=").count - 1 == 50)
            let next = try #require(first.body.range(of: #"id="next-page""#).flatMap { _ in
                first.body.range(of: #"<a href="([^"]+)" id="next-page""#, options: .regularExpression).map { String(first.body[$0]) }
            })
            let href = try #require(next.split(separator: "\"").dropFirst().first).replacingOccurrences(of: "&amp;", with: "&")
            let second = try await console.get(href, as: browser)
            #expect(second.body.components(separatedBy: "<tr data-device-id=").count - 1 == 10)
            #expect(second.body.contains(#"data-device-id="dev-059""#) && !second.body.contains(#"data-device-id="dev-000""#))

            // By name, either case, with LIKE's wildcards taken as themselves; by id prefix.
            let byName = try await console.get("/devices?q=room%20100%25", as: browser)
            #expect(byName.body.components(separatedBy: "<tr data-device-id=").count - 1 == 1)
            #expect(byName.body.contains(#"data-device-id="dev-042""#))
            #expect(try await console.get("/devices?q=_", as: browser).body.components(separatedBy: "<tr data-device-id=").count - 1 == 1)
            #expect(try await console.get("/devices?q=dev-01", as: browser).body.components(separatedBy: "<tr data-device-id=").count - 1 == 10)
            #expect(try await console.get("/devices?q=DEV-01", as: browser).body.components(separatedBy: "<tr data-device-id=").count - 1 == 10)
            let accepted = try await console.get("/devices?status=accepted", as: browser)
            #expect(accepted.body.components(separatedBy: "<tr data-device-id=").count - 1 == 1)
            let even = try await console.get("/devices?label=even&q=dev-00", as: browser)
            #expect(even.body.components(separatedBy: "<tr data-device-id=").count - 1 == 5)
            #expect(try await console.get("/devices?q=nothing-like-it", as: browser).body.contains("No devices match."))
        }
    }

    @Test("select many: each allowed one changes, each refused one is named", arguments: TestDatabase.allCases)
    func bulk(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            for id in ["a", "b", "c"] { _ = try await console.hub.devices.create(.init(id: id, name: id.uppercased()), by: cli) }
            _ = try await console.hub.devices.perform(.decommission, on: "c", by: cli)
            let browser = try await console.signedIn("ops@example.com")
            let token = try await console.csrf(of: browser)
            let reply = try await console.post("/devices/bulk", [("csrf", token), ("action", "accept"), ("ids", "a"), ("ids", "b"), ("ids", "c")], as: browser)
            #expect(reply.status == .seeOther)
            let page = try await console.get(reply.location ?? "/devices", as: browser)
            #expect(page.body.contains("2 accepted; 1 not: c: cannot accept a device that is decommissioned"))
            #expect(try await console.hub.devices.get("a", by: cli).status == .accepted)
            #expect(try await console.hub.devices.get("b", by: cli).status == .accepted)
            let none = try await console.post("/devices/bulk", [("csrf", token), ("action", "reject")], as: browser)
            #expect(try await console.get(none.location ?? "/devices", as: browser).body.contains("Select at least one device first."))
        }
    }

    @Test("editing a device sets its name, labels and attributes; an attribute taken out is removed; bad input is named and kept", arguments: TestDatabase.allCases)
    func edit(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            _ = try await console.hub.devices.create(.init(id: "d1", name: "D1", labels: ["old"], attributes: ["model": "b7", "floor": "2"]), by: cli)
            let browser = try await console.signedIn("ops@example.com")
            let token = try await console.csrf(of: browser)
            let saved = try await console.post(
                "/devices/d1/edit", [("csrf", token), ("name", "Boiler 7"), ("labels", "plant-a, boilers"), ("attributes", "model=b8\nserial = 123\n")], as: browser
            )
            #expect(saved.status == .seeOther)
            let device = try await console.hub.devices.get("d1", by: cli)
            #expect(device.name == "Boiler 7")
            #expect(device.labels == ["boilers", "plant-a"] || device.labels == ["plant-a", "boilers"])
            #expect(device.attributes == ["model": "b8", "serial": "123"])
            let bad = try await console.post("/devices/d1/edit", [("csrf", token), ("name", "Boiler 7"), ("labels", "ok"), ("attributes", "no equals sign")], as: browser)
            #expect(bad.status == .badRequest)
            #expect(bad.body.contains("attributes: line 1 must be key=value"))
            #expect(bad.body.contains("no equals sign"), "what was typed is kept")
            let badLabel = try await console.post("/devices/d1/edit", [("csrf", token), ("name", "x"), ("labels", "bad label!"), ("attributes", "")], as: browser)
            #expect(badLabel.status == .badRequest)
            #expect(badLabel.body.contains("labels"))
            #expect(try await console.hub.devices.get("d1", by: cli).name == "Boiler 7", "a refused edit changes nothing")
        }
    }

    @Test("the device page shows the enrolled TLS certificate's fingerprint, or that none is")
    func certificate() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let made = try await Subprocess.run([
            "sh", "-c",
            "cd '\(directory.path)' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout d1.key -out d1.pem -days 2 -subj /CN=d1 -addext basicConstraints=critical,CA:FALSE 2>/dev/null",
        ])
        #expect(made.status == 0, "\(made.stderr)")
        try await ConsoleHarness.run(.sqlite) { console in
            try await console.user("reader@example.com", role: .reader)
            let cli = try await console.cli()
            _ = try await console.hub.devices.create(.init(id: "d1", name: "D1"), by: cli)
            let browser = try await console.signedIn("reader@example.com")
            #expect(try await console.get("/devices/d1", as: browser).body.contains("none enrolled: the device logs in with its secret"))
            let pem = try String(contentsOf: directory.appendingPathComponent("d1.pem"), encoding: .utf8)
            let enrolled = try await console.hub.devices.enrollCertificate(.certificate(pem: pem), for: "d1", by: cli)
            let fingerprint = try #require(enrolled.device.certificate?.fingerprint)
            let page = try await console.get("/devices/d1", as: browser).body
            #expect(page.contains(fingerprint) && page.contains("CN=d1, enrolled, valid until"), "\(page)")
        }
    }

    @Test("a downlink written as text, base64 or hex queues those bytes; bad ones are named", arguments: TestDatabase.allCases)
    func downlinks(_ database: TestDatabase) async throws {
        try await ConsoleHarness.run(database) { console in
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            _ = try await console.hub.devices.create(.init(id: "d1", name: "D1"), by: cli)
            _ = try await console.hub.devices.perform(.accept, on: "d1", by: cli)
            let browser = try await console.signedIn("ops@example.com")
            let token = try await console.csrf(of: browser)
            for (payload, encoding) in [("héllo", "text"), ("AQID", "base64"), ("de ad BE ef", "hex")] {
                let reply = try await console.post(
                    "/devices/d1/downlinks", [("csrf", token), ("payload", payload), ("encoding", encoding), ("port", "7"), ("confirmed", "1")], as: browser
                )
                #expect(reply.status == .seeOther, "\(encoding)")
            }
            let queued = try await console.hub.downlinks.list(deviceID: "d1", by: cli)
            #expect(queued.map(\.payload) == [Data("héllo".utf8), Data([1, 2, 3]), Data([0xde, 0xad, 0xbe, 0xef])])
            #expect(queued.allSatisfy { $0.port == 7 && $0.confirmed })
            let page = try await console.get("/devices/d1", as: browser)
            #expect(page.body.contains("héllo") && page.body.contains("de ad be ef"))
            for (payload, encoding, port, message) in [
                ("zz", "hex", "", "payload: must be hex: pairs of 0-9 a-f"), ("***", "base64", "", "payload: must be base64"),
                ("x", "text", "300", "port: must be 0 to 255"), ("x", "text", "seven", "port: must be 0 to 255"),
            ] {
                let reply = try await console.post("/devices/d1/downlinks", [("csrf", token), ("payload", payload), ("encoding", encoding), ("port", port)], as: browser)
                #expect(reply.status == .badRequest)
                #expect(reply.body.contains(message), "\(message)")
            }
            #expect(try await console.hub.downlinks.list(deviceID: "d1", by: cli).count == 3)
            let cleared = try await console.post("/devices/d1/downlinks/clear", [("csrf", token)], as: browser)
            #expect(try await console.get(cleared.location ?? "/", as: browser).body.contains("3 downlinks removed from the queue."))
            #expect(try await console.hub.downlinks.list(deviceID: "d1", by: cli).isEmpty)
        }
    }

    @Test("messages show as text, JSON or hex, newest first")
    func messages() async throws {
        try await ConsoleHarness.run(.sqlite) { console in
            try await console.user("ops@example.com", role: .operator)
            let cli = try await console.cli()
            let device = try await console.hub.devices.create(.init(id: "d1", name: "D1"), by: cli).device
            for payload in [Data(#"{"b":1,"a":[true,null]}"#.utf8), Data([0x00, 0xff, 0x10])] {
                _ = try await console.hub.store.session.messages.append(
                    DeviceMessage(tenantID: device.tenantID, deviceID: "d1", topic: "devices/d1/up", payload: payload, qos: 1, retain: false, receivedAt: Date()),
                    keep: 10
                )
            }
            let browser = try await console.signedIn("ops@example.com")
            let json = try await console.get("/devices/d1", as: browser)
            let binary = try #require(json.body.range(of: "00 ff 10"))
            let pretty = try #require(json.body.range(of: "&quot;a&quot; : ["))
            #expect(binary.lowerBound < pretty.lowerBound, "newest first")
            let text = try await console.get("/devices/d1?payload=text", as: browser)
            #expect(text.body.contains("{&quot;b&quot;:1,&quot;a&quot;:[true,null]}"))
            let hex = try await console.get("/devices/d1?payload=hex", as: browser)
            #expect(hex.body.contains("7b 22 62 22 3a 31"))

        }
    }

    @Test("desired state edits become the smallest UpdateThingShadow: changed keys, removed keys as null, nested objects merged")
    func desiredPatch() {
        let old: [String: JSONValue] = ["led": .string("on"), "rate": .integer(5), "net": .object(["ssid": .string("a"), "dhcp": .bool(true)])]
        let new: [String: JSONValue] = ["led": .string("on"), "rate": .integer(6), "net": .object(["ssid": .string("a")]), "mode": .string("eco")]
        #expect(
            Shadows.desiredPatch(from: old, to: new)
                == ["rate": .integer(6), "net": .object(["dhcp": .null]), "mode": .string("eco")]
        )
        #expect(Shadows.desiredPatch(from: old, to: old).isEmpty)
        #expect(Shadows.desiredPatch(from: old, to: [:]) == ["led": .null, "rate": .null, "net": .null])
    }
}
