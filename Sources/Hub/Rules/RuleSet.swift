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
        let metrics: RuleMetrics
        /// Its place among all the set's rules, and its path's among their distinct paths: a
        /// batch keeps what it tallies and reads in arrays, not in dictionaries keyed by strings.
        let ordinal: Int
        let pathOrdinal: Int
        /// Its subtopic filter's and its source's places among the set's distinct ones: rules
        /// with the same filter or source test a message once.
        let filterOrdinal: Int
        let sourceOrdinal: Int
        /// What each reading is evaluated with, taken out of the definition once.
        let bands: RuleEngine.Bands
        let debounce: RuleDefinition.Debounce?
        let actions: [RuleDefinition.Action]

        init(id: String, name: String, definition: RuleDefinition, ordinal: Int, pathOrdinal: Int, filterOrdinal: Int, sourceOrdinal: Int) {
            self.id = id
            self.name = name
            self.definition = definition
            self.metrics = RuleMetrics(ruleID: id)
            self.ordinal = ordinal
            self.pathOrdinal = pathOrdinal
            self.filterOrdinal = filterOrdinal
            self.sourceOrdinal = sourceOrdinal
            self.bands = RuleEngine.bands(definition.states)
            self.debounce = definition.debounce
            self.actions = definition.actions
        }
    }

    /// Enabled rules by tenant.
    let rules: [String: [Compiled]]
    /// Every rule, by ordinal.
    var ordered: [Compiled] = []
    /// Rules' ordinals by id.
    var ordinalOfRule: [String: Int] = [:]
    /// The distinct subtopic filters and sources, by ordinal.
    var filters: [String] = []
    var sources: [RuleDefinition.Source] = []
    /// Reads the distinct value paths, by ordinal.
    var reader = JSONValueReader([])
    /// Active AWS IoT integrations by id, with their tenant.
    let integrations: [String: String]
    /// The webhooks that take every uplink, by tenant.
    var uplinkWebhooks: [String: [String]] = [:]
    /// The other event types some webhook takes, by tenant: an event rules append for nobody
    /// builds no webhook body (a change to webhooks' subscriptions moves the generation).
    var webhookEventTypes: [String: Set<String>] = [:]

    static let empty = RuleSet(rules: [:], integrations: [:])

    var ruleCount: Int { self.ordered.count }
    var pathCount: Int { self.reader.paths.count }

    static func load(from session: StoreSession) async throws -> RuleSet {
        var rules: [String: [Compiled]] = [:]
        var ordered: [Compiled] = []
        var paths: [JSONPath] = []
        var pathOrdinals: [String: Int] = [:]
        var filters: [String: Int] = [:]
        var sources: [RuleDefinition.Source: Int] = [:]
        for rule in try await session.rules.listEnabled() {
            // A definition stored by this version was checked when it was written; one this
            // version cannot read is left out, not evaluated half-understood.
            guard let definition = try? JSONDecoder().decode(RuleDefinition.self, from: Data(rule.definition.utf8)),
                let path = try? JSONPath(parsing: definition.value)
            else { continue }
            let pathOrdinal = pathOrdinals[path.description] ?? paths.count
            if pathOrdinal == paths.count {
                paths.append(path)
                pathOrdinals[path.description] = pathOrdinal
            }
            let filterOrdinal = filters[definition.subtopic] ?? filters.count
            filters[definition.subtopic] = filterOrdinal
            let sourceOrdinal = sources[definition.source] ?? sources.count
            sources[definition.source] = sourceOrdinal
            let compiled = Compiled(
                id: rule.id, name: rule.name, definition: definition, ordinal: ordered.count, pathOrdinal: pathOrdinal, filterOrdinal: filterOrdinal,
                sourceOrdinal: sourceOrdinal
            )
            rules[rule.tenantID, default: []].append(compiled)
            ordered.append(compiled)
        }
        var integrations: [String: String] = [:]
        if !rules.isEmpty {
            for integration in try await session.integrations.list(status: .active) where integration.active {
                integrations[integration.id] = integration.tenantID
            }
        }
        var set = RuleSet(rules: rules, integrations: integrations)
        set.ordered = ordered
        set.ordinalOfRule = Dictionary(uniqueKeysWithValues: ordered.map { ($0.id, $0.ordinal) })
        set.reader = JSONValueReader(paths)
        set.filters = filters.sorted { $0.value < $1.value }.map(\.key)
        set.sources = sources.sorted { $0.value < $1.value }.map(\.key)
        set.uplinkWebhooks = try await session.webhooks.uplinkSubscribers()
        set.webhookEventTypes = try await session.webhooks.subscribedEventTypes()
        return set
    }
}

