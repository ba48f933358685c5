import Foundation
import Hub
import Hummingbird

/// `/v1/rules`: rules that act on device data. Admins write them; any role reads them and tries
/// them on a message.
struct RuleRoutes {
    let hub: Hub

    static let fields: Set<String> = RuleDefinition.fields.union(["name", "enabled"])

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("rules", use: self.create)
        group.get("rules", use: self.list)
        group.get("rules/{id}", use: self.get)
        group.patch("rules/{id}", use: self.update)
        group.delete("rules/{id}", use: self.delete)
        group.post("rules/{id}/test", use: self.test)
        group.get("rules/{id}/states", use: self.states)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<RuleRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        let body = try await JSONBody(request: request, context: context, allowed: Self.fields)
        let definition = try RuleDefinition.decode(body.fields.filter { RuleDefinition.fields.contains($0.key) })
        let rule = try await self.hub.rules.create(
            name: try body.requiredString("name"), definition: definition, enabled: try body.bool("enabled") ?? true, by: principal
        )
        var response = EditedResponse(status: .created, response: RuleRepresentation(rule))
        response.headers[.location] = "/v1/rules/\(rule.id)"
        return response
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<RuleRepresentation> {
        let principal = try context.requirePrincipal()
        // At most 100 a tenant: one page.
        return ListRepresentation(items: try await self.hub.rules.list(by: principal).map(RuleRepresentation.init), nextCursor: nil)
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> RuleRepresentation {
        let principal = try context.requirePrincipal()
        return RuleRepresentation(try await self.hub.rules.get(try context.parameters.require("id"), by: principal))
    }

    /// Fields left out keep their values; a definition's fields given replace those fields
    /// (`debounce: null` removes the debounce), and the whole is checked again.
    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> RuleRepresentation {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        let id = try context.parameters.require("id")
        let body = try await JSONBody(request: request, context: context, allowed: Self.fields)
        for required in ["name", "enabled", "source", "subtopic", "value", "states", "actions"] where body.isNull(required) {
            throw HubError.invalidField(required, "cannot be null")
        }
        let given = body.fields.filter { RuleDefinition.fields.contains($0.key) }
        var definition: RuleDefinition?
        if !given.isEmpty {
            let current = try await self.hub.rules.get(id, by: principal).definition
            guard case .object(var members) = try JSONDecoder().decode(JSONValue.self, from: JSONEncoder().encode(current)) else {
                throw HubError.invalidField("body", "the rule's definition cannot be read")
            }
            for (key, value) in given {
                if case .null = value { members[key] = nil } else { members[key] = value }
            }
            definition = try RuleDefinition.decode(members)
        }
        let rule = try await self.hub.rules.update(id, name: try body.string("name"), definition: definition, enabled: try body.bool("enabled"), by: principal)
        return RuleRepresentation(rule)
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try await self.hub.rules.delete(try context.parameters.require("id"), by: principal)
        return Response(status: .noContent)
    }

    /// A dry run: what a message would do to a device in a state. Changes nothing.
    @Sendable func test(_ request: Request, context: ConduitRequestContext) async throws -> DryRunRepresentation {
        let principal = try context.requirePrincipal()
        let body = try await JSONBody(request: request, context: context, allowed: ["message", "deviceId", "state"])
        guard let message = body.fields["message"] else { throw HubError.invalidField("message", "is required: the message, as the device would send it") }
        var deviceName: String?
        let deviceID = try body.string("deviceId")
        if let deviceID {
            try FieldRules.deviceID.check(deviceID, field: "deviceId")
            do {
                deviceName = try await self.hub.devices.get(deviceID, by: principal).name
            } catch let error as HubError where error.kind == .notFound {
                // The rule is there: the field names something that is not.
                throw HubError.invalidField("deviceId", "no device '\(deviceID)' in the tenant")
            }
        }
        let state = try body.string("state")
        let dryRun = try await self.hub.rules.test(
            try context.parameters.require("id"), payload: Array(message.encoded), deviceID: deviceID ?? "{deviceId}", deviceName: deviceName ?? deviceID ?? "{deviceName}",
            currentState: state, by: principal
        )
        return DryRunRepresentation(dryRun)
    }

    @Sendable func states(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<RuleStateRepresentation> {
        let principal = try context.requirePrincipal()
        let page = try await self.hub.rules.states(
            try context.parameters.require("id"), page: try request.pageRequest(cursor: FieldRules.deviceCursor), by: principal
        )
        return ListRepresentation(items: page.items.map(RuleStateRepresentation.init), nextCursor: page.nextCursor)
    }
}

/// A rule as the API shows it: its definition's fields beside its name, and what it did.
struct RuleRepresentation: ResponseEncodable {
    struct Metrics: Encodable {
        var evaluated: Int
        var matched: Int
        var skipped: Int
        var fired: Int
        var actionFailures: Int
    }

    let id: String
    let name: String
    let enabled: Bool
    let source: RuleDefinition.Source
    let subtopic: String
    let value: String
    let states: [String: RuleDefinition.Band]
    let debounce: RuleDefinition.Debounce?
    let actions: [RuleDefinition.Action]
    /// On the node that answers, since it started.
    let metrics: Metrics
    let createdAt: Date
    let updatedAt: Date

    init(_ rule: RuleView) {
        self.id = rule.id
        self.name = rule.name
        self.enabled = rule.enabled
        self.source = rule.definition.source
        self.subtopic = rule.definition.subtopic
        self.value = rule.definition.value
        self.states = rule.definition.states
        self.debounce = rule.definition.debounce
        self.actions = rule.definition.actions
        let counts = rule.counts
        self.metrics = Metrics(
            evaluated: counts.evaluated, matched: counts.matched, skipped: counts.skipped, fired: counts.fired, actionFailures: counts.actionFailures
        )
        self.createdAt = rule.createdAt
        self.updatedAt = rule.updatedAt
    }

    private enum Keys: String, CodingKey {
        case id, name, enabled, source, subtopic, value, states, debounce, actions, metrics, createdAt, updatedAt
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.id, forKey: .id)
        try container.encode(self.name, forKey: .name)
        try container.encode(self.enabled, forKey: .enabled)
        try container.encode(self.source, forKey: .source)
        try container.encode(self.subtopic, forKey: .subtopic)
        try container.encode(self.value, forKey: .value)
        try container.encode(self.states, forKey: .states)
        // Null, not absent, when there is none: every field is always there.
        try container.encode(self.debounce, forKey: .debounce)
        try container.encode(self.actions, forKey: .actions)
        try container.encode(self.metrics, forKey: .metrics)
        try container.encode(self.createdAt, forKey: .createdAt)
        try container.encode(self.updatedAt, forKey: .updatedAt)
    }
}

/// What a dry run answers.
struct DryRunRepresentation: ResponseEncodable {
    struct Action: Encodable {
        var index: Int
        var kind: String
        var target: String
        var payload: JSONValue?
        var coolingDown: Bool

