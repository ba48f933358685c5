import Foundation

/// Where one device stands in one rule: its state, a state it is on its way into (debounce),
/// and when each action last fired for it (cooldown). Kept in the store, so that a restart
/// neither fires again nor forgets.
public struct RuleDeviceState: Sendable, Equatable, Codable {
    /// nil until the first reading in a band.
    public var state: String?
    /// A state the value is in but that does not hold yet (debounce), since when and for how
    /// many readings in a row.
    public var candidate: String?
    public var candidateSince: Date?
    public var candidateSamples: Int?
    /// When each action (by its index) last fired for this device.
    public var lastFired: [Int: Date]
    /// The last value read, and when.
    public var value: Double?
    public var updatedAt: Date?

    public init(state: String? = nil) {
        self.state = state
        self.lastFired = [:]
    }

    /// True when only the last value and its time differ from `other`.
    func standsAsBefore(_ other: RuleDeviceState) -> Bool {
        self.state == other.state && self.candidate == other.candidate && self.candidateSince == other.candidateSince
            && self.candidateSamples == other.candidateSamples && self.lastFired == other.lastFired
    }
}

/// What one reading did: the value, the state before and after, and the actions it fires.
public struct RuleEvaluation: Sendable, Equatable {
    public var value: Double
    public var previousState: String?
    public var state: String?
    /// The state whose band the value is in, whether or not the device is in it yet.
    public var band: String?
    /// The device crossed into another state (not its first state: that is no crossing).
    public var crossed: Bool
    /// Indexes of the actions that fire.
    public var fired: [Int]
    /// Indexes of the actions that would fire but are in their cooldown.
    public var cooledDown: [Int]
}

/// Why a message gave a rule no value.
public enum RuleSkip: String, Sendable, Equatable {
    case notJSON = "not_json"
    case noValue = "no_value"
    case notANumber = "not_a_number"
}

/// The rule engine's pure core: reads a value, moves a device's state, picks the actions. No
/// store, no clock, no IO: time comes in as an argument.
public enum RuleEngine {
    /// The number at `path` in a JSON message, or why there is none. Numbers, and booleans as
    /// 1 and 0; a numeric string is not a number. Read as ingest reads it (``JSONValueReader``).
    public static func value(of payload: [UInt8], at path: JSONPath) -> Result<Double, RuleSkipError> {
        var values: [Result<Double, RuleSkipError>] = [.failure(RuleSkipError(.noValue))]
        let isJSON = payload.withUnsafeBytes { JSONValueReader([path]).read($0, wanted: [0], into: &values) }
        return isJSON ? values[0] : .failure(RuleSkipError(.notJSON))
    }

    /// A rule's states as a list to search, in their names' order (bands never overlap).
    public typealias Bands = [(name: String, band: RuleDefinition.Band)]

    static func bands(_ states: [String: RuleDefinition.Band]) -> Bands {
        states.sorted { $0.key < $1.key }.map { (name: $0.key, band: $0.value) }
    }

    /// Applies one reading to a device's state.
    public static func evaluate(
        _ definition: RuleDefinition, value: Double, state: inout RuleDeviceState, at now: Date
    ) -> RuleEvaluation {
        self.evaluate(bands: self.bands(definition.states), debounce: definition.debounce, actions: definition.actions, value: value, state: &state, at: now)
    }

