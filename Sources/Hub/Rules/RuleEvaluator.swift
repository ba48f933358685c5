import AWSIoT
import Foundation
import MQTT
import Store

/// Evaluates the rules on a batch of messages, inside ingest's transaction: the states move, and
/// what fires is written (outbox rows, downlinks, events) in the same commit as the messages, so
/// that a crash neither loses a firing nor fires twice.
///
/// In three steps, so that the work on the processor runs beside the database's:
/// 1. ``reach(_:rules:in:known:)`` finds the rules each message reaches and the states they need
///    (from memory; the store for the few it has not: a device new to a rule);
/// 2. ``evaluate(_:_:rules:)`` reads the values and moves the states, touching nothing else: ingest
///    runs it while the messages are being inserted;
/// 3. ``apply(_:_:sequences:rules:in:isFull:)`` writes what fired and the states that moved.
enum RuleEvaluator {
    /// One message, as the rules see it.
    struct Input: Sendable {
        var tenantID: String
        var deviceID: String
        var deviceName: String
        var labels: [String]
        var topic: String
        /// What the rules' subtopic filters see: for a device's own message nil (the part of
        /// its topic after `devices/{id}/`); for one from AWS, the levels after `{deviceId}`.
        var subtopic: String? = nil
        var payload: Data
        var receivedAt: Date
    }

    /// The rules each message reaches, and the states of the devices they reach.
    struct Reach: Sendable {
        /// The batch's devices that rules reached, each in a place of its own.
        var placeOfDevice: [String: Int] = [:]
        var devices: [DeviceRuleStates] = []
        var deviceIDs: [String] = []
        var tenantIDs: [String] = []
        /// (message, device's place, rule), in the messages' order.
        var reached: [(input: Int, device: Int, rule: RuleSet.Compiled)] = []

        var isEmpty: Bool { self.reached.isEmpty }
    }

    /// A device's state in a rule, by the device's place in the batch and the state's in its list.
    struct Place: Hashable, Sendable {
        var device: Int
        var entry: Int
    }

    /// What a reading fired.
    struct Firing: Sendable {
        var input: Int
        var rule: RuleSet.Compiled
        var value: Double
        var state: String
        var previousState: String?
        var actions: [Int]
    }

    /// The states as the batch leaves them, what fired, and the rules' counts so far.
    struct Plan: Sendable {
        var reach: Reach
        var changed: Set<Place> = []
        var firings: [Firing] = []
        var tallies: [RuleCounts]
        var tallied: [Bool]
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

