import AWSIoT
import Foundation
import Synchronization
import MQTT
import Metrics
import Store

/// Every enabled rule, parsed once, by tenant; with the tenants' integrations a rule may
/// publish through. Ingest holds one per routing generation (a rule, a device's labels or an
/// integration changing moves it).
struct RuleSet: Sendable {
    /// A class: each message that reaches a rule holds it, and copying the definition each time cost ingest.
    final class Compiled: Sendable {
        let id: String
        let name: String
        let definition: RuleDefinition
        let path: JSONPath
        let metrics: RuleMetrics
        /// Its place among all the set's rules, and its path's among their distinct paths: a
        /// batch keeps what it tallies and reads in arrays, not in dictionaries keyed by strings.
        let ordinal: Int
        let pathOrdinal: Int
        /// Its subtopic filter's place among the set's distinct filters: rules with the same
        /// filter match a message once.
        let filterOrdinal: Int

        init(
            id: String, name: String, definition: RuleDefinition, path: JSONPath, metrics: RuleMetrics, ordinal: Int, pathOrdinal: Int, filterOrdinal: Int
        ) {
            self.filterOrdinal = filterOrdinal
            self.id = id
            self.name = name
            self.definition = definition
            self.path = path
            self.metrics = metrics
            self.ordinal = ordinal
            self.pathOrdinal = pathOrdinal
        }
    }

    /// Enabled rules by tenant.
    let rules: [String: [Compiled]]
    /// How many rules, and distinct value paths, there are.
    var ruleCount = 0
    var pathCount = 0
    /// The distinct subtopic filters, by ordinal.
    var filters: [String] = []
    /// Active AWS IoT integrations by id, with their tenant.
    let integrations: [String: String]
    /// The webhooks that take every uplink, by tenant.
    var uplinkWebhooks: [String: [String]] = [:]

    static let empty = RuleSet(rules: [:], integrations: [:])

    static func load(from session: StoreSession) async throws -> RuleSet {
        var rules: [String: [Compiled]] = [:]
        var paths: [String: Int] = [:]
        var filters: [String: Int] = [:]
        var count = 0
        for rule in try await session.rules.listEnabled() {
            // A definition stored by this version was checked when it was written; one this
            // version cannot read is left out, not evaluated half-understood.
            guard let definition = try? JSONDecoder().decode(RuleDefinition.self, from: Data(rule.definition.utf8)),
                let path = try? JSONPath(parsing: definition.value)
            else { continue }
            let pathOrdinal = paths[path.description] ?? paths.count
            paths[path.description] = pathOrdinal
            let filterOrdinal = filters[definition.subtopic] ?? filters.count
            filters[definition.subtopic] = filterOrdinal
            rules[rule.tenantID, default: []].append(
                Compiled(
                    id: rule.id, name: rule.name, definition: definition, path: path, metrics: RuleMetrics(ruleID: rule.id), ordinal: count,
                    pathOrdinal: pathOrdinal, filterOrdinal: filterOrdinal
                )
            )
            count += 1
        }
        var integrations: [String: String] = [:]
        if !rules.isEmpty {
            for integration in try await session.integrations.list(status: .active) where integration.active {
                integrations[integration.id] = integration.tenantID
            }
        }
        var set = RuleSet(rules: rules, integrations: integrations)
        set.ruleCount = count
        set.pathCount = paths.count
        set.filters = filters.sorted { $0.value < $1.value }.map(\.key)
        set.uplinkWebhooks = try await session.webhooks.uplinkSubscribers()
        return set
    }
}

/// What a rule did with the messages that reached it: read them (evaluated), found no value
/// in them (skipped), found a value in one of its states' bands (matched), fired actions, or
/// failed to.
public struct RuleCounts: Sendable, Equatable {
    public var evaluated = 0
    public var matched = 0
    public var fired = 0
    public var actionFailures = 0
    public var skippedNotJSON = 0
    public var skippedNoValue = 0
    public var skippedNotANumber = 0

    public init() {}

    public var skipped: Int { self.skippedNotJSON + self.skippedNoValue + self.skippedNotANumber }

    mutating func skip(_ reason: RuleSkip) {
        switch reason {
        case .notJSON: self.skippedNotJSON += 1
        case .noValue: self.skippedNoValue += 1
        case .notANumber: self.skippedNotANumber += 1
        }
    }