    /// Applies one reading to a device's state, in a rule made ready for ingest: its bands
    /// listed once (ingest evaluates every reading of every device in each rule it reaches).
    static func evaluate(
        bands: Bands, debounce: RuleDefinition.Debounce?, actions: [RuleDefinition.Action], value: Double, state: inout RuleDeviceState, at now: Date
    ) -> RuleEvaluation {
        let previous = state.state
        state.value = value
        state.updatedAt = now
        var band: String?
        for entry in bands where entry.band.contains(value) {
            band = entry.name
            break
        }
        var evaluation = RuleEvaluation(value: value, previousState: previous, state: previous, band: band, crossed: false, fired: [], cooledDown: [])
        // In no band: the device keeps its state (hysteresis), and a state on its way is let go.
        guard let band, band != previous else {
            state.candidate = nil
            state.candidateSince = nil
            state.candidateSamples = nil
            return evaluation
        }
        if previous != nil, let debounce {
            if state.candidate != band {
                state.candidate = band
                state.candidateSince = now
                state.candidateSamples = 0
            }
            state.candidateSamples = (state.candidateSamples ?? 0) + 1
            let holds: Bool
            if let samples = debounce.samples {
                holds = (state.candidateSamples ?? 0) >= samples
            } else if let seconds = debounce.forSeconds {
                holds = now.timeIntervalSince(state.candidateSince ?? now) >= seconds
            } else {
                holds = true
            }
            guard holds else { return evaluation }
        }
        state.state = band
        state.candidate = nil
        state.candidateSince = nil
        state.candidateSamples = nil
        evaluation.state = band
        // The first state a device takes is where it starts, not a crossing: nothing fires.
        guard previous != nil else { return evaluation }
        evaluation.crossed = true
        for (index, action) in actions.enumerated() where action.on.matches(from: previous, to: band) {
            if let cooldown = action.cooldownSeconds, let last = state.lastFired[index], now.timeIntervalSince(last) < cooldown {
                evaluation.cooledDown.append(index)
                continue
            }
            state.lastFired[index] = now
            evaluation.fired.append(index)
        }
        return evaluation
    }

    /// What an action's placeholders stand for.
    public struct Context: Sendable, Equatable {
        public var deviceID: String
        public var deviceName: String
        public var value: Double
        public var state: String
        public var previousState: String?

        public init(deviceID: String, deviceName: String, value: Double, state: String, previousState: String?) {
            self.deviceID = deviceID
            self.deviceName = deviceName
            self.value = value
            self.state = state
            self.previousState = previousState
        }

        /// The value as JSON writes it: whole numbers without a fraction.
        var valueText: String {
            RuleEngine.format(self.value)
        }

        func text(_ name: String) -> String? {
            switch name {
            case "deviceId": self.deviceID
            case "deviceName": self.deviceName
            case "value": self.valueText
            case "state": self.state
            case "previousState": self.previousState ?? ""
            default: nil
            }
        }
    }

    /// The value as a whole number, when it is one that a Double holds exactly.
    /// A value as JSON writes it: a whole number without a fraction.
    public static func format(_ value: Double) -> String {
        self.wholeNumber(value).map { String($0) } ?? String(value)
    }

    static func wholeNumber(_ value: Double) -> Int64? {
        value == value.rounded() && abs(value) < 9e15 ? Int64(value) : nil
    }

    /// `template` with its placeholders filled in.
    public static func render(_ template: String, _ context: Context) -> String {
        var result = ""
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            result += rest[..<open]
            if let close = rest[open...].firstIndex(of: "}"), let text = context.text(String(rest[rest.index(after: open)..<close])) {
                result += text
                rest = rest[rest.index(after: close)...]
            } else {
                result += "{"
                rest = rest[rest.index(after: open)...]
            }
        }
        return result + rest
    }

    /// A JSON payload with its strings rendered; a string that is only `{value}` becomes the number.
    public static func render(_ payload: JSONValue, _ context: Context) -> JSONValue {
        switch payload {
        case .string("{value}"):
            return self.wholeNumber(context.value).map(JSONValue.integer) ?? .number(context.value)
        case .string(let text): return .string(self.render(text, context))
        case .array(let items): return .array(items.map { self.render($0, context) })
        case .object(let members): return .object(members.mapValues { self.render($0, context) })
        default: return payload
        }
    }
}

public struct RuleSkipError: Error, Sendable, Equatable {
    public let reason: RuleSkip

    init(_ reason: RuleSkip) {
        self.reason = reason
    }
}
