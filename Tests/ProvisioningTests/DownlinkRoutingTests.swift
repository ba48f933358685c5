import ConduitTesting
import Foundation
import Hub
import Store
import Testing

@Suite("Downlinks from AWS, into devices' queues")
struct DownlinkRoutingTests {
    @Test("a downlink from AWS is queued for its device; an unknown or unprovisioned device and malformed JSON are recorded and skipped")
    func routing() async throws {
        try await ProvisioningFixture.run(.sqlite) { fixture in
            let integration = try await fixture.createIntegration { $0.thingGroup = .some(nil) }
            let run = UUID().uuidString.prefix(6).lowercased()
            let device = "down-\(run)"
            try await fixture.createDevice(device)
            _ = try await fixture.hub.devices.perform(.accept, on: device, by: fixture.admin)
            try await fixture.createDevice("pending-\(run)")
            try await fixture.createDevice("elsewhere-\(run)", labels: ["other"])
            _ = try await fixture.hub.devices.perform(.accept, on: "elsewhere-\(run)", by: fixture.admin)
            let downlinks = fixture.hub.downlinks
            func receive(_ id: String, _ json: String) async throws -> Downlinks.Outcome {
                try await downlinks.receive(topic: "conduit/devices/\(id)/down", payload: Array(json.utf8), from: integration)
            }

            let queued = try await receive(device, #"{"payload_raw": "AQID", "confirmed": true, "port": 2}"#)
            guard case .queued(let downlink) = queued else { Issue.record("not queued: \(queued)"); return }
            #expect(downlink.payload == Data([1, 2, 3]))
            #expect(downlink.confirmed && downlink.port == 2)
            #expect(downlink.source == "aws:\(integration.id)")
            #expect(try await downlinks.list(deviceID: device, by: fixture.admin).map(\.payload) == [Data([1, 2, 3])])

            let skipped: [(String, String, String)] = [
                ("ghost-\(run)", #"{"payload_raw": "AQID"}"#, "no device 'ghost-\(run)' provisioned in this integration"),
                ("pending-\(run)", #"{"payload_raw": "AQID"}"#, "no device 'pending-\(run)' provisioned in this integration"),
                ("elsewhere-\(run)", #"{"payload_raw": "AQID"}"#, "no device 'elsewhere-\(run)' provisioned in this integration"),
                (device, "not json", "body: must be a JSON object"),
                (device, #"{"payload_raw": "***"}"#, "payload_raw: must be base64"),
                (device, #"{"confirmed": true}"#, "payload_raw: is required"),
                (device, #"{"payload_raw": "AQID", "port": "two"}"#, "port: has the wrong type"),
                (device, #"{"payload_raw": "AQID", "port": 999}"#, "port: must be 0 to 255"),
            ]
            for (id, json, reason) in skipped {
                #expect(try await receive(id, json) == .skipped(reason: reason), "\(id) \(json)")
            }
            let events = try await fixture.hub.events.list(
                filter: .init(type: EventType.downlinkSkipped), page: try PageRequest(limit: 50), by: fixture.admin
            )
            #expect(events.items.count == skipped.count)
            // Nothing skipped reached a queue; the good one is still there, alone.
            #expect(try await downlinks.list(deviceID: device, by: fixture.admin).count == 1)
            #expect(try await downlinks.list(deviceID: "pending-\(run)", by: fixture.admin).isEmpty)

            #expect(try await receive(device, #"{"clear_queue": true}"#) == .cleared(1))
            #expect(try await downlinks.list(deviceID: device, by: fixture.admin).isEmpty)
        }
    }
}