    static func += (a: inout RuleCounts, b: RuleCounts) {
        a.evaluated += b.evaluated
        a.matched += b.matched
        a.fired += b.fired
        a.actionFailures += b.actionFailures
        a.skippedNotJSON += b.skippedNotJSON
        a.skippedNoValue += b.skippedNoValue
        a.skippedNotANumber += b.skippedNotANumber
    }
}

/// Each rule's counts on this node since it started, for the API and the console; `/metrics`
/// has the same as counters. Added once a batch has committed, so a batch tried again is
/// counted once.
final class RuleCounters: Sendable {
    private let counts = Mutex<[String: RuleCounts]>([:])

    func add(_ tallies: [String: RuleCounts]) {
        self.counts.withLock { counts in
            for (ruleID, tally) in tallies { counts[ruleID, default: RuleCounts()] += tally }
        }
    }

    func counts(of ruleID: String) -> RuleCounts {
        self.counts.withLock { $0[ruleID] ?? RuleCounts() }
    }

    func forget(_ ruleID: String) {
        _ = self.counts.withLock { $0.removeValue(forKey: ruleID) }
    }
}

/// A rule's counters in `/metrics`.
struct RuleMetrics: Sendable {
    let evaluated: Counter
    let matched: Counter
    let fired: Counter
    let actionFailures: Counter
    let skippedNotJSON: Counter
    let skippedNoValue: Counter
    let skippedNotANumber: Counter

    init(ruleID: String) {
        let rule = [("rule", ruleID)]
        self.evaluated = Counter(label: "conduit_rule_evaluated_total", dimensions: rule)
        self.matched = Counter(label: "conduit_rule_matched_total", dimensions: rule)
        self.fired = Counter(label: "conduit_rule_fired_total", dimensions: rule)
        self.actionFailures = Counter(label: "conduit_rule_action_failures_total", dimensions: rule)
        self.skippedNotJSON = Counter(label: "conduit_rule_skipped_total", dimensions: rule + [("reason", "not_json")])
        self.skippedNoValue = Counter(label: "conduit_rule_skipped_total", dimensions: rule + [("reason", "no_value")])
        self.skippedNotANumber = Counter(label: "conduit_rule_skipped_total", dimensions: rule + [("reason", "not_a_number")])
    }

    func add(_ counts: RuleCounts) {
        for (counter, count) in [
            (self.evaluated, counts.evaluated), (self.matched, counts.matched), (self.fired, counts.fired), (self.actionFailures, counts.actionFailures),
            (self.skippedNotJSON, counts.skippedNotJSON), (self.skippedNoValue, counts.skippedNoValue), (self.skippedNotANumber, counts.skippedNotANumber),
        ] where count > 0 {
            counter.increment(by: count)
        }
    }
}

/// Evaluates the rules on a batch of stored messages, inside ingest's transaction: the states
/// move, and what fires is written (outbox rows, downlinks, events) in the same commit as the
/// messages, so that a crash neither loses a firing nor fires twice.
enum RuleEvaluator {
    /// One stored message, as the rules see it.
    struct Input {
        var tenantID: String
        var deviceID: String
        var deviceName: String
        var labels: [String]
        var topic: String
        /// What the rules' subtopic filters see: for a device's own message nil (the part of
        /// its topic after `devices/{id}/`); for one from AWS, the levels after `{deviceId}`.
        var subtopic: String? = nil
        var payload: [UInt8]
        var sequence: Int
        var receivedAt: Date
    }

    struct Outcome {
        /// Outbox rows written, by integration, and the device queues they went to.
        var outboxAdded: [String: Int] = [:]
        var queues: Set<UplinkQueueKey> = []
        /// Devices with new downlinks.
        var downlinkDevices: Set<String> = []
        /// Every state the batch read or moved, as it now stands, for the caller's memory once
        /// the transaction has committed.
        var states: [RuleStateKey: RuleDeviceState] = [:]
        /// Webhook deliveries were queued.
        var webhooksQueued = false
        /// What each rule did, by rule id, with its metrics: for after the commit.
        var tallies: [String: (counts: RuleCounts, metrics: RuleMetrics)] = [:]
    }

    /// The part of `topic` after `devices/{id}/`, or nil.
    static func subtopic(of topic: String, deviceID: String) -> Substring? {
        let prefix = "devices/" + deviceID + "/"
        guard topic.hasPrefix(prefix) else { return nil }
        return topic.dropFirst(prefix.count)
    }

