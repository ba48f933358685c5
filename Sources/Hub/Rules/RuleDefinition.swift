import Foundation

/// What a rule watches, how it reads a value, the states the value puts a device in, and what
/// happens when a device crosses from one state to another.
///
/// States are bands of the value: `{"Above": {"above": 350}, "Below": {"below": 300}}`. A value
/// in no band (300 to 350 here) leaves the device in the state it is in: the gap is the
/// hysteresis. Bands may not overlap, so a value is in one band at most.
public struct RuleDefinition: Sendable, Equatable, Codable {
    /// Which devices: listed ids, any of some labels, or all of the tenant's.
    public struct Source: Sendable, Hashable, Codable {
        public var devices: [String]?
        public var labels: [String]?
        public var all: Bool?

        public init(devices: [String]? = nil, labels: [String]? = nil, all: Bool? = nil) {
            self.devices = devices
            self.labels = labels
            self.all = all
        }

        public func watches(deviceID: String, labels deviceLabels: [String]) -> Bool {
            if self.all == true { return true }
            if let devices, devices.contains(deviceID) { return true }
            if let labels, deviceLabels.contains(where: labels.contains) { return true }
            return false
        }
    }

    /// A band of values: above `above` (exclusive) and below `below` (exclusive); either may be
    /// left out for no bound on that side.
    public struct Band: Sendable, Equatable, Codable {
        public var above: Double?
        public var below: Double?

        public init(above: Double? = nil, below: Double? = nil) {
            self.above = above
            self.below = below
        }

        public func contains(_ value: Double) -> Bool {
            (self.above.map { value > $0 } ?? true) && (self.below.map { value < $0 } ?? true)
        }
    }

    /// A new state holds only once the value stayed in its band this long, or for this many
    /// readings in a row; until then the device keeps its state.
    public struct Debounce: Sendable, Equatable, Codable {
        public var forSeconds: Double?
        public var samples: Int?

        public init(forSeconds: Double? = nil, samples: Int? = nil) {
            self.forSeconds = forSeconds
            self.samples = samples
        }
    }

    /// A crossing an action fires on: into `to`, from `from` or from any other state.
    public struct Transition: Sendable, Equatable, Codable {
        public var from: String?
        public var to: String

        public init(from: String? = nil, to: String) {
            self.from = from
            self.to = to
        }

        public func matches(from previous: String?, to next: String) -> Bool {
            next == self.to && (self.from == nil || self.from == previous)
        }
    }

    /// What an action does: publish to AWS IoT, queue a downlink, or call a webhook.
    public struct Action: Sendable, Equatable, Codable {
        public struct Publish: Sendable, Equatable, Codable {
            /// The AWS IoT integration the message goes out through.
            public var integrationId: String
            /// The AWS IoT topic: `{deviceId}`, `{state}` and `{previousState}` may stand in it.
            public var topic: String
            /// JSON; in its strings `{deviceId}`, `{deviceName}`, `{value}`, `{state}` and
            /// `{previousState}` are filled in, and a string that is only `"{value}"` becomes the number.
            public var payload: JSONValue

            public init(integrationId: String, topic: String, payload: JSONValue) {
                self.integrationId = integrationId
                self.topic = topic
                self.payload = payload
            }
        }

        public struct Downlink: Sendable, Equatable, Codable {
            /// The device it goes to; nil for the device that crossed.
            public var deviceId: String?
            public var payload: JSONValue

            public init(deviceId: String? = nil, payload: JSONValue) {
                self.deviceId = deviceId
                self.payload = payload
            }
        }

        public struct Webhook: Sendable, Equatable, Codable {
            public var integrationId: String

            public init(integrationId: String) {
                self.integrationId = integrationId
            }
        }

        public var on: Transition
        /// The shortest time between two firings of this action for one device; nil for none.
        public var cooldownSeconds: Double?
        public var publish: Publish?
        public var downlink: Downlink?
        public var webhook: Webhook?

        public init(on: Transition, cooldownSeconds: Double? = nil, publish: Publish? = nil, downlink: Downlink? = nil, webhook: Webhook? = nil) {
            self.on = on
            self.cooldownSeconds = cooldownSeconds
            self.publish = publish
            self.downlink = downlink
            self.webhook = webhook
        }
    }

