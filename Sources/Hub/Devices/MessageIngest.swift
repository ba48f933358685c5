import AWSIoT
import Foundation
import MQTT
import MQTTBroker
import Metrics
import Store
import Synchronization

/// Takes device messages into the store in group commits: every message that arrives while one
/// transaction commits goes into the next, up to a bound, so the disk's flush is paid once per
/// batch, not once per message. Each message's verdict comes when its own transaction has
/// committed; messages are stored in the order they were submitted, so a client's order holds.
///
/// The forwarder's removals of what AWS took ride in the same transactions
/// (``removeFromOutbox(_:)``): a removal costs no flush of its own, and never waits in SQLite's
/// busy handler behind a commit.
///
/// Ingest routes from memory (``DeviceRoute`` per device, read from the store on first sight);
/// each batch reads the store's routing generation, one number, and forgets what it knew when
/// another writer changed a device, a binding or an integration.
final class MessageIngest: Sendable {
    /// One message waiting for the next commit.
    struct Pending: Sendable {
        var deviceID: String
        var message: MQTTBrokerMessage
        var receivedAt: Date
        var completion: @Sendable (Result<MQTTPublishVerdict, any Error>) -> Void
        /// Set for a message taken from AWS on an ingest topic: kept and seen by the rules, never
        /// forwarded to AWS again.
        var origin: AWSOrigin? = nil
    }

    /// Where a message from AWS came from: the integration's tenant, and its rules' subtopic.
    struct AWSOrigin: Sendable {
        var tenantID: String
        var subtopic: String
    }

    /// Outbox rows AWS took, to remove in the next commit.
    struct Removal: Sendable {
        var sequences: [Int]
        var completion: @Sendable (Result<Int, any Error>) -> Void
    }

    /// What one transaction writes.
    private struct Batch {
        var messages: [Pending]
        var removals: [Removal]
    }

    /// At most this many messages, and this many payload bytes, in one transaction.
    static let maximumBatch = 512
    static let maximumBatchBytes = 4 << 20
    /// Devices' rule states kept in memory at most.
    static let maximumRememberedRuleStates = 200_000

    private struct State {
        var pending: [Pending] = []
        var removals: [Removal] = []
        var writing = false
        /// What ingest knows of devices, as of `generation`; a known-absent device maps to nil.
        var routes: [String: DeviceRoute?] = [:]
        var generation: Int?
        /// Messages stored per device since its history was last trimmed.
        var sinceTrim: [String: Int] = [:]
        /// The enabled rules, as of `generation`.
        var rules: RuleSet?
        /// Devices' states in rules as the store holds them, as of `generation` (ingest is their
        /// only writer; a rule's change or deletion, and a device's deletion, move the generation),
        /// and how many states that is.
        var ruleStates: [String: DeviceRuleStates] = [:]
        var ruleStateCount = 0
    }

    private let store: SQLStore
    private let backlog: UplinkBacklog
    private let uplinkDoorbell: Doorbell
    private let webhookDoorbell: Doorbell
    private let uplinkMarks: UplinkQueueMarks
    private let messageBells: Doorbells
    private let historyLimit: Int
    let ruleCounters = RuleCounters()
    private let state = Mutex(State())
    private let batchSize = Recorder(label: "conduit_ingest_batch_messages")
    private let commitTime = Timer(label: "conduit_ingest_commit_seconds")
    private let ingested = Counter(label: "conduit_messages_ingested_total")
    private let refused = Counter(label: "conduit_uplink_refused_total")
    private let unforwardable = Counter(label: "conduit_uplink_unforwardable_total")

    /// Called after a commit with the devices that rules queued downlinks for.
    private let rulesQueuedDownlinks: @Sendable (Set<String>) -> Void

    init(
        store: SQLStore, backlog: UplinkBacklog, uplinkDoorbell: Doorbell, uplinkMarks: UplinkQueueMarks, messageBells: Doorbells, historyLimit: Int,
        webhookDoorbell: Doorbell = Doorbell(), rulesQueuedDownlinks: @escaping @Sendable (Set<String>) -> Void = { _ in }
    ) {
        self.webhookDoorbell = webhookDoorbell
        self.rulesQueuedDownlinks = rulesQueuedDownlinks
        self.store = store
        self.backlog = backlog
        self.uplinkDoorbell = uplinkDoorbell
        self.uplinkMarks = uplinkMarks
        self.messageBells = messageBells
        self.historyLimit = historyLimit
    }

