import AWS
import AWSIoT
import Backoff
import Foundation
import Logging
import Metrics
import Store
import Synchronization

/// Publishes the outbox to AWS IoT (iot-data Publish over HTTPS, QoS 1), many devices at once
/// and many messages of each device at once, each message removed only after AWS accepted it.
///
/// Order: AWS's data endpoint speaks HTTP/1.1 only, one request at a time per connection, so
/// publishes in flight together travel on separate connections and AWS takes them in whatever
/// order they reach it (moto, given 40 messages of one device 64 at a time, took a third of them
/// out of order). By default (``Configuration/window`` 1) a device's next message goes once AWS
/// accepted the one before: AWS takes each device's messages in order, including after a
/// failure, and throughput comes from many devices at once. With a window of N, up to N of a
/// device's messages are in flight, sent in order; AWS may take them up to N - 1 places out of
/// order, and after a failure, what AWS took of the window is not sent again and what failed is
/// sent again before anything newer.
///
/// Fairness: each integration has its own in-flight slots and its own share of the running
/// queues, and a circuit breaker (``IntegrationLane``): an endpoint that hangs or fails holds its
/// own messages back, never another integration's.
public final class UplinkForwarder: Sendable {
    /// How long a device's queue is held after AWS failed it: 0.5 s, doubling to a minute.
    static let retryBackoff = Backoff(first: 0.5, maximum: 60, jitter: 1...1)

    public struct Configuration: Sendable {
        /// Device queues forwarded at once, across integrations.
        public var concurrency: Int
        /// Messages read from the store at a time, per device.
        public var batch: Int
        /// Publishes of one device in flight at once; 1 keeps each device's order in AWS.
        public var window: Int
        /// Publishes of one integration in flight at once.
        public var slotsPerIntegration: Int
        /// The longest an idle forwarder sleeps before looking again.
        public var pollInterval: TimeInterval

        public init(concurrency: Int = 256, batch: Int = 256, window: Int = 1, slotsPerIntegration: Int = 512, pollInterval: TimeInterval = 1) {
            self.concurrency = concurrency
            self.batch = batch
            self.window = window
            self.slotsPerIntegration = slotsPerIntegration
            self.pollInterval = pollInterval
        }
    }

    typealias QueueKey = UplinkQueueKey

    private struct State {
        var running: Set<QueueKey> = []
        var runningPerIntegration: [String: Int] = [:]
        /// Queues waiting after a failure, until then.
        var held: [QueueKey: ContinuousClock.Instant] = [:]
        var failures: [QueueKey: Int] = [:]
        var lanes: [String: IntegrationLane] = [:]
    }

    /// What became of one publish.
    private enum PublishOutcome: Sendable {
        case taken
        /// AWS would refuse it however often it is sent.
        case refused(String)
        case failed(any Error)
    }

    let hub: Hub
    let configuration: Configuration
    let logger: Logger
    private let state = Mutex(State())
    private let publishTime = Timer(label: "conduit_uplink_publish_seconds")
    private let published = Counter(label: "conduit_uplink_published_total")

    public init(hub: Hub, configuration: Configuration = Configuration()) {
        self.hub = hub
        self.configuration = configuration
        self.logger = hub.logger
    }

    /// Forwards until cancelled.
    public func run() async {
        _ = await self.dispatch(stopWhenEmpty: false, deadline: nil)
    }

    /// Forwards until the outbox is empty (queues held after a failure are waited for) or
    /// `timeout` passes; true when it emptied. For the CLI, benchmarks and tests.
    @discardableResult
    public func drain(timeout: Duration = .seconds(60)) async -> Bool {
        await self.dispatch(stopWhenEmpty: true, deadline: ContinuousClock.now + timeout)
    }

    private func lane(_ integrationID: String) -> IntegrationLane {
        self.state.withLock { state in
            if let lane = state.lanes[integrationID] { return lane }
            let lane = IntegrationLane(integrationID: integrationID, slots: self.configuration.slotsPerIntegration)
            state.lanes[integrationID] = lane
            return lane
        }
    }