    public var source: Source
    /// The topic filter under `devices/{id}/` whose messages the rule reads (`up`, `telemetry/#`).
    public var subtopic: String
    /// Where the value is in a message, e.g. `$.lightValue`.
    public var value: String
    public var states: [String: Band]
    public var debounce: Debounce?
    public var actions: [Action]

    public init(source: Source, subtopic: String, value: String, states: [String: Band], debounce: Debounce? = nil, actions: [Action]) {
        self.source = source
        self.subtopic = subtopic
        self.value = value
        self.states = states
        self.debounce = debounce
        self.actions = actions
    }
}

/// The rules a rule definition must follow; each refusal names the field.
public enum RuleRules {
    public static let maximumStates = 16
    public static let maximumRulesPerTenant = 100
    public static let maximumActions = 16
    /// A day: a longer debounce or cooldown is almost surely a mistake of units.
    public static let maximumSeconds = 86_400.0
    public static let maximumSamples = 1_000
    public static let placeholders = ["deviceId", "deviceName", "value", "state", "previousState"]
    /// Those that may stand in a topic: a name or a value could add levels or wildcards.
    public static let topicPlaceholders = ["deviceId", "state", "previousState"]

    /// Checks `definition`; returns its parsed value path.
    @discardableResult
    public static func check(_ definition: RuleDefinition) throws -> JSONPath {
        try self.check(definition.source)
        try self.checkSubtopic(definition.subtopic)
        let path: JSONPath
        do {
            path = try JSONPath(parsing: definition.value)
        } catch {
            throw HubError.invalidField("value", error.message)
        }
        try FieldRules.ruleValue.check(definition.value, field: "value")
        try self.check(states: definition.states)
        if let debounce = definition.debounce {
            switch (debounce.forSeconds, debounce.samples) {
            case (let seconds?, nil):
                guard seconds > 0, seconds <= self.maximumSeconds else {
                    throw HubError.invalidField("debounce.forSeconds", "must be above 0 and at most \(Int(self.maximumSeconds)) (a day)")
                }
            case (nil, let samples?):
                guard samples >= 1, samples <= self.maximumSamples else {
                    throw HubError.invalidField("debounce.samples", "must be 1 to \(self.maximumSamples)")
                }
            default:
                throw HubError.invalidField("debounce", "give one of {forSeconds: N} or {samples: N}")
            }
        }
        guard !definition.actions.isEmpty else { throw HubError.invalidField("actions", "give at least one action") }
        guard definition.actions.count <= self.maximumActions else {
            throw HubError.invalidField("actions", "at most \(self.maximumActions)")
        }
        for (index, action) in definition.actions.enumerated() {
            try self.check(action, field: "actions[\(index)]", states: definition.states)
        }
        return path
    }

    static func check(_ source: RuleDefinition.Source) throws {
        switch (source.devices, source.labels, source.all) {
        case (let devices?, nil, nil), (let devices?, nil, false?):
            guard devices.count <= 10_000 else { throw HubError.invalidField("source.devices", "at most 10000") }
            for (index, id) in devices.enumerated() { try FieldRules.deviceID.check(id, field: "source.devices[\(index)]") }
        case (nil, let labels?, nil), (nil, let labels?, false?):
            guard !labels.isEmpty, labels.count <= FieldRules.maximumLabels else {
                throw HubError.invalidField("source.labels", "give 1 to \(FieldRules.maximumLabels) labels")
            }
            for (index, label) in labels.enumerated() { try FieldRules.label.check(label, field: "source.labels[\(index)]") }
        case (nil, nil, true?):
            break
        default:
            throw HubError.invalidField("source", "give one of {devices: [ids]}, {labels: [labels]} or {all: true}")
        }
    }