/// One device's states in the rules that reached it, by rule ordinal (of one routing
/// generation): a short list searched in order, not a dictionary keyed by rule and device
/// strings, which cost ingest a hash of both per rule and message.
struct DeviceRuleStates: Sendable {
    var ordinals: [Int] = []
    var states: [RuleDeviceState] = []

    var count: Int { self.ordinals.count }

    func entry(of ordinal: Int) -> Int? {
        self.ordinals.firstIndex(of: ordinal)
    }

    mutating func add(_ ordinal: Int, _ state: RuleDeviceState) {
        self.ordinals.append(ordinal)
        self.states.append(state)
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
        var payload: Data
        var sequence: Int
        var receivedAt: Date
    }

    struct Outcome {
        /// Outbox rows written, by integration, and the device queues they went to.
        var outboxAdded: [String: Int] = [:]
        var queues: Set<UplinkQueueKey> = []
        /// Devices with new downlinks.
        var downlinkDevices: Set<String> = []
        /// The states of every device the batch reached, as they now stand, for the caller's
        /// memory once the transaction has committed.
        var states: [String: DeviceRuleStates] = [:]
        /// Webhook deliveries were queued.
        var webhooksQueued = false
        /// What each rule did, by rule id, with its metrics: for after the commit.
        var tallies: [String: (counts: RuleCounts, metrics: RuleMetrics)] = [:]
    }

    /// The part of `topic` after `devices/{id}/`, or nil.
    static func subtopic(of topic: String, deviceID: String) -> Substring? {
        let prefix = "devices/".utf8
        let utf8 = topic.utf8
        guard utf8.starts(with: prefix) else { return nil }
        let rest = utf8.dropFirst(prefix.count)
        guard rest.starts(with: deviceID.utf8) else { return nil }
        let after = rest.dropFirst(deviceID.utf8.count)
        guard after.first == UInt8(ascii: "/") else { return nil }
        return Substring(after.dropFirst())
    }

    /// A device's state in a rule, by the device's place in the batch and the state's in its list.
    private struct Place: Hashable {
        var device: Int
        var entry: Int
    }

