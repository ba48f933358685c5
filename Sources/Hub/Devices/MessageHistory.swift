import Foundation
import Logging
import MQTT
import MQTTBroker
import Metrics
import Store

/// What devices published: stored per device, newest kept.
public struct MessageHistory: Sendable {
    let hub: Hub

    /// Stores a message a device published, and appends it in the same transaction to the outbox
    /// of every integration that forwards the device's messages to AWS; the broker acknowledges
    /// it after this returns. When an integration's backlog is full, a QoS 1 or 2 message is
    /// refused (`.quotaExceeded`) rather than taken and dropped; a QoS 0 one is kept in the
    /// history but not sent to that integration.
    public func ingest(deviceID: String, message: MQTTBrokerMessage) async throws -> MQTTPublishVerdict {
        let session = self.hub.store.session
        guard let device = try await session.devices.get(id: deviceID) else { return .accepted }
        try await self.hub.uplinkBacklog.load(from: self.hub.store)
        let integrations = try await session.awsThings.uplinkIntegrationIDs(tenantID: device.tenantID, deviceID: deviceID)
        let full = Set(integrations.filter { self.hub.uplinkBacklog.isFull($0) })
        if !full.isEmpty && message.qos != .atMostOnce {
            Counter(label: "conduit_uplink_refused_total").increment()
            return .refused(.quotaExceeded)
        }
        // Decided once: a message let through goes to every integration, even one that filled up
        // meanwhile (the bound is a guard, not a wall); only QoS 0 skips a full one.
        let targets = message.qos == .atMostOnce ? integrations.filter { !full.contains($0) } : integrations
        let record = DeviceMessage(
            tenantID: device.tenantID, deviceID: deviceID, topic: message.topic,
            payload: Data(message.payload.readableBytesView), qos: Int(message.qos.rawValue), retain: message.retain,
            receivedAt: self.hub.now()
        )
        let keep = self.hub.messageHistoryLimit
        if targets.isEmpty {
            try await session.messages.append(record, keep: keep)
        } else {
            try await self.hub.store.transaction { session in
                let sequence = try await session.messages.append(record, keep: keep)
                for integrationID in targets {
                    try await session.outbox.append(
                        OutboxMessage(
                            tenantID: record.tenantID, integrationID: integrationID, deviceID: deviceID, messageSequence: sequence,
                            topic: record.topic, payload: record.payload, qos: record.qos, receivedAt: record.receivedAt
                        )
                    )
                }
            }
            for integrationID in targets { self.hub.uplinkBacklog.added(to: integrationID) }
            self.hub.uplinkDoorbell.ring()
        }
        self.hub.messageBells.ring(device.tenantID + "/" + deviceID)
        Counter(label: "conduit_messages_ingested_total").increment()
        return .accepted
    }

    /// The device's messages newer than `after`, oldest first; when there are none yet, waits up
    /// to `timeout` for one stored by this process (messages stored by another node on the same
    /// database show at the next call).
    public func next(deviceID: String, after: Int, timeout: Duration, by principal: Principal) async throws -> [DeviceMessage] {
        guard Validation.isDeviceID(deviceID) else { throw HubError.notFound("device", deviceID) }
        let bell = self.hub.messageBells.bell(principal.tenantID + "/" + deviceID)
        let generation = bell.generation
        let found = try await self.hub.store.session.messages.list(tenantID: principal.tenantID, deviceID: deviceID, after: after, limit: 100)
        guard found.isEmpty else { return found }
        await bell.wait(since: generation, timeout: timeout)
        return try await self.hub.store.session.messages.list(tenantID: principal.tenantID, deviceID: deviceID, after: after, limit: 100)
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
