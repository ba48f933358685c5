import SQLKit

/// How a device's messages are routed at ingest: its tenant, its status and the integrations that
/// forward them to AWS. Read for many devices at once, and held in memory by the hub until
/// ``generation()`` moves.
public struct DeviceRoute: Sendable, Equatable {
    /// An active integration the device is bound to, with what decides how its messages look in AWS.
    public struct Target: Sendable, Equatable {
        public var integrationID: String
        public var uplinkTopic: String
        public var payloadFormat: String

        public init(integrationID: String, uplinkTopic: String, payloadFormat: String) {
            self.integrationID = integrationID
            self.uplinkTopic = uplinkTopic
            self.payloadFormat = payloadFormat
        }
    }

    public var tenantID: String
    public var name: String
    public var status: DeviceStatus
    /// The active integrations the device is bound to, by id.
    public var targets: [Target]
    /// Its labels, which rules may watch by.
    public var labels: [String]

    public init(tenantID: String, name: String, status: DeviceStatus, targets: [Target], labels: [String] = []) {
        self.tenantID = tenantID
        self.name = name
        self.status = status
        self.targets = targets
        self.labels = labels
    }
}

/// The rows ingest routes by, and the number that changes whenever they do.
public struct RoutingRepository: Sendable {
    let session: StoreSession

    /// Bumped by the store's triggers on every change to devices' status, bindings and
    /// integrations' state, whoever makes it.
    public func generation() async throws -> Int {
        guard let row = try await self.session.sql.raw("SELECT generation FROM routing_generation WHERE id = 1").first() else {
            throw StoreError.corrupt("the routing generation row is missing")
        }
        return try row.decode(column: "generation", as: Int.self)
    }

    /// The routes of these devices; a device that does not exist is absent.
    public func routes(deviceIDs: [String]) async throws -> [String: DeviceRoute] {
        guard !deviceIDs.isEmpty else { return [:] }
        var query = SQLQueryString(
            """
            SELECT d.id, d.tenant_id, d.name, d.status, d.labels, i.id AS integration_id, i.settings FROM devices d
            LEFT JOIN aws_things t ON t.device_id = d.id AND t.tenant_id = d.tenant_id AND t.wanted = 'active'
            LEFT JOIN integrations i ON i.id = t.integration_id AND i.active = 1 AND i.status = 'active'
            WHERE d.id IN (
            """
        )
        query.appendBindList(deviceIDs)
        query.appendLiteral(") ORDER BY d.id, i.id")
        var routes: [String: DeviceRoute] = [:]
        for row in try await self.session.sql.raw(query).all() {
            let id = try row.decode(column: "id", as: String.self)
            if routes[id] == nil {
                let status = try row.decode(column: "status", as: String.self)
                guard let parsed = DeviceStatus(rawValue: status) else { throw StoreError.corrupt("device \(id) has status '\(status)'") }
                routes[id] = DeviceRoute(
                    tenantID: try row.decode(column: "tenant_id", as: String.self), name: try row.decode(column: "name", as: String.self),
                    status: parsed, targets: [], labels: try row.decodeJSON(column: "labels", as: [String].self)
                )
            }
            if let integrationID = try row.decode(column: "integration_id", as: String?.self) {
                let settings = try row.decodeJSON(column: "settings", as: IntegrationSettings.self)
                routes[id]!.targets.append(
                    DeviceRoute.Target(integrationID: integrationID, uplinkTopic: settings.uplinkTopic, payloadFormat: settings.payloadFormat)
                )
            }
        }
        return routes
    }
}