    /// Queues a message for the next commit; `completion` is called once, from any thread.
    func submit(_ pending: Pending) {
        let start = self.state.withLock { state -> Bool in
            state.pending.append(pending)
            return Self.startWriting(&state)
        }
        if start { Task { await self.drain() } }
    }

    /// Removes these outbox rows in the next commit; returns how many were there.
    func removeFromOutbox(_ sequences: [Int]) async throws -> Int {
        guard !sequences.isEmpty else { return 0 }
        return try await withCheckedThrowingContinuation { continuation in
            let start = self.state.withLock { state -> Bool in
                state.removals.append(Removal(sequences: sequences, completion: { continuation.resume(with: $0) }))
                return Self.startWriting(&state)
            }
            if start { Task { await self.drain() } }
        }
    }

    /// True when the caller is to start the writer.
    private static func startWriting(_ state: inout State) -> Bool {
        guard !state.writing else { return false }
        state.writing = true
        return true
    }

    private func drain() async {
        while let batch = self.nextBatch() {
            await self.commit(batch)
        }
    }

    /// The oldest pending messages up to the bounds, and every removal waiting; nil (and the
    /// writer stops) when nothing waits.
    private func nextBatch() -> Batch? {
        self.state.withLock { state -> Batch? in
            guard !state.pending.isEmpty || !state.removals.isEmpty else {
                state.writing = false
                return nil
            }
            let removals = state.removals
            state.removals = []
            var count = 0
            var bytes = 0
            for pending in state.pending {
                guard count < Self.maximumBatch else { break }
                bytes += pending.message.payload.readableBytes
                // One message over the byte bound still goes, alone.
                if count > 0 && bytes > Self.maximumBatchBytes { break }
                count += 1
            }
            let messages = Array(state.pending.prefix(count))
            state.pending.removeFirst(count)
            return Batch(messages: messages, removals: removals)
        }
    }

    /// What one batch did, for after its commit.
    private struct Outcome: Sendable {
        var verdicts: [MQTTPublishVerdict] = []
        var outboxAdded: [String: Int] = [:]
        /// The devices that had a message stored, with their tenants.
        var tenantOfDevice: [String: String] = [:]
        /// The device queues that got outbox rows.
        var queues: Set<UplinkQueueKey> = []
        /// Rows each removal found, in the batch's order.
        var removed: [Int] = []
        /// Devices that rules queued downlinks for.
        var downlinkDevices: Set<String> = []
        /// Rule states as this batch leaves them, and the generation they were read at.
        var ruleStates: [String: DeviceRuleStates] = [:]
        var generation: Int?
        /// Webhook deliveries may have been queued (rules fired: their events may go to webhooks).
        var webhooksQueued = false
        /// What each rule did.
        var ruleTallies: [String: (counts: RuleCounts, metrics: RuleMetrics)] = [:]
    }

    private func commit(_ work: Batch) async {
        let started = ContinuousClock.now
        let batch = work.messages
        if !batch.isEmpty { self.batchSize.record(batch.count) }
        let outcome: Outcome
        do {
            try await self.backlog.load(from: self.store)
            outcome = try await self.store.transaction { session in
                var outcome = batch.isEmpty ? Outcome() : try await self.store(batch, in: session)
                // Every removal waiting, in one statement: each is a round trip on PostgreSQL.
                let found = try await session.outbox.deleteFinding(sequences: work.removals.flatMap(\.sequences))
                outcome.removed = work.removals.map { removal in removal.sequences.count { found.contains($0) } }
                return outcome
            }
        } catch {
            for pending in batch { pending.completion(.failure(error)) }
            for removal in work.removals { removal.completion(.failure(error)) }
            return
        }
        self.commitTime.record(duration: ContinuousClock.now - started)
        for (removal, count) in zip(work.removals, outcome.removed) { removal.completion(.success(count)) }
        for (integrationID, count) in outcome.outboxAdded { self.backlog.added(count, to: integrationID) }
        if !outcome.outboxAdded.isEmpty {
            self.uplinkMarks.mark(outcome.queues)
            self.uplinkDoorbell.ring()
        }
        for (device, tenantID) in outcome.tenantOfDevice { self.messageBells.ring(tenantID + "/" + device) }
        if !outcome.downlinkDevices.isEmpty { self.rulesQueuedDownlinks(outcome.downlinkDevices) }
        if outcome.webhooksQueued { self.webhookDoorbell.ring() }
        if !outcome.ruleTallies.isEmpty {
            self.ruleCounters.add(outcome.ruleTallies.mapValues(\.counts))
            for (counts, metrics) in outcome.ruleTallies.values { metrics.add(counts) }
        }
        if let generation = outcome.generation, !outcome.ruleStates.isEmpty {
            // Committed: the store holds these now.
            self.state.withLock { state in
                guard state.generation == generation else { return }
                // Bounded: past it, states are read from the store again as needed.
                for (deviceID, states) in outcome.ruleStates {
                    if state.ruleStateCount + states.count > Self.maximumRememberedRuleStates {
                        state.ruleStates.removeAll()
                        state.ruleStateCount = 0
                    }
                    let before = state.ruleStates.updateValue(states, forKey: deviceID)
                    state.ruleStateCount += states.count - (before?.count ?? 0)
                }
            }
        }
        var accepted = 0
        for (pending, verdict) in zip(batch, outcome.verdicts) {
            if verdict == .accepted { accepted += 1 }
            pending.completion(.success(verdict))
        }
        self.ingested.increment(by: accepted)
    }

