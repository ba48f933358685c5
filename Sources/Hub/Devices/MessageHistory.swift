import Foundation
import Logging
import MQTTBroker
import Metrics
import Store

/// What devices published: stored per device, newest kept.
public struct MessageHistory: Sendable {
    let hub: Hub

    /// Stores a message a device published; the broker acknowledges it after this returns.
    public func ingest(deviceID: String, message: MQTTBrokerMessage) async throws {
        guard let device = try await self.hub.store.session.devices.get(id: deviceID) else { return }
        let record = DeviceMessage(
            tenantID: device.tenantID, deviceID: deviceID, topic: message.topic,
            payload: Data(message.payload.readableBytesView), qos: Int(message.qos.rawValue), retain: message.retain,
            receivedAt: self.hub.now()
        )
        try await self.hub.store.session.messages.append(record, keep: self.hub.messageHistoryLimit)
        Counter(label: "conduit_messages_ingested_total").increment()
    }

    /// A page of a device's messages, newest first.
    public func list(deviceID: String, page: PageRequest, by principal: Principal) async throws -> Page<DeviceMessage> {
        _ = try await self.hub.devices.get(deviceID, by: principal)
        var before: Int?
        if let cursor = try page.decodedCursor() {
            guard let sequence = Int(cursor) else { throw HubError.invalidField("cursor", "must be a nextCursor returned by this list") }
            before = sequence
        }
        let fetched = try await self.hub.store.session.messages.list(
            tenantID: principal.tenantID, deviceID: deviceID, before: before, limit: page.limit + 1
        )
        return PageRequest.page(fetched, limit: page.limit) { String($0.sequence) }
    }
}
