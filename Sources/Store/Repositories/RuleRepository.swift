import Foundation
import SQLKit

/// Rules, and each device's state in them. Every query is scoped by tenant but ingest's read of
/// every enabled rule.
public struct RuleRepository: Sendable {
    let session: StoreSession

    public func insert(_ rule: Rule) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO rules (id, tenant_id, name, definition, enabled, created_at, updated_at)
            VALUES (\(bind: rule.id), \(bind: rule.tenantID), \(bind: rule.name), \(bind: rule.definition), \(bind: rule.enabled ? 1 : 0),
                    \(bind: rule.createdAt.storeMilliseconds), \(bind: rule.updatedAt.storeMilliseconds))
            """
        ).run()
    }

    /// Writes the name, the definition and whether it is enabled.
    public func update(_ rule: Rule) async throws {
        try await self.session.sql.raw(
            """
            UPDATE rules SET name = \(bind: rule.name), definition = \(bind: rule.definition), enabled = \(bind: rule.enabled ? 1 : 0),
                updated_at = \(bind: rule.updatedAt.storeMilliseconds)
            WHERE tenant_id = \(bind: rule.tenantID) AND id = \(bind: rule.id)
            """
        ).run()
    }

    /// Deletes the rule; ``deleteStates(tenantID:ruleID:)`` forgets its devices' states.
    public func delete(tenantID: String, id: String) async throws {
        try await self.session.sql.raw("DELETE FROM rules WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)").run()
    }

    /// Forgets every device's state in the rule (it was deleted, or its definition changed).
    public func deleteStates(tenantID: String, ruleID: String) async throws {
        try await self.session.sql.raw("DELETE FROM rule_states WHERE tenant_id = \(bind: tenantID) AND rule_id = \(bind: ruleID)").run()
    }

    public func count(tenantID: String) async throws -> Int {
        try await self.session.sql.raw("SELECT COUNT(*) AS n FROM rules WHERE tenant_id = \(bind: tenantID)").first()?.decode(column: "n", as: Int.self) ?? 0
    }

    public func get(tenantID: String, id: String, forUpdate: Bool = false) async throws -> Rule? {
        try await self.session.sql.raw(
            """
            SELECT * FROM rules WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)\
            \(unsafeRaw: forUpdate ? self.session.dialect.forUpdate : "")
            """
        ).first().map(Self.rule)
    }

    /// The tenant's rules, by name.
    public func list(tenantID: String) async throws -> [Rule] {
        try await self.session.sql.raw("SELECT * FROM rules WHERE tenant_id = \(bind: tenantID) ORDER BY name").all().map(Self.rule)
    }

    /// Every enabled rule of every tenant: what ingest evaluates.
    public func listEnabled() async throws -> [Rule] {
        try await self.session.sql.raw("SELECT * FROM rules WHERE enabled = 1 ORDER BY tenant_id, id").all().map(Self.rule)
    }

    /// The states of these (rule, device) pairs that exist.
    public func states(_ pairs: [(ruleID: String, deviceID: String)]) async throws -> [RuleStateRecord] {
        guard !pairs.isEmpty else { return [] }
        // By rule, then the devices: one statement per rule in the batch, each with an IN list.
        var byRule: [String: [String]] = [:]
        for pair in pairs { byRule[pair.ruleID, default: []].append(pair.deviceID) }
        var records: [RuleStateRecord] = []
        for (ruleID, devices) in byRule.sorted(by: { $0.key < $1.key }) {
            var query = SQLQueryString("SELECT * FROM rule_states WHERE rule_id = \(bind: ruleID) AND device_id IN (")
            query.appendBindList(Array(Set(devices)).sorted())
            query.appendLiteral(")")
            records += try await self.session.sql.raw(query).all().map(Self.state)
        }
        return records
    }

    /// The tenant's devices' states in one rule, by device.
    public func states(tenantID: String, ruleID: String, after: String? = nil, limit: Int) async throws -> [RuleStateRecord] {
        var query = SQLQueryString("SELECT * FROM rule_states WHERE tenant_id = \(bind: tenantID) AND rule_id = \(bind: ruleID)")
        if let after {
            query.appendLiteral(" AND device_id > ")
            query.appendInterpolation(bind: after)
        }
        query.appendLiteral(" ORDER BY device_id LIMIT ")
        query.appendInterpolation(bind: limit)
        return try await self.session.sql.raw(query).all().map(Self.state)
    }

    /// Writes these states, new or changed: up to 200 in one statement.
    public func save(_ records: [RuleStateRecord]) async throws {
        var start = 0
        while start < records.count {
            let chunk = records[start..<min(records.count, start + 200)]
            var query = SQLQueryString("INSERT INTO rule_states (rule_id, device_id, tenant_id, state, updated_at) VALUES ")
            for (index, record) in chunk.enumerated() {
                if index > 0 { query.appendLiteral(", ") }
                query.appendLiteral("(")
                query.appendInterpolation(bind: record.ruleID)
                query.appendLiteral(", ")
                query.appendInterpolation(bind: record.deviceID)
                query.appendLiteral(", ")
                query.appendInterpolation(bind: record.tenantID)
                query.appendLiteral(", ")
                query.appendInterpolation(bind: record.state)
                query.appendLiteral(", ")
                query.appendInterpolation(bind: record.updatedAt.storeMilliseconds)
                query.appendLiteral(")")
            }
            query.appendLiteral(" ON CONFLICT (rule_id, device_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at")
            try await self.session.sql.raw(query).run()
            start += 200
        }
    }

    /// Forgets a device's states in every rule (the device was deleted).
    public func deleteStates(tenantID: String, deviceID: String) async throws {
        try await self.session.sql.raw("DELETE FROM rule_states WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID)").run()
    }

    static func rule(_ row: any SQLRow) throws -> Rule {
        Rule(
            id: try row.decode(column: "id", as: String.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            definition: try row.decode(column: "definition", as: String.self),
            enabled: try row.decode(column: "enabled", as: Int.self) != 0,
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self))
        )
    }

    static func state(_ row: any SQLRow) throws -> RuleStateRecord {
        RuleStateRecord(
            ruleID: try row.decode(column: "rule_id", as: String.self),
            deviceID: try row.decode(column: "device_id", as: String.self),
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            state: try row.decode(column: "state", as: String.self),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self))
        )
    }
}