        private enum Keys: String, CodingKey { case index, kind, target, payload, coolingDown }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(self.index, forKey: .index)
            try container.encode(self.kind, forKey: .kind)
            try container.encode(self.target, forKey: .target)
            try container.encode(self.payload, forKey: .payload)
            try container.encode(self.coolingDown, forKey: .coolingDown)
        }
    }

    let value: Double?
    let skipped: String?
    let previousState: String?
    let state: String?
    let crossed: Bool
    let actions: [Action]

    init(_ dryRun: Rules.DryRun) {
        self.value = dryRun.value
        self.skipped = dryRun.skipped?.rawValue
        self.previousState = dryRun.previousState
        self.state = dryRun.state
        self.crossed = dryRun.crossed
        self.actions = dryRun.actions.map { Action(index: $0.index, kind: $0.kind, target: $0.target, payload: $0.payload, coolingDown: $0.coolingDown) }
    }

    private enum Keys: String, CodingKey { case value, skipped, previousState, state, crossed, actions }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.value, forKey: .value)
        try container.encode(self.skipped, forKey: .skipped)
        try container.encode(self.previousState, forKey: .previousState)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.crossed, forKey: .crossed)
        try container.encode(self.actions, forKey: .actions)
    }
}

/// A device's state in a rule.
struct RuleStateRepresentation: Encodable {
    let deviceId: String
    let state: String?
    /// A state on its way (debounce), and the readings so far.
    let candidate: String?
    let candidateSince: Date?
    let candidateSamples: Int?
    let value: Double?
    let updatedAt: Date?
    /// When each action (by index) last fired for the device.
    let lastFired: [String: Date]

    init(_ device: Rules.DeviceState) {
        self.deviceId = device.deviceID
        self.state = device.state.state
        self.candidate = device.state.candidate
        self.candidateSince = device.state.candidateSince
        self.candidateSamples = device.state.candidateSamples
        self.value = device.state.value
        self.updatedAt = device.state.updatedAt
        self.lastFired = Dictionary(uniqueKeysWithValues: device.state.lastFired.map { (String($0.key), $0.value) })
    }

    private enum Keys: String, CodingKey { case deviceId, state, candidate, candidateSince, candidateSamples, value, updatedAt, lastFired }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.deviceId, forKey: .deviceId)
        try container.encode(self.state, forKey: .state)
        try container.encode(self.candidate, forKey: .candidate)
        try container.encode(self.candidateSince, forKey: .candidateSince)
        try container.encode(self.candidateSamples, forKey: .candidateSamples)
        try container.encode(self.value, forKey: .value)
        try container.encode(self.updatedAt, forKey: .updatedAt)
        try container.encode(self.lastFired, forKey: .lastFired)
    }
}
