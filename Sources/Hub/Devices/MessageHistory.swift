import Foundation
import Logging
import MQTT
import MQTTBroker
import MQTTClient
import Crypto
import Synchronization
import NIOCore
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

    /// Stores a message AWS IoT sent on one of an integration's ingest topics in the history of
    /// the device its topic names, marked `source: aws`; the rules see it; it is not forwarded to
    /// AWS again. Conduit's own uplink topics are never taken back (they would loop), and a QoS 1
    /// redelivery (DUP) of a message taken already is acknowledged without storing it again. A
    /// topic that names no device of the tenant is recorded (`aws.message_dropped`) and let go.
    func ingestFromAWS(_ message: MQTTClientMessage, integration: Integration, filters: [String]) async throws {
        let logger = self.hub.logger
        if TopicPattern(uplinkTemplate: integration.settings.uplinkTopic).sharesATopic(with: TopicPattern(topic: message.topic)) {
            self.hub.awsIngest.looped.increment()
            logger.notice("a message on the integration's own uplink topic came back from AWS: not taken", metadata: ["conduit.topic": "\(message.topic)"])
            return
        }
        guard let (deviceID, subtopic) = IngestTopics.device(in: message.topic, filters: filters) else { return }
        let key = AWSIngestMemory.Key(integrationID: integration.id, packetIdentifier: message.packetIdentifier, topic: message.topic, payload: message.payload)
        if message.duplicate, self.hub.awsIngest.memory.contains(key) {
            self.hub.awsIngest.duplicates.increment()
            return
        }
        let brokerMessage = MQTTBrokerMessage(topic: message.topic, payload: message.payload, qos: message.qos)
        let verdict: MQTTPublishVerdict = try await withCheckedThrowingContinuation { continuation in
            self.hub.ingest.submit(
                .init(
                    deviceID: deviceID, message: brokerMessage, receivedAt: self.hub.now(), completion: { continuation.resume(with: $0) },
                    origin: .init(tenantID: integration.tenantID, subtopic: subtopic)
                )
            )
        }
        if verdict == .accepted {
            self.hub.awsIngest.memory.remember(key)
            self.hub.awsIngest.taken.increment()
            return
        }
        self.hub.awsIngest.dropped.increment()
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            _ = try await session.events.append(
                tenantID: integration.tenantID, type: EventType.awsMessageDropped, deviceID: nil, actor: "aws:\(integration.id)",
                data: EventLog.json(["integrationId": integration.id, "topic": message.topic, "deviceId": deviceID, "reason": "no accepted device '\(deviceID)' in the tenant"]),
                at: now
            )
        }
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

/// Messages taken from AWS lately, to know a QoS 1 redelivery (DUP) of one from a new message
/// that happens to be alike: a redelivery carries the DUP flag and its first packet identifier.
final class AWSIngestMemory: Sendable {
    struct Key: Hashable, Sendable {
        var integrationID: String
        var packetIdentifier: UInt16?
        var digest: [UInt8]

        init(integrationID: String, packetIdentifier: UInt16?, topic: String, payload: ByteBuffer) {
            self.integrationID = integrationID
            self.packetIdentifier = packetIdentifier
            var hasher = SHA256()
            hasher.update(data: Array(topic.utf8) + [0])
            hasher.update(data: Array(payload.readableBytesView))
            self.digest = Array(hasher.finalize())
        }
    }

    /// How many are remembered: far more than a session's messages in flight.
    static let capacity = 4096
    private let state = Mutex<(keys: Set<Key>, order: [Key], next: Int)>(([], [], 0))

    func contains(_ key: Key) -> Bool { self.state.withLock { $0.keys.contains(key) } }

    func remember(_ key: Key) {
        self.state.withLock { state in
            guard state.keys.insert(key).inserted else { return }
            if state.order.count < Self.capacity {
                state.order.append(key)
            } else {
                state.keys.remove(state.order[state.next])
                state.order[state.next] = key
                state.next = (state.next + 1) % Self.capacity
            }
        }
    }
}

/// What came from AWS on ingest topics, with its counters in `/metrics`.
struct AWSIngest: Sendable {
    let memory = AWSIngestMemory()
    let taken = Counter(label: "conduit_aws_ingest_total", dimensions: [("outcome", "taken")])
    let dropped = Counter(label: "conduit_aws_ingest_total", dimensions: [("outcome", "unknown_device")])
    let looped = Counter(label: "conduit_aws_ingest_total", dimensions: [("outcome", "own_uplink")])
    let duplicates = Counter(label: "conduit_aws_ingest_total", dimensions: [("outcome", "duplicate")])
}