    static func checkSubtopic(_ filter: String) throws {
        guard !filter.isEmpty, filter.utf8.count <= 200 else { throw HubError.invalidField("subtopic", "must be 1 to 200 bytes") }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#"), level != "#" || index != levels.count - 1 {
                throw HubError.invalidField("subtopic", "'#' may stand only as the whole last level")
            }
            if level.contains("+"), level != "+" { throw HubError.invalidField("subtopic", "'+' may stand only as a whole level") }
        }
        if filter.unicodeScalars.contains(where: { $0.value == 0 }) { throw HubError.invalidField("subtopic", "must not contain NUL") }
        try FieldRules.ruleSubtopic.check(filter, field: "subtopic")
    }

    static func check(states: [String: RuleDefinition.Band]) throws {
        guard !states.isEmpty, states.count <= self.maximumStates else {
            throw HubError.invalidField("states", "give 1 to \(self.maximumStates) states")
        }
        for (name, band) in states {
            try self.stateName(name, field: "states")
            if band.above == nil && band.below == nil {
                throw HubError.invalidField("states.\(name)", "give above, below or both")
            }
            for bound in [band.above, band.below].compactMap({ $0 }) where !bound.isFinite {
                throw HubError.invalidField("states.\(name)", "bounds must be finite numbers")
            }
            if let above = band.above, let below = band.below, above >= below {
                throw HubError.invalidField("states.\(name)", "above (\(above)) must be less than below (\(below)), or no value is in the band")
            }
        }
        // No value may be in two bands: each pair's open intervals must be apart.
        let sorted = states.sorted { $0.key < $1.key }
        for (i, first) in sorted.enumerated() {
            for second in sorted[(i + 1)...] {
                let low = max(first.value.above ?? -.infinity, second.value.above ?? -.infinity)
                let high = min(first.value.below ?? .infinity, second.value.below ?? .infinity)
                if low < high {
                    throw HubError.invalidField(
                        "states", "\(first.key) and \(second.key) overlap (values between \(low) and \(high) would be in both); bands must be apart"
                    )
                }
            }
        }
    }

    static func stateName(_ name: String, field: String) throws {
        guard (try? FieldRules.ruleState.check(name, field: field)) != nil else {
            throw HubError.invalidField(field, "state names must match [A-Za-z0-9_-]{1,64}, not '\(name)'")
        }
    }

    static func check(_ action: RuleDefinition.Action, field: String, states: [String: RuleDefinition.Band]) throws {
        guard states[action.on.to] != nil else {
            throw HubError.invalidField("\(field).on.to", "'\(action.on.to)' is not one of the rule's states (\(states.keys.sorted().joined(separator: ", ")))")
        }
        if let from = action.on.from {
            guard states[from] != nil else {
                throw HubError.invalidField("\(field).on.from", "'\(from)' is not one of the rule's states (\(states.keys.sorted().joined(separator: ", ")))")
            }
            guard from != action.on.to else { throw HubError.invalidField("\(field).on", "from and to are the same state: that is no crossing") }
        }
        if let cooldown = action.cooldownSeconds, !(cooldown > 0 && cooldown <= self.maximumSeconds) {
            throw HubError.invalidField("\(field).cooldownSeconds", "must be above 0 and at most \(Int(self.maximumSeconds)) (a day)")
        }
        let kinds = [action.publish != nil, action.downlink != nil, action.webhook != nil].filter { $0 }.count
        guard kinds == 1 else { throw HubError.invalidField(field, "give exactly one of publish, downlink or webhook") }
        if let publish = action.publish {
            guard !publish.integrationId.isEmpty else { throw HubError.invalidField("\(field).publish.integrationId", "is required") }
            try self.checkTopicTemplate(publish.topic, field: "\(field).publish.topic")
            try self.checkPayload(publish.payload, field: "\(field).publish.payload")
        }
        if let downlink = action.downlink {
            if let id = downlink.deviceId { try FieldRules.deviceID.check(id, field: "\(field).downlink.deviceId") }
            try self.checkPayload(downlink.payload, field: "\(field).downlink.payload")
        }
        if let webhook = action.webhook, webhook.integrationId.isEmpty {
            throw HubError.invalidField("\(field).webhook.integrationId", "is required")
        }
    }

    static func checkTopicTemplate(_ template: String, field: String) throws {
        guard !template.isEmpty, template.utf8.count <= 256 else { throw HubError.invalidField(field, "must be 1 to 256 bytes") }
        guard !template.hasPrefix("$") else { throw HubError.invalidField(field, "must not start with $ (AWS's reserved topics)") }
        guard !template.contains("+"), !template.contains("#") else {
            throw HubError.invalidField(field, "must not contain MQTT wildcards (+, #): it is a topic to publish on")
        }
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else { throw HubError.invalidField(field, "has a '{' that is not closed") }
            let name = String(rest[rest.index(after: open)..<close])
            guard self.topicPlaceholders.contains(name) else {
                throw HubError.invalidField(
                    field, "{\(name)} cannot stand in a topic; use \(self.topicPlaceholders.map { "{\($0)}" }.joined(separator: ", "))"
                )
            }
            rest = rest[rest.index(after: close)...]
        }
        try FieldRules.ruleTopic.check(template, field: field)
    }

    static func checkPayload(_ payload: JSONValue, field: String) throws {
        guard payload.encoded.count <= 128 * 1024 else { throw HubError.invalidField(field, "must be at most 128 KB of JSON, AWS IoT's limit") }
        guard payload.depth <= 16 else { throw HubError.invalidField(field, "must nest at most 16 levels") }
    }
}