    private func store(_ batch: [Pending], in session: StoreSession) async throws -> Outcome {
        let (routes, rules, generation) = try await self.routes(for: Set(batch.map(\.deviceID)), in: session)
        var outcome = Outcome()
        var records: [DeviceMessage] = []
        var routeOfRecord: [DeviceRoute] = []
        // A message from AWS: its rules' subtopic; nil for a device's own (under devices/{id}/).
        var subtopicOfRecord: [String?] = []
        // The messages each integration takes, by their index in `records`.
        var forwarded: [String: [Int]] = [:]
        // Counted as this batch adds to them, so that a batch cannot overfill a backlog.
        var added: [String: Int] = [:]
        let backlog = self.backlog
        for pending in batch {
            guard let route = routes[pending.deviceID] ?? nil, route.status == .accepted else {
                // Deleted, rejected or decommissioned since it connected: nothing of it is kept.
                outcome.verdicts.append(.refused(.notAuthorized))
                continue
            }
            let message = pending.message
            if let origin = pending.origin {
                // From AWS: only a device of the integration's own tenant (ids are global), and no outbox rows.
                guard route.tenantID == origin.tenantID else {
                    outcome.verdicts.append(.refused(.notAuthorized))
                    continue
                }
                records.append(
                    DeviceMessage(
                        tenantID: route.tenantID, deviceID: pending.deviceID, topic: message.topic, payload: Data(message.payload.readableBytesView),
                        qos: Int(message.qos.rawValue), retain: false, receivedAt: pending.receivedAt, source: "aws"
                    )
                )
                routeOfRecord.append(route)
                subtopicOfRecord.append(origin.subtopic)
                outcome.verdicts.append(.accepted)
                outcome.tenantOfDevice[pending.deviceID] = route.tenantID
                continue
            }
            if let refusal = Self.unforwardable(message, of: pending.deviceID, route: route) {
                self.unforwardable.increment()
                outcome.verdicts.append(.refused(refusal))
                continue
            }
            let full = route.targets.filter { backlog.isFull($0.integrationID, adding: added[$0.integrationID, default: 0]) }
            if !full.isEmpty && message.qos != .atMostOnce {
                self.refused.increment()
                outcome.verdicts.append(.refused(.quotaExceeded))
                continue
            }
            // A QoS 0 message is kept in the history but not sent to a full integration.
            for target in route.targets where !full.contains(target) {
                added[target.integrationID, default: 0] += 1
                forwarded[target.integrationID, default: []].append(records.count)
                outcome.queues.insert(UplinkQueueKey(integrationID: target.integrationID, deviceID: pending.deviceID))
            }
            records.append(
                DeviceMessage(
                    tenantID: route.tenantID, deviceID: pending.deviceID, topic: message.topic,
                    payload: Data(message.payload.readableBytesView), qos: Int(message.qos.rawValue), retain: message.retain,
                    receivedAt: pending.receivedAt
                )
            )
            routeOfRecord.append(route)
            subtopicOfRecord.append(nil)
            outcome.verdicts.append(.accepted)
            outcome.tenantOfDevice[pending.deviceID] = route.tenantID
        }
        // The rules each message reaches and the states they need, then their evaluation, in
        // memory, on another thread while the messages are inserted: only what fired is written
        // after them.
        var ruleInputs: [RuleEvaluator.Input] = []
        var recordOfInput: [Int] = []
        var reach = RuleEvaluator.Reach()
        if !rules.rules.isEmpty {
            for (index, record) in records.enumerated() where rules.rules[record.tenantID] != nil {
                ruleInputs.append(
                    RuleEvaluator.Input(
                        tenantID: record.tenantID, deviceID: record.deviceID, deviceName: routeOfRecord[index].name, labels: routeOfRecord[index].labels,
                        topic: record.topic, subtopic: subtopicOfRecord[index], payload: record.payload, receivedAt: record.receivedAt
                    )
                )
                recordOfInput.append(index)
            }
            if !ruleInputs.isEmpty {
                // The batch's devices' states only: memory is not copied, and stays unique for the merge after the commit.
                let known = self.state.withLock { state -> [String: DeviceRuleStates] in
                    guard state.generation == generation else { return [:] }
                    var known: [String: DeviceRuleStates] = [:]
                    for input in ruleInputs where known[input.deviceID] == nil {
                        if let states = state.ruleStates[input.deviceID] { known[input.deviceID] = states }
                    }
                    return known
                }
                reach = try await RuleEvaluator.reach(ruleInputs, rules: rules, in: session, known: known)
            }
        }
        async let plan = reach.isEmpty ? nil : RuleEvaluator.evaluate(reach, ruleInputs, rules: rules)
        let sequences = try await session.messages.append(records)
        // The outbox rows copy their message's row in the store: the payload is encoded and sent
        // to the database once.
        for (integrationID, indices) in forwarded {
            try await session.outbox.appendCopies(ofMessages: indices.map { sequences[$0] }, integrationID: integrationID)
        }
        // Webhooks that take every uplink, in the same commit: kept or lost with the messages.
        if !rules.uplinkWebhooks.isEmpty {
            var deliveries: [WebhookRepository.NewDelivery] = []
            for (index, record) in records.enumerated() {
                guard let webhooks = rules.uplinkWebhooks[record.tenantID] else { continue }
                let body = Self.uplinkBody(record, sequence: sequences[index])
                for webhookID in webhooks {
                    deliveries.append(
                        .init(
                            webhookID: webhookID, tenantID: record.tenantID, messageID: "msg_\(sequences[index])", deviceID: record.deviceID,
                            type: Webhooks.uplink, body: body, at: record.receivedAt
                        )
                    )
                }
            }
            if !deliveries.isEmpty {
                try await session.webhooks.enqueue(deliveries)
                outcome.webhooksQueued = true
            }
        }
        // The rules, after the messages and their outbox rows are written, in the same commit:
        // what they fire (outbox rows after the device's own, downlinks, events) and the states
        // they move are kept or lost with the messages.
        if let plan = await plan {
            let fired = try await RuleEvaluator.apply(
                plan, ruleInputs, sequences: recordOfInput.map { sequences[$0] }, rules: rules, in: session,
                isFull: { integrationID, adding in backlog.isFull(integrationID, adding: added[integrationID, default: 0] + adding) }
            )
            outcome.ruleStates = fired.states
            outcome.ruleTallies = fired.tallies
            outcome.webhooksQueued = outcome.webhooksQueued || fired.webhooksQueued || fired.tallies.values.contains { $0.counts.fired + $0.counts.actionFailures > 0 }
            outcome.generation = generation
            for (integrationID, count) in fired.outboxAdded { added[integrationID, default: 0] += count }
            outcome.queues.formUnion(fired.queues)
            outcome.downlinkDevices = fired.downlinkDevices
        }
        outcome.outboxAdded = added
        try await self.trimHistories(of: records, in: session)
        return outcome
    }