    /// Starts device queues as they get work: those ingest marks as it commits, and those a read
    /// of the outbox finds (at start, then once a ``Configuration/pollInterval``, for rows no mark
    /// told of).
    private func dispatch(stopWhenEmpty: Bool, deadline: ContinuousClock.Instant?) async -> Bool {
        // Counted before the first removal, or the count would miss it (ingest counts before it adds).
        try? await self.hub.uplinkBacklog.load(from: self.hub.store)
        var cursor: (integrationID: String, deviceID: String)?
        var lastRecount = ContinuousClock.now
        var nextScan = ContinuousClock.now
        return await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                if let deadline, ContinuousClock.now >= deadline { return false }
                let generation = self.hub.uplinkDoorbell.generation
                if ContinuousClock.now - lastRecount > .seconds(60) {
                    // Another node's forwarding, a deleted integration's rows: the count follows the store.
                    lastRecount = ContinuousClock.now
                    try? await self.hub.uplinkBacklog.recount(from: self.hub.store)
                }
                var candidates = self.hub.uplinkMarks.snapshot()
                var scanned = false
                let idle = self.state.withLock { $0.running.isEmpty }
                if ContinuousClock.now >= nextScan || (stopWhenEmpty && candidates.isEmpty && idle) {
                    scanned = true
                    do {
                        let page = self.configuration.concurrency * 4
                        var queues = try await self.hub.store.session.outbox.queues(after: cursor, limit: page)
                        if queues.isEmpty && cursor != nil {
                            // The end of the round: the next starts from the beginning, now.
                            queues = try await self.hub.store.session.outbox.queues(after: nil, limit: page)
                        }
                        cursor = queues.count == page ? queues.last : nil
                        var known = Set(candidates)
                        for queue in queues {
                            let key = QueueKey(integrationID: queue.integrationID, deviceID: queue.deviceID)
                            if known.insert(key).inserted { candidates.append(key) }
                        }
                    } catch {
                        self.logger.warning("cannot read the uplink outbox", metadata: ["error": "\(error)"])
                    }
                    // A full page goes on with the next at once.
                    nextScan = ContinuousClock.now + (cursor == nil ? .seconds(self.configuration.pollInterval) : .zero)
                }
                // Each integration with work is read once for all its queues of this round.
                var integrations: [String: Integration] = [:]
                var gone: [QueueKey] = []
                for integrationID in Set(candidates.map(\.integrationID)) {
                    do {
                        if let integration = try await self.hub.store.session.integrations.get(id: integrationID),
                            integration.active, integration.status == .active
                        {
                            integrations[integrationID] = integration
                        } else {
                            // Deleted, paused or being deleted: nothing goes out. A resumed
                            // integration's queues are found by the next read of the outbox.
                            gone += candidates.filter { $0.integrationID == integrationID }
                        }
                    } catch {
                        self.logger.warning("cannot read an integration", metadata: [LogKey.integrationID: "\(integrationID)", "error": "\(error)"])
                    }
                }
                // Another node's shards: that node forwards them (and finds them in the outbox).
                let shards = self.hub.uplinkShards
                gone += candidates.filter { integrations[$0.integrationID] != nil && !shards.holds(deviceID: $0.deviceID) }
                if !gone.isEmpty {
                    self.hub.uplinkMarks.unmark(gone)
                    let skipped = Set(gone)
                    candidates.removeAll { skipped.contains($0) }
                }
                let now = ContinuousClock.now
                // Each integration with work gets an equal share of the running queues.
                let share = max(1, self.configuration.concurrency / max(1, integrations.count))
                let lanes = Dictionary(uniqueKeysWithValues: integrations.keys.map { ($0, self.lane($0)) })
                let started: [QueueKey] = self.state.withLock { state in
                    // A hold that is over is no hold (and a queue that is gone, paused or drained
                    // elsewhere, must not keep its past hold as the next wake-up).
                    state.held = state.held.filter { $0.value > now }
                    var started: [QueueKey] = []
                    for key in candidates where state.running.count < self.configuration.concurrency {
                        guard integrations[key.integrationID] != nil, !state.running.contains(key), state.held[key] == nil,
                            state.runningPerIntegration[key.integrationID, default: 0] < share,
                            lanes[key.integrationID]?.mayStart(now: now) ?? true
                        else { continue }
                        state.running.insert(key)
                        state.runningPerIntegration[key.integrationID, default: 0] += 1
                        shards.began(deviceID: key.deviceID)
                        started.append(key)
                    }
                    return started
                }
                // A queue running already keeps its mark: what came after its read goes next time.
                self.hub.uplinkMarks.unmark(started)
                for key in started {
                    guard let integration = integrations[key.integrationID] else { continue }
                    group.addTask {
                        let again = await self.forward(key, integration: integration)
                        shards.ended(deviceID: key.deviceID)
                        self.state.withLock { state in
                            _ = state.running.remove(key)
                            state.runningPerIntegration[key.integrationID, default: 1] -= 1
                        }
                        // Held after a failure: it goes again when the hold is over.
                        if again { self.hub.uplinkMarks.mark([key]) }
                        self.hub.uplinkDoorbell.ring()
                    }
                }
                let running = self.state.withLock { $0.running.count }
                if stopWhenEmpty && scanned && candidates.isEmpty && running == 0 { return true }
                if started.count < candidates.count || started.isEmpty {
                    // Wait for a queue to end, new messages, the next read of the outbox, or the
                    // next hold or breaker to lapse.
                    let wakeUps = self.state.withLock { state in Array(state.held.values) } + lanes.values.compactMap(\.openUntil) + [nextScan]
                    var wait = Duration.seconds(self.configuration.pollInterval)
                    if let next = wakeUps.min() { wait = min(wait, max(.milliseconds(10), next - ContinuousClock.now)) }
                    await self.hub.uplinkDoorbell.wait(since: generation, timeout: wait)
                }
            }
            return false
        }
    }

    /// Publishes one device's queued messages for one integration, oldest first and up to
    /// ``Configuration/window`` at once, until the queue is empty or a publish fails (then the
    /// queue is held back for a while). Returns true when the queue is held and is to go again.
    ///
    /// A run reads the queue until a read comes back short: a message stored after that read
    /// marks the queue again (ingest marks it when it commits), and the queue runs again.
    private func forward(_ key: QueueKey, integration: Integration) async -> Bool {
        let session = self.hub.store.session
        let lane = self.lane(key.integrationID)
        defer { lane.probeEnded() }
        // The device's record is read only when the topic or the body shows it.
        let needsDevice = integration.settings.payloadFormat == "envelope" || integration.settings.uplinkTopic.contains("{deviceName}")
        do {
            let client = try self.hub.connections.dataClient(for: integration)
            var device: Device?
            var loadedDevice = false
            var after: Int?
            var buffer: [OutboxMessage] = []
            var next = 0
            var exhausted = false
            var failure: (any Error)?
            var refused: [(OutboxMessage, String)] = []
            // What AWS took is removed a batch at a time, by this run, which waits for the last
            // removal before it ends: a crash may send up to a batch again, which at-least-once
            // allows; it never loses one, and no later run reads a message already sent.
            var taken: [OutboxMessage] = []
            var removal: Task<Void, any Error>?
            var succeeded = false
            await withTaskGroup(of: (OutboxMessage, PublishOutcome).self) { group in
                var inFlight = 0
                while true {
                    // A shard this node is letting go of, or whose lease it could not renew: no
                    // more is read; what is in flight finishes, and the next holder goes on.
                    if !exhausted, next == buffer.count, !self.hub.uplinkShards.holds(deviceID: key.deviceID) { exhausted = true }
                    if failure == nil, !exhausted, next == buffer.count, !Task.isCancelled {
                        do {
                            buffer = try await session.outbox.next(
                                integrationID: key.integrationID, deviceID: key.deviceID, after: after, limit: self.configuration.batch
                            )
                            next = 0
                            if let last = buffer.last { after = last.sequence }
                            exhausted = buffer.count < self.configuration.batch
                            if needsDevice, !loadedDevice, let first = buffer.first {
                                device = try await session.devices.get(tenantID: first.tenantID, id: key.deviceID)
                                loadedDevice = true
                            }
                        } catch {
                            failure = error
                        }
                    }
                    while failure == nil, inFlight < self.configuration.window, next < buffer.count {
                        let message = buffer[next]
                        next += 1
                        let rendered: (topic: String, body: [UInt8])
                        do {
                            rendered = try UplinkFormat.render(message, device: device, settings: integration.settings, integrationID: integration.id)
                        } catch {
                            refused.append((message, "\(error)"))
                            continue
                        }
                        await lane.acquire()
                        inFlight += 1
                        group.addTask {
                            defer { lane.release() }
                            let started = ContinuousClock.now
                            do {
                                try await client.publish(topic: rendered.topic, payload: rendered.body, qos: 1)
                                self.publishTime.record(duration: ContinuousClock.now - started)
                                return (message, .taken)
                            } catch let error as AWSIoTValidationError {
                                return (message, .refused(error.description))
                            } catch {
                                return (message, .failed(error))
                            }
                        }
                    }
                    guard inFlight > 0, let (message, outcome) = await group.next() else { break }
                    inFlight -= 1
                    switch outcome {
                    case .taken:
                        taken.append(message)
                        if lane.succeeded() {
                            // The endpoint is back: the integration's other queues, held while it
                            // was away (for up to a minute), go now.
                            self.state.withLock { state in
                                state.held = state.held.filter { $0.key.integrationID != key.integrationID }
                                state.failures = state.failures.filter { $0.key.integrationID != key.integrationID }
                            }
                            self.hub.uplinkDoorbell.ring()
                        }
                        self.published.increment()
                        if !succeeded {
                            // One that went through ends the run of failures (once, not per message).
                            succeeded = true
                            self.state.withLock { _ = $0.failures.removeValue(forKey: key) }
                        }
                    case .refused(let reason):
                        refused.append((message, reason))
                    case .failed(let error):
                        if failure == nil { failure = error }
                        lane.failed(now: ContinuousClock.now)
                    }
                    if taken.count >= self.configuration.batch {
                        let batch = taken
                        taken = []
                        let previous = removal
                        removal = Task {
                            try await previous?.value
                            try await self.remove(batch)
                        }
                    }
                }
            }
            try await removal?.value
            try await self.remove(taken)
            for (message, reason) in refused {
                // AWS would refuse it however often it is sent (too large, a topic over AWS's
                // limits): it is recorded and let go, so the device's queue goes on.
                try await self.drop(message, reason: reason)
            }
            if let failure { throw failure }
            return false
        } catch {
            if Task.isCancelled { return false }
            Counter(label: "conduit_uplink_failed_total").increment()
            let failures = self.state.withLock { state -> Int in
                state.failures[key, default: 0] += 1
                return state.failures[key]!
            }
            // 0.5 s, doubling to a minute: an AWS outage delays messages, it loses none.
            let delay = Self.retryBackoff.seconds(afterFailures: failures)
            self.hold(key, for: .milliseconds(Int(delay * 1000)))
            self.logger.notice(
                "uplink publish failed; holding the device's queue",
                metadata: [LogKey.deviceID: "\(key.deviceID)", LogKey.integrationID: "\(key.integrationID)", "error": "\(error)", "conduit.retry_in": "\(delay)"]
            )
            return true
        }
    }

    /// Removes the messages AWS took (exactly those: on PostgreSQL a lower sequence may commit
    /// after a higher one was read).
    private func remove(_ messages: [OutboxMessage]) async throws {
        guard let integrationID = messages.first?.integrationID else { return }
        // In ingest's next group commit: no flush of its own.
        let removed = try await self.hub.ingest.removeFromOutbox(messages.map(\.sequence))
        self.hub.uplinkBacklog.removed(removed, from: integrationID)
    }

    private func hold(_ key: QueueKey, for duration: Duration) {
        self.state.withLock { $0.held[key] = ContinuousClock.now + duration }
    }

    private func drop(_ message: OutboxMessage, reason: String) async throws {
        Counter(label: "conduit_uplink_dropped_total").increment()
        self.logger.warning(
            "uplink message AWS cannot take; dropped", metadata: [LogKey.deviceID: "\(message.deviceID)", "error": "\(reason)"]
        )
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            _ = try await session.outbox.delete(sequences: [message.sequence])
            try await session.events.append(
                tenantID: message.tenantID, type: EventType.uplinkDropped, deviceID: message.deviceID, actor: "system",
                data: EventLog.json(["integrationId": message.integrationID, "reason": reason, "topic": message.topic]), at: now
            )
        }
        self.hub.uplinkBacklog.removed(1, from: message.integrationID)
    }
}