    /// Step 1: which rules each message reaches, and their devices' states: from `known` (the
    /// batch's devices' states as the store holds them, remembered from earlier batches), else
    /// from the store, else afresh.
    static func reach(_ inputs: [Input], rules: RuleSet, in session: StoreSession, known: [String: DeviceRuleStates] = [:]) async throws -> Reach {
        var reach = Reach()
        // Whether each distinct filter and source takes the message: once per message, not once per rule.
        var filterTakes = [Bool?](repeating: nil, count: rules.filters.count)
        var sourceTakes = [Bool?](repeating: nil, count: rules.sources.count)
        for index in inputs.indices {
            let deviceID = inputs[index].deviceID
            guard let tenantRules = rules.rules[inputs[index].tenantID],
                let subtopic = inputs[index].subtopic ?? self.subtopic(of: inputs[index].topic, deviceID: deviceID).map(String.init)
            else { continue }
            for slot in filterTakes.indices { filterTakes[slot] = nil }
            for slot in sourceTakes.indices { sourceTakes[slot] = nil }
            var device: Int?
            for rule in tenantRules {
                let watches = sourceTakes[rule.sourceOrdinal] ?? rules.sources[rule.sourceOrdinal].watches(deviceID: deviceID, labels: inputs[index].labels)
                sourceTakes[rule.sourceOrdinal] = watches
                guard watches else { continue }
                let matches = filterTakes[rule.filterOrdinal] ?? MQTTTopic.matches(filter: rules.filters[rule.filterOrdinal], topic: subtopic)
                filterTakes[rule.filterOrdinal] = matches
                guard matches else { continue }
                if device == nil {
                    if let place = reach.placeOfDevice[deviceID] {
                        device = place
                    } else {
                        device = reach.devices.count
                        reach.placeOfDevice[deviceID] = reach.devices.count
                        reach.devices.append(known[deviceID] ?? DeviceRuleStates())
                        reach.deviceIDs.append(deviceID)
                        reach.tenantIDs.append(inputs[index].tenantID)
                    }
                }
                reach.reached.append((index, device!, rule))
            }
        }
        // The states memory has not, in one read per rule; a device new to a rule starts afresh.
        var missing: [(ruleID: String, deviceID: String)] = []
        for (_, device, rule) in reach.reached where reach.devices[device].entry(of: rule.ordinal) == nil {
            reach.devices[device].add(rule.ordinal, RuleDeviceState())
            missing.append((rule.id, reach.deviceIDs[device]))
        }
        for record in try await session.rules.states(missing) {
            guard let ordinal = rules.ordinalOfRule[record.ruleID], let device = reach.placeOfDevice[record.deviceID],
                let entry = reach.devices[device].entry(of: ordinal),
                let state = try? JSONDecoder().decode(RuleDeviceState.self, from: Data(record.state.utf8))
            else { continue }
            reach.devices[device].states[entry] = state
        }
        return reach
    }

    /// Step 2: each message's values read, once for every path the rules it reached read, and
    /// the states moved. Nothing but memory: it runs beside the messages' insert.
    static func evaluate(_ reach: Reach, _ inputs: [Input], rules: RuleSet) -> Plan {
        var plan = Plan(
            reach: reach, tallies: [RuleCounts](repeating: RuleCounts(), count: rules.ruleCount), tallied: [Bool](repeating: false, count: rules.ruleCount)
        )
        var values = [Result<Double, RuleSkipError>](repeating: .failure(RuleSkipError(.noValue)), count: rules.pathCount)
        var wanted: [Int] = []
        var isWanted = [Bool](repeating: false, count: rules.pathCount)
        var isJSON = false
        var current = -1
        let reached = reach.reached
        for position in reached.indices {
            let (index, device, rule) = reached[position]
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
                isJSON = inputs[index].payload.withUnsafeBytes { rules.reader.read($0, wanted: wanted, into: &values) }
            }
            let ordinal = rule.ordinal
            plan.tallied[ordinal] = true
            plan.tallies[ordinal].evaluated += 1
            guard isJSON else {
                plan.tallies[ordinal].skip(.notJSON)
                continue
            }
            let value: Double
            switch values[rule.pathOrdinal] {
            case .success(let read): value = read
            case .failure(let skip):
                plan.tallies[ordinal].skip(skip.reason)
                continue
            }
            let entry = plan.reach.devices[device].entry(of: ordinal)!
            let before = plan.reach.devices[device].states[entry]
            let evaluation = RuleEngine.evaluate(
                bands: rule.bands, debounce: rule.debounce, actions: rule.actions, value: value, state: &plan.reach.devices[device].states[entry],
                at: inputs[index].receivedAt
            )
            if evaluation.band != nil { plan.tallies[ordinal].matched += 1 }
            // Written when where the device stands moved, not for every reading: the value and
            // time shown are those of the last reading that moved it (a write per reading and
            // rule would cost ingest a statement each).
            if !plan.reach.devices[device].states[entry].standsAsBefore(before) { plan.changed.insert(Place(device: device, entry: entry)) }
            guard !evaluation.fired.isEmpty, let state = evaluation.state else { continue }
            plan.firings.append(
                Firing(input: index, rule: rule, value: value, state: state, previousState: evaluation.previousState, actions: evaluation.fired)
            )
        }
        return plan
    }