    /// An uplink as a webhook receives it: `{type: uplink, timestamp, data}`, the payload in
    /// base64 and, when it is, as text and as JSON.
    static func uplinkBody(_ record: DeviceMessage, sequence: Int) -> String {
        var data: [String: Any] = [
            "deviceId": record.deviceID, "topic": record.topic, "payload": record.payload.base64EncodedString(), "qos": record.qos,
            "sequence": sequence, "source": record.source ?? "device",
        ]
        if let text = String(data: record.payload, encoding: .utf8) {
            data["payloadText"] = text
            if let json = try? JSONSerialization.jsonObject(with: record.payload, options: [.fragmentsAllowed]) { data["payloadJson"] = json }
        }
        return WebhookBody.encode(type: Webhooks.uplink, at: record.receivedAt, data: data)
    }

    /// Why AWS could never take this message, as a reason code for the device; nil when it
    /// could. Refused now, it is neither stored nor acknowledged as if it would reach AWS. A
    /// payload over AWS IoT's 128 KiB is refused whether or not the device is bound yet: the
    /// hub takes what it could forward, so that binding a device later never finds a history
    /// it cannot send.
    static func unforwardable(_ message: MQTTBrokerMessage, of deviceID: String, route: DeviceRoute) -> MQTTReasonCode? {
        let size = message.payload.readableBytes
        guard size <= AWSIoTValidation.maximumPayloadSize else { return .implementationSpecificError }
        for target in route.targets {
            let topic = UplinkFormat.topic(target.uplinkTopic, deviceID: deviceID, deviceName: route.name, mqttTopic: message.topic)
            guard (try? AWSIoTValidation.publishTopic(topic)) != nil else { return .topicNameInvalid }
            // The envelope carries the payload in base64, with the device's name and topic: at least that much.
            let body = target.payloadFormat == "envelope" ? 4 * ((size + 2) / 3) + route.name.utf8.count + message.topic.utf8.count : size
            guard body <= AWSIoTValidation.maximumPayloadSize else { return .implementationSpecificError }
        }
        return nil
    }