extension RuleDefinition {
    /// The fields of a definition, as `POST /v1/rules` takes them beside `name` and `enabled`.
    public static let fields: Set<String> = ["source", "subtopic", "value", "states", "debounce", "actions"]

    /// Reads a definition from JSON members: a missing, mistyped or unknown field is an error that
    /// names it (`actions[0].publish.topic`). The definition is not checked against its rules
    /// here; ``RuleRules/check(_:)`` does that.
    public static func decode(_ members: [String: JSONValue]) throws -> RuleDefinition {
        let value = JSONValue.object(members)
        let definition: RuleDefinition
        do {
            definition = try JSONDecoder().decode(RuleDefinition.self, from: Data(value.encoded))
        } catch let DecodingError.keyNotFound(key, context) {
            throw HubError.invalidField(self.field(context.codingPath + [key]), "is required")
        } catch let DecodingError.typeMismatch(type, context) {
            throw HubError.invalidField(self.field(context.codingPath), "must be \(self.expected(type))")
        } catch let DecodingError.valueNotFound(_, context) {
            throw HubError.invalidField(self.field(context.codingPath), "cannot be null")
        } catch let DecodingError.dataCorrupted(context) {
            throw HubError.invalidField(self.field(context.codingPath), "is not valid: \(context.debugDescription)")
        } catch {
            throw HubError.invalidField("body", "is not a rule definition")
        }
        // Codable passes over members it does not know; a misspelt `cooldownSecs` would then
        // silently mean no cooldown. What the definition reads back must hold every member sent.
        let known = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(definition))
        if let unknown = self.unknownMember(sent: value, known: known, at: "") {
            throw HubError.invalidField(unknown, "unknown field")
        }
        return definition
    }

    /// The first member of `sent` (not null) that `known` lacks, as a field path.
    private static func unknownMember(sent: JSONValue, known: JSONValue, at path: String) -> String? {
        switch (sent, known) {
        case (.object(let sent), .object(let known)):
            for key in sent.keys.sorted() {
                let field = path.isEmpty ? key : path + "." + key
                guard let knownMember = known[key] else {
                    if case .null = sent[key] { continue }
                    return field
                }
                // A payload is the user's JSON, kept whole: nothing in it is a field of ours.
                if key == "payload" { continue }
                if let unknown = self.unknownMember(sent: sent[key]!, known: knownMember, at: field) { return unknown }
            }
        case (.array(let sent), .array(let known)):
            for (index, (sentItem, knownItem)) in zip(sent, known).enumerated() {
                if let unknown = self.unknownMember(sent: sentItem, known: knownItem, at: "\(path)[\(index)]") { return unknown }
            }
        default:
            break
        }
        return nil
    }

    private static func field(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
        }
        return text.isEmpty ? "body" : text
    }

    private static func expected(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Double.Type, is Int.Type: "a number"
        case is Bool.Type: "true or false"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
