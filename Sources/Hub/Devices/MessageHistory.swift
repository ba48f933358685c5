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
    /// of every integration that forwards the device's messages to AWS, in a group commit with
    /// whatever else arrived meanwhile; the verdict comes once that transaction committed.
    ///
    /// - A device that does not exist or is not accepted has its message refused (`.notAuthorized`).
    /// - When an integration's backlog is full, a QoS 1 or 2 message is refused (`.quotaExceeded`)
    ///   rather than taken and dropped; a QoS 0 one is kept in the history but not sent to that
    ///   integration.
    ///
    /// Messages submitted one after another are stored in that order, whether or not the first
    /// one's verdict came yet: the broker submits a client's messages as they arrive.
    public func submit(
        deviceID: String, message: MQTTBrokerMessage, completion: @escaping @Sendable (Result<MQTTPublishVerdict, any Error>) -> Void
    ) {
        self.hub.ingest.submit(.init(deviceID: deviceID, message: message, receivedAt: self.hub.now(), completion: completion))
    }

    /// ``submit(deviceID:message:completion:)``, waiting for the verdict.
    public func ingest(deviceID: String, message: MQTTBrokerMessage) async throws -> MQTTPublishVerdict {
        try await withCheckedThrowingContinuation { continuation in
            self.submit(deviceID: deviceID, message: message) { continuation.resume(with: $0) }
        }
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