    /// Each device's history is trimmed once per tenth of its length, not once per message: it
    /// holds its newest `messageHistoryLimit` messages, and up to a tenth more between trims.
    private func trimHistories(of records: [DeviceMessage], in session: StoreSession) async throws {
        let keep = self.historyLimit
        let every = max(1, keep / 10)
        var stored: [String: (tenantID: String, count: Int)] = [:]
        for record in records { stored[record.deviceID, default: (record.tenantID, 0)].count += 1 }
        let due = self.state.withLock { state -> [(deviceID: String, tenantID: String)] in
            var due: [(String, String)] = []
            for (deviceID, entry) in stored {
                let count = state.sinceTrim[deviceID, default: 0] + entry.count
                if count >= every {
                    due.append((deviceID, entry.tenantID))
                    state.sinceTrim[deviceID] = nil
                } else {
                    state.sinceTrim[deviceID] = count
                }
            }
            return due
        }
        for device in due {
            try await session.messages.trim(tenantID: device.tenantID, deviceID: device.deviceID, keep: keep)
        }
    }

    /// The routes of these devices: from memory while the store's routing generation is the one
    /// they were read at, from the store (one query for all that are missing) otherwise.
    private func routes(for deviceIDs: Set<String>, in session: StoreSession) async throws -> ([String: DeviceRoute?], RuleSet, Int) {
        let generation = try await session.routing.generation()
        var known: [String: DeviceRoute?] = [:]
        let (missing, cachedRules) = self.state.withLock { state -> ([String], RuleSet?) in
            if state.generation != generation {
                state.routes.removeAll(keepingCapacity: true)
                state.rules = nil
                state.ruleStates.removeAll()
                state.ruleStateCount = 0
                state.generation = generation
            }
            var missing: [String] = []
            for deviceID in deviceIDs {
                if let route = state.routes[deviceID] { known[deviceID] = .some(route) } else { missing.append(deviceID) }
            }
            return (missing, state.rules)
        }
        var rules = cachedRules
        if rules == nil {
            let loaded = try await RuleSet.load(from: session)
            rules = loaded
            self.state.withLock { state in if state.generation == generation { state.rules = loaded } }
        }
        guard !missing.isEmpty else { return (known, rules ?? .empty, generation) }
        let loaded = try await session.routing.routes(deviceIDs: missing)
        self.state.withLock { state in
            for deviceID in missing {
                let route = loaded[deviceID]
                known[deviceID] = .some(route)
                if state.generation == generation { state.routes[deviceID] = .some(route) }
            }
        }
        return (known, rules ?? .empty, generation)
    }
}