/// How an outbox message goes to AWS: its topic from the integration's template, its body raw or
/// as Conduit's JSON envelope.
enum UplinkFormat {
    /// The AWS topic and body of a message.
    static func render(_ message: OutboxMessage, device: Device?, settings: IntegrationSettings, integrationID: String) throws -> (String, [UInt8]) {
        if let awsTopic = message.awsTopic {
            // A rule's publish: its topic and payload as the rule made them.
            try AWSIoTValidation.publishTopic(awsTopic, field: "topic")
            let body = Array(message.payload)
            try AWSIoTValidation.payload(body)
            return (awsTopic, body)
        }
        let topic = self.topic(settings.uplinkTopic, deviceID: message.deviceID, deviceName: device?.name ?? message.deviceID, mqttTopic: message.topic)
        try AWSIoTValidation.publishTopic(topic, field: "uplinkTopic")
        let body: [UInt8]
        if settings.payloadFormat == "envelope" {
            body = try self.envelope(message, device: device, integrationID: integrationID)
        } else {
            body = Array(message.payload)
        }
        try AWSIoTValidation.payload(body)
        return (topic, body)
    }

    /// The template with `{deviceId}`, `{deviceName}` (MQTT's special characters made `_`) and
    /// `{subtopic}` (what follows `devices/{id}/`) filled in.
    /// Works on UTF-8 bytes in one pass: it runs for every message forwarded.
    static func topic(_ template: String, deviceID: String, deviceName: String, mqttTopic: String) -> String {
        let prefix = "devices/\(deviceID)/"
        let subtopic = mqttTopic.utf8.starts(with: prefix.utf8) ? mqttTopic.utf8.dropFirst(prefix.utf8.count) : mqttTopic.utf8.prefix(0)
        let template = Array(template.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(template.count + deviceID.utf8.count + subtopic.count)
        var index = 0
        while index < template.count {
            if template[index] == UInt8(ascii: "{") {
                let rest = template[index...]
                if rest.starts(with: "{deviceId}".utf8) {
                    out.append(contentsOf: deviceID.utf8)
                    index += 10
                    continue
                }
                if rest.starts(with: "{subtopic}".utf8) {
                    out.append(contentsOf: subtopic)
                    index += 10
                    continue
                }
                if rest.starts(with: "{deviceName}".utf8) {
                    for character in deviceName {
                        if "/+#$".contains(character) || character.isNewline || character == "\0" {
                            out.append(UInt8(ascii: "_"))
                        } else {
                            out.append(contentsOf: character.utf8)
                        }
                    }
                    index += 12
                    continue
                }
            }
            out.append(template[index])
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    struct Envelope: Encodable {
        let id: String
        let name: String
        let labels: [String]
        let attributes: [String: String]
        let topic: String
        let payload: String
        let payloadSize: Int
        let qos: Int
        let sequence: Int
        let receivedAt: String
        let integrationId: String
    }

    /// `2026-11-25T01:30:00.123Z`.
    static func timestamp(_ date: Date) -> String {
        date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func envelope(_ message: OutboxMessage, device: Device?, integrationID: String) throws -> [UInt8] {
        let envelope = Envelope(
            id: message.deviceID, name: device?.name ?? message.deviceID, labels: device?.labels ?? [], attributes: device?.attributes ?? [:],
            topic: message.topic, payload: message.payload.base64EncodedString(), payloadSize: message.payload.count, qos: message.qos,
            sequence: message.messageSequence, receivedAt: self.timestamp(message.receivedAt),
            integrationId: integrationID
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(envelope))
    }
}