    /// - Parameters:
    ///   - isFull: whether the integration's outbox is full with this many more rows.
    ///   - known: states as the store holds them, remembered from earlier batches; the others
    ///     are read from the store.
    static func run(
        _ inputs: [Input], rules: RuleSet, in session: StoreSession, isFull: (_ integrationID: String, _ adding: Int) -> Bool = { _, _ in false },
        known: [RuleStateKey: RuleDeviceState] = [:]
    ) async throws -> Outcome {
        var outcome = Outcome()
        // Which rules each message reaches.
        var reached: [(input: Int, rule: RuleSet.Compiled)] = []
        // Whether each distinct filter matches the message: once per message, not once per rule.
        var matched = [Bool?](repeating: nil, count: rules.filters.count)
        for (index, input) in inputs.enumerated() {
            guard let tenantRules = rules.rules[input.tenantID], let subtopic = input.subtopic ?? self.subtopic(of: input.topic, deviceID: input.deviceID).map(String.init)
            else { continue }
            for slot in matched.indices { matched[slot] = nil }
            for rule in tenantRules where rule.definition.source.watches(deviceID: input.deviceID, labels: input.labels) {
                let matches = matched[rule.filterOrdinal] ?? MQTTTopic.matches(filter: rules.filters[rule.filterOrdinal], topic: subtopic)
                matched[rule.filterOrdinal] = matches
                if matches { reached.append((index, rule)) }
            }
        }
        guard !reached.isEmpty else { return outcome }
        // Every state the batch needs, in one read per rule.
        var states: [RuleStateKey: RuleDeviceState] = [:]
        var missing = Set<RuleStateKey>()
        for (index, rule) in reached {
            let key = RuleStateKey(ruleID: rule.id, deviceID: inputs[index].deviceID)
            if let state = known[key] { states[key] = state } else { missing.insert(key) }
        }
        let loaded = missing.isEmpty ? [] : try await session.rules.states(missing.map { ($0.ruleID, $0.deviceID) })
        for record in loaded {
            if let state = try? JSONDecoder().decode(RuleDeviceState.self, from: Data(record.state.utf8)) {
                states[RuleStateKey(ruleID: record.ruleID, deviceID: record.deviceID)] = state
            }
        }
        var changed: Set<RuleStateKey> = []
        // Each message parsed once, and each path of it read once for all the rules that read it.
        var parsed = [Any??](repeating: nil, count: inputs.count)
        var read = [Result<Double, RuleSkipError>?](repeating: nil, count: inputs.count * max(rules.pathCount, 1))
        var publishes: [OutboxMessage] = []
        var tallies = [RuleCounts](repeating: RuleCounts(), count: rules.ruleCount)
        var tallied = [RuleSet.Compiled?](repeating: nil, count: rules.ruleCount)
        // A message's fields are copied out once for all the rules it reached, not once per rule.
        var current = -1
        var input = inputs[0]
        for (index, rule) in reached {
            if index != current {
                input = inputs[index]
                current = index
            }
            let ordinal = rule.ordinal
            if tallied[ordinal] == nil { tallied[ordinal] = rule }
            tallies[ordinal].evaluated += 1
            if parsed[index] == nil { parsed[index] = .some(RuleEngine.parse(input.payload)) }
            guard let json = parsed[index] ?? nil else {
                tallies[ordinal].skip(.notJSON)
                continue
            }
            let value: Double
            let slot = index * rules.pathCount + rule.pathOrdinal
            let result = read[slot] ?? RuleEngine.value(ofParsed: json, at: rule.path)
            read[slot] = result
            switch result {
            case .success(let read): value = read
            case .failure(let skip):
                tallies[ordinal].skip(skip.reason)
                continue
            }
            let key = RuleStateKey(ruleID: rule.id, deviceID: input.deviceID)
            let before = states[key] ?? RuleDeviceState()
            var state = before
            let evaluation = RuleEngine.evaluate(rule.definition, value: value, state: &state, at: input.receivedAt)
            states[key] = state
            if evaluation.band != nil { tallies[ordinal].matched += 1 }
            // Written when where the device stands moved, not for every reading: the value and
            // time shown are those of the last reading that moved it (a write per reading and
            // rule would cost ingest a statement each).
            if !state.standsAsBefore(before) { changed.insert(key) }
            guard !evaluation.fired.isEmpty, let current = evaluation.state else { continue }
            let context = RuleEngine.Context(
                deviceID: input.deviceID, deviceName: input.deviceName, value: value, state: current, previousState: evaluation.previousState
            )
            for actionIndex in evaluation.fired {
                let action = rule.definition.actions[actionIndex]
                var failure: String?
                var webhookTarget: String?
                if let publish = action.publish {
                    let topic = RuleEngine.render(publish.topic, context)
                    if rules.integrations[publish.integrationId] != input.tenantID {
                        failure = "integration '\(publish.integrationId)' is not an active AWS IoT integration of the tenant"
                    } else if (try? AWSIoTValidation.publishTopic(topic, field: "topic")) == nil {
                        failure = "topic '\(topic)' is not one AWS IoT takes"
                    } else if isFull(publish.integrationId, outcome.outboxAdded[publish.integrationId, default: 0] + 1) {
                        failure = "the outbox of integration '\(publish.integrationId)' is full (AWS has not taken its messages)"
                    } else {
                        let payload = RuleEngine.render(publish.payload, context).encoded
                        publishes.append(
                            OutboxMessage(
                                tenantID: input.tenantID, integrationID: publish.integrationId, deviceID: input.deviceID, messageSequence: input.sequence,
                                topic: input.topic, payload: Data(payload), qos: 1, receivedAt: input.receivedAt, awsTopic: topic
                            )
                        )
                        outcome.outboxAdded[publish.integrationId, default: 0] += 1
                        outcome.queues.insert(UplinkQueueKey(integrationID: publish.integrationId, deviceID: input.deviceID))
                    }
                } else if let downlink = action.downlink {
                    let target = downlink.deviceId ?? input.deviceID
                    let payload = RuleEngine.render(downlink.payload, context).encoded
                    if payload.count > Downlinks.maximumPayload {
                        failure = "the downlink is \(payload.count) bytes, over \(Downlinks.maximumPayload)"
                    } else if let device = try await session.devices.get(tenantID: input.tenantID, id: target), device.status == .accepted {
                        _ = try await session.downlinks.append(
                            Downlink(
                                tenantID: input.tenantID, deviceID: target, payload: Data(payload), confirmed: false, port: nil,
                                source: "rule:\(rule.id)", createdAt: input.receivedAt
                            )
                        )
                        outcome.downlinkDevices.insert(target)
                    } else {
                        failure = "device '\(target)' does not exist or is not accepted"
                    }
                } else if let webhook = action.webhook {
                    if try await session.webhooks.get(tenantID: input.tenantID, id: webhook.integrationId) == nil {
                        failure = "webhook '\(webhook.integrationId)' does not exist in the tenant"
                    } else {
                        webhookTarget = webhook.integrationId
                    }
                }
                let data = EventLog.json([
                    "ruleId": rule.id, "rule": rule.name, "action": "\(actionIndex)", "value": context.valueText, "state": current,
                    "previousState": evaluation.previousState ?? "",
                ].merging(failure.map { ["error": $0] } ?? [:]) { $1 })
                let event = try await session.events.append(
                    tenantID: input.tenantID, type: failure == nil ? EventType.ruleFired : EventType.ruleActionFailed, deviceID: input.deviceID,
                    actor: "rule:\(rule.id)", data: data, at: input.receivedAt
                )
                // The firing itself goes to the webhook, as its rule.fired event (once, should the
                // webhook take rule.fired events too).
                if let webhookTarget {
                    try await session.webhooks.enqueue(
                        webhookID: webhookTarget, tenantID: input.tenantID, type: event.type, deviceID: input.deviceID, messageID: event.messageID,
                        body: event.webhookBody, at: input.receivedAt
                    )
                    outcome.webhooksQueued = true
                }
                if failure == nil { tallies[ordinal].fired += 1 } else { tallies[ordinal].actionFailures += 1 }
            }
        }
        try await session.outbox.appendPublishes(publishes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let tenantOfDevice = Dictionary(inputs.map { ($0.deviceID, $0.tenantID) }) { first, _ in first }
        var records: [RuleStateRecord] = []
        for key in changed.sorted() {
            guard let state = states[key], let tenantID = tenantOfDevice[key.deviceID] else { continue }
            records.append(
                RuleStateRecord(
                    ruleID: key.ruleID, deviceID: key.deviceID, tenantID: tenantID,
                    state: String(decoding: try encoder.encode(state), as: UTF8.self), updatedAt: state.updatedAt ?? Date()
                )
            )
        }
        try await session.rules.save(records)
        outcome.states = states
        for case let rule? in tallied { outcome.tallies[rule.id] = (tallies[rule.ordinal], rule.metrics) }
        return outcome
    }
}