    /// Step 3: what fired, written (outbox rows after the messages' own, downlinks, events), and
    /// the states that moved.
    /// - Parameters:
    ///   - sequences: each input's message's sequence in the store.
    ///   - isFull: whether the integration's outbox is full with this many more rows.
    static func apply(
        _ plan: Plan, _ inputs: [Input], sequences: [Int], rules: RuleSet, in session: StoreSession,
        isFull: (_ integrationID: String, _ adding: Int) -> Bool = { _, _ in false }
    ) async throws -> Outcome {
        var outcome = Outcome()
        var tallies = plan.tallies
        var publishes: [OutboxMessage] = []
        // Each action's event, with the webhook its firing goes to: appended together after.
        var events: [EventRepository.NewEvent] = []
        var webhookTargets: [String?] = []
        for firing in plan.firings {
            let input = inputs[firing.input]
            let rule = firing.rule
            let context = RuleEngine.Context(
                deviceID: input.deviceID, deviceName: input.deviceName, value: firing.value, state: firing.state, previousState: firing.previousState
            )
            for actionIndex in firing.actions {
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
                                tenantID: input.tenantID, integrationID: publish.integrationId, deviceID: input.deviceID,
                                messageSequence: sequences[firing.input], topic: input.topic, payload: Data(payload), qos: 1, receivedAt: input.receivedAt,
                                awsTopic: topic
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
                    "ruleId": rule.id, "rule": rule.name, "action": "\(actionIndex)", "value": context.valueText, "state": firing.state,
                    "previousState": firing.previousState ?? "",
                ].merging(failure.map { ["error": $0] } ?? [:]) { $1 })
                let type = failure == nil ? EventType.ruleFired : EventType.ruleActionFailed
                events.append(
                    EventRepository.NewEvent(
                        tenantID: input.tenantID, type: type, deviceID: input.deviceID, actor: "rule:\(rule.id)", data: data, at: input.receivedAt,
                        toWebhooks: rules.webhookEventTypes[input.tenantID]?.contains(type) ?? false
                    )
                )
                webhookTargets.append(webhookTarget)
                if failure == nil { tallies[rule.ordinal].fired += 1 } else { tallies[rule.ordinal].actionFailures += 1 }
            }
        }
        for (event, webhookTarget) in zip(try await session.events.append(events), webhookTargets) {
            // The firing itself goes to the webhook, as its rule.fired event (once, should the
            // webhook take rule.fired events too).
            guard let webhookTarget else { continue }
            try await session.webhooks.enqueue(
                webhookID: webhookTarget, tenantID: event.tenantID, type: event.type, deviceID: event.deviceID, messageID: event.messageID,
                body: event.webhookBody, at: event.createdAt
            )
            outcome.webhooksQueued = true
        }
        try await session.outbox.appendPublishes(publishes)
        let reach = plan.reach
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var records: [RuleStateRecord] = []
        for place in plan.changed {
            let state = reach.devices[place.device].states[place.entry]
            records.append(
                RuleStateRecord(
                    ruleID: rules.ordered[reach.devices[place.device].ordinals[place.entry]].id, deviceID: reach.deviceIDs[place.device],
                    tenantID: reach.tenantIDs[place.device], state: String(decoding: try encoder.encode(state), as: UTF8.self), updatedAt: state.updatedAt ?? Date()
                )
            )
        }
        // In one order, so that two writers never wait on each other's rows the other way round.
        records.sort { ($0.ruleID, $0.deviceID) < ($1.ruleID, $1.deviceID) }
        try await session.rules.save(records)
        outcome.states = Dictionary(uniqueKeysWithValues: zip(reach.deviceIDs, reach.devices))
        for (ordinal, rule) in rules.ordered.enumerated() where plan.tallied[ordinal] {
            outcome.tallies[rule.id] = (tallies[ordinal], rule.metrics)
        }
        return outcome
    }
}