    /// - Parameters:
    ///   - isFull: whether the integration's outbox is full with this many more rows.
    ///   - known: the states of the batch's devices as the store holds them, remembered from
    ///     earlier batches; the others are read from the store.
    static func run(
        _ inputs: [Input], rules: RuleSet, in session: StoreSession, isFull: (_ integrationID: String, _ adding: Int) -> Bool = { _, _ in false },
        known: [String: DeviceRuleStates] = [:]
    ) async throws -> Outcome {
        var outcome = Outcome()
        // The batch's devices that rules reached, each in a place of its own.
        var placeOfDevice: [String: Int] = [:]
        var devices: [DeviceRuleStates] = []
        var deviceIDs: [String] = []
        var tenantIDs: [String] = []
        // Which rules each message reaches, in the messages' order.
        var reached: [(input: Int, device: Int, rule: RuleSet.Compiled)] = []
        // Whether each distinct filter and source takes the message: once per message, not once per rule.
        var filterTakes = [Bool?](repeating: nil, count: rules.filters.count)
        var sourceTakes = [Bool?](repeating: nil, count: rules.sources.count)
        for (index, input) in inputs.enumerated() {
            guard let tenantRules = rules.rules[input.tenantID], let subtopic = input.subtopic ?? self.subtopic(of: input.topic, deviceID: input.deviceID).map(String.init)
            else { continue }
            for slot in filterTakes.indices { filterTakes[slot] = nil }
            for slot in sourceTakes.indices { sourceTakes[slot] = nil }
            var device: Int?
            for rule in tenantRules {
                let watches = sourceTakes[rule.sourceOrdinal] ?? rules.sources[rule.sourceOrdinal].watches(deviceID: input.deviceID, labels: input.labels)
                sourceTakes[rule.sourceOrdinal] = watches
                guard watches else { continue }
                let matches = filterTakes[rule.filterOrdinal] ?? MQTTTopic.matches(filter: rules.filters[rule.filterOrdinal], topic: subtopic)
                filterTakes[rule.filterOrdinal] = matches
                guard matches else { continue }
                if device == nil {
                    if let place = placeOfDevice[input.deviceID] {
                        device = place
                    } else {
                        device = devices.count
                        placeOfDevice[input.deviceID] = devices.count
                        devices.append(known[input.deviceID] ?? DeviceRuleStates())
                        deviceIDs.append(input.deviceID)
                        tenantIDs.append(input.tenantID)
                    }
                }
                reached.append((index, device!, rule))
            }
        }
        guard !reached.isEmpty else { return outcome }
        // Every state the batch needs that memory has not, in one read per rule; a device new
        // to a rule starts afresh.
        var missing: [(ruleID: String, deviceID: String)] = []
        for (_, device, rule) in reached where devices[device].entry(of: rule.ordinal) == nil {
            devices[device].add(rule.ordinal, RuleDeviceState())
            missing.append((rule.id, deviceIDs[device]))
        }
        for record in try await session.rules.states(missing) {
            guard let ordinal = rules.ordinalOfRule[record.ruleID], let device = placeOfDevice[record.deviceID],
                let entry = devices[device].entry(of: ordinal),
                let state = try? JSONDecoder().decode(RuleDeviceState.self, from: Data(record.state.utf8))
            else { continue }
            devices[device].states[entry] = state
        }
        var changed: Set<Place> = []
        // Each message read once, for every path the rules it reached read.
        var values = [Result<Double, RuleSkipError>](repeating: .failure(RuleSkipError(.noValue)), count: rules.pathCount)
        var wanted: [Int] = []
        var isWanted = [Bool](repeating: false, count: rules.pathCount)
        var isJSON = false
        var publishes: [OutboxMessage] = []
        var tallies = [RuleCounts](repeating: RuleCounts(), count: rules.ruleCount)
        var tallied = [Bool](repeating: false, count: rules.ruleCount)
        var current = -1
        for (position, (index, device, rule)) in reached.enumerated() {
            let input = inputs[index]
            if index != current {
                current = index
                for path in wanted { isWanted[path] = false }
                wanted.removeAll(keepingCapacity: true)
                var next = position
                while next < reached.count, reached[next].input == index {
                    let path = reached[next].rule.pathOrdinal
                    if !isWanted[path] {
                        isWanted[path] = true
                        wanted.append(path)
                    }
                    next += 1
                }
                isJSON = input.payload.withUnsafeBytes { rules.reader.read($0, wanted: wanted, into: &values) }
            }
            let ordinal = rule.ordinal
            tallied[ordinal] = true
            tallies[ordinal].evaluated += 1
            guard isJSON else {
                tallies[ordinal].skip(.notJSON)
                continue
            }
            let value: Double
            switch values[rule.pathOrdinal] {
            case .success(let read): value = read
            case .failure(let skip):
                tallies[ordinal].skip(skip.reason)
                continue
            }
            let entry = devices[device].entry(of: ordinal)!
            let before = devices[device].states[entry]
            let evaluation = RuleEngine.evaluate(
                bands: rule.bands, debounce: rule.debounce, actions: rule.actions, value: value, state: &devices[device].states[entry], at: input.receivedAt
            )
            if evaluation.band != nil { tallies[ordinal].matched += 1 }
            // Written when where the device stands moved, not for every reading: the value and
            // time shown are those of the last reading that moved it (a write per reading and
            // rule would cost ingest a statement each).
            if !devices[device].states[entry].standsAsBefore(before) { changed.insert(Place(device: device, entry: entry)) }
            guard !evaluation.fired.isEmpty, let current = evaluation.state else { continue }
            let context = RuleEngine.Context(
                deviceID: input.deviceID, deviceName: input.deviceName, value: value, state: current, previousState: evaluation.previousState
            )
            for actionIndex in evaluation.fired {
                let action = rule.actions[actionIndex]
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
                let type = failure == nil ? EventType.ruleFired : EventType.ruleActionFailed
                let event = try await session.events.append(
                    tenantID: input.tenantID, type: type, deviceID: input.deviceID, actor: "rule:\(rule.id)", data: data, at: input.receivedAt,
                    toWebhooks: rules.webhookEventTypes[input.tenantID]?.contains(type) ?? false
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
        var records: [RuleStateRecord] = []
        for place in changed {
            let state = devices[place.device].states[place.entry]
            records.append(
                RuleStateRecord(
                    ruleID: rules.ordered[devices[place.device].ordinals[place.entry]].id, deviceID: deviceIDs[place.device],
                    tenantID: tenantIDs[place.device], state: String(decoding: try encoder.encode(state), as: UTF8.self), updatedAt: state.updatedAt ?? Date()
                )
            )
        }
        // In one order, so that two writers never wait on each other's rows the other way round.
        records.sort { ($0.ruleID, $0.deviceID) < ($1.ruleID, $1.deviceID) }
        try await session.rules.save(records)
        outcome.states = Dictionary(uniqueKeysWithValues: zip(deviceIDs, devices))
        for (ordinal, rule) in rules.ordered.enumerated() where tallied[ordinal] {
            outcome.tallies[rule.id] = (tallies[ordinal], rule.metrics)
        }
        return outcome
    }
}
