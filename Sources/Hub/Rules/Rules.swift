import Foundation
import Store

/// A rule as the hub shows it: its definition read back.
public struct RuleView: Sendable, Equatable {
    public var id: String
    public var name: String
    public var enabled: Bool
    public var definition: RuleDefinition
    /// What it did on this node since the node started.
    public var counts: RuleCounts
    public var createdAt: Date
    public var updatedAt: Date
}

/// The tenant's rules: admins write them, any role reads them. Ingest evaluates the enabled ones.
public struct Rules: Sendable {
    let hub: Hub

    public func create(name: String, definition: RuleDefinition, enabled: Bool = true, by principal: Principal) async throws -> RuleView {
        try principal.require(.admin, to: "changing rules")
        let name = try Validation.displayName(name)
        try await self.check(definition, tenantID: principal.tenantID)
        let now = self.hub.now()
        let rule = Rule(
            id: Secrets.identifier(prefix: "rule_"), tenantID: principal.tenantID, name: name, definition: try Self.encode(definition), enabled: enabled,
            createdAt: now, updatedAt: now
        )
        do {
            try await self.hub.store.transaction { session in
                // Every message of the tenant meets every rule, in the one ingest transaction.
                guard try await session.rules.count(tenantID: principal.tenantID) < RuleRules.maximumRulesPerTenant else {
                    throw HubError.conflict("too_many_rules", "a tenant has at most \(RuleRules.maximumRulesPerTenant) rules")
                }
                try await session.rules.insert(rule)
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("rule_exists", "name: the tenant has a rule named '\(name)' already")
        }
        return try self.view(rule)
    }

    public func list(by principal: Principal) async throws -> [RuleView] {
        try await self.hub.store.session.rules.list(tenantID: principal.tenantID).map(self.view)
    }

    public func get(_ id: String, by principal: Principal) async throws -> RuleView {
        try self.view(try await self.stored(id, tenantID: principal.tenantID))
    }

    /// Replaces what is given. A changed definition starts every device afresh: its first
    /// reading after the change sets its state and fires nothing (a state, or an action's
    /// cooldown, of the old definition could mean something else in the new one).
    public func update(_ id: String, name: String? = nil, definition: RuleDefinition? = nil, enabled: Bool? = nil, by principal: Principal) async throws -> RuleView {
        try principal.require(.admin, to: "changing rules")
        var rule = try await self.stored(id, tenantID: principal.tenantID)
        if let name { rule.name = try Validation.displayName(name) }
        let original = rule.definition
        if let definition {
            try await self.check(definition, tenantID: principal.tenantID)
            rule.definition = try Self.encode(definition)
        }
        if let enabled { rule.enabled = enabled }
        rule.updatedAt = self.hub.now()
        let updated = rule
        do {
            try await self.hub.store.transaction { session in
                try await session.rules.update(updated)
                if updated.definition != original { try await session.rules.deleteStates(tenantID: updated.tenantID, ruleID: updated.id) }
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("rule_exists", "name: the tenant has a rule named '\(rule.name)' already")
        }
        return try self.view(rule)
    }

    public func delete(_ id: String, by principal: Principal) async throws {
        try principal.require(.admin, to: "changing rules")
        _ = try await self.stored(id, tenantID: principal.tenantID)
        try await self.hub.store.transaction { session in
            try await session.rules.delete(tenantID: principal.tenantID, id: id)
            try await session.rules.deleteStates(tenantID: principal.tenantID, ruleID: id)
        }
        self.hub.ingest.ruleCounters.forget(id)
    }

    /// A device's state in a rule.
    public struct DeviceState: Sendable, Equatable {
        public var deviceID: String
        public var state: RuleDeviceState
    }

    /// Each device's state in the rule, by device id.
    public func states(_ id: String, page: PageRequest, by principal: Principal) async throws -> Page<DeviceState> {
        _ = try await self.stored(id, tenantID: principal.tenantID)
        let after = try page.decodedCursor()
        if let after, !Validation.isDeviceID(after) { throw HubError.invalidField("cursor", "must be a nextCursor returned by this list") }
        let records = try await self.hub.store.session.rules.states(tenantID: principal.tenantID, ruleID: id, after: after, limit: page.limit + 1)
        let fetched = records.compactMap { record -> DeviceState? in
            guard let state = try? JSONDecoder().decode(RuleDeviceState.self, from: Data(record.state.utf8)) else { return nil }
            return DeviceState(deviceID: record.deviceID, state: state)
        }
        return PageRequest.page(fetched, limit: page.limit, key: \.deviceID)
    }

    /// What a message would do: the value read, the state the device would be in, and the
    /// actions that would fire, rendered. Changes nothing.
    public struct DryRun: Sendable, Equatable {
        public struct Action: Sendable, Equatable {
            public var index: Int
            public var kind: String
            /// For publish: the AWS topic; for downlink: the device.
            public var target: String
            public var payload: JSONValue?
            /// In its cooldown: it would not fire.
            public var coolingDown: Bool
        }

        public var value: Double?
        /// Why no value was read.
        public var skipped: RuleSkip?
        public var previousState: String?
        public var state: String?
        public var crossed: Bool
        public var actions: [Action]
    }

    public func test(
        _ id: String, payload: [UInt8], deviceID: String, deviceName: String? = nil, currentState: String? = nil, by principal: Principal
    ) async throws -> DryRun {
        let rule = try await self.get(id, by: principal)
        return try Self.dryRun(rule.definition, payload: payload, deviceID: deviceID, deviceName: deviceName ?? deviceID, currentState: currentState, at: self.hub.now())
    }

    static func dryRun(_ definition: RuleDefinition, payload: [UInt8], deviceID: String, deviceName: String, currentState: String?, at now: Date) throws -> DryRun {
        if let currentState, definition.states[currentState] == nil {
            throw HubError.invalidField("state", "'\(currentState)' is not one of the rule's states (\(definition.states.keys.sorted().joined(separator: ", ")))")
        }
        let path = try RuleRules.check(definition)
        var dryRun = DryRun(value: nil, skipped: nil, previousState: currentState, state: currentState, crossed: false, actions: [])
        let value: Double
        switch RuleEngine.value(of: payload, at: path) {
        case .success(let read): value = read
        case .failure(let skip):
            dryRun.skipped = skip.reason
            return dryRun
        }
        var state = RuleDeviceState(state: currentState)
        let evaluation = RuleEngine.evaluate(definition, value: value, state: &state, at: now)
        dryRun.value = value
        dryRun.state = evaluation.state
        dryRun.crossed = evaluation.crossed
        guard let current = evaluation.state else { return dryRun }
        let context = RuleEngine.Context(deviceID: deviceID, deviceName: deviceName, value: value, state: current, previousState: evaluation.previousState)
        for index in (evaluation.fired + evaluation.cooledDown).sorted() {
            let action = definition.actions[index]
            let coolingDown = evaluation.cooledDown.contains(index)
            if let publish = action.publish {
                dryRun.actions.append(.init(index: index, kind: "publish", target: RuleEngine.render(publish.topic, context), payload: RuleEngine.render(publish.payload, context), coolingDown: coolingDown))
            } else if let downlink = action.downlink {
                dryRun.actions.append(.init(index: index, kind: "downlink", target: downlink.deviceId ?? deviceID, payload: RuleEngine.render(downlink.payload, context), coolingDown: coolingDown))
            } else if let webhook = action.webhook {
                dryRun.actions.append(.init(index: index, kind: "webhook", target: webhook.integrationId, payload: nil, coolingDown: coolingDown))
            }
        }
        return dryRun
    }

    private func check(_ definition: RuleDefinition, tenantID: String) async throws {
        try RuleRules.check(definition)
        for (index, action) in definition.actions.enumerated() {
            if let publish = action.publish {
                let field = "actions[\(index)].publish.integrationId"
                guard let integration = try await self.hub.store.session.integrations.get(tenantID: tenantID, id: publish.integrationId) else {
                    throw HubError.invalidField(field, "no integration '\(publish.integrationId)' in the tenant")
                }
                guard integration.status == .active else {
                    throw HubError.invalidField(field, "integration '\(publish.integrationId)' is being deleted")
                }
            }
            if let webhook = action.webhook, try await self.hub.store.session.webhooks.get(tenantID: tenantID, id: webhook.integrationId) == nil {
                throw HubError.invalidField("actions[\(index)].webhook.integrationId", "no webhook '\(webhook.integrationId)' in the tenant")
            }
        }
    }

    private func stored(_ id: String, tenantID: String) async throws -> Rule {
        guard let rule = try await self.hub.store.session.rules.get(tenantID: tenantID, id: id) else { throw HubError.notFound("rule", id) }
        return rule
    }

    static func encode(_ definition: RuleDefinition) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(definition), as: UTF8.self)
    }

    func view(_ rule: Rule) throws -> RuleView {
        guard let definition = try? JSONDecoder().decode(RuleDefinition.self, from: Data(rule.definition.utf8)) else {
            throw StoreError.corrupt("rule \(rule.id) has a definition this version cannot read")
        }
        return RuleView(
            id: rule.id, name: rule.name, enabled: rule.enabled, definition: definition, counts: self.hub.ingest.ruleCounters.counts(of: rule.id),
            createdAt: rule.createdAt, updatedAt: rule.updatedAt
        )
    }
}
