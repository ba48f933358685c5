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
