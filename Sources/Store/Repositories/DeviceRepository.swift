import Foundation
import SQLKit

/// Devices and their labels. Every query is scoped by tenant except the broker's credential lookup.
public struct DeviceRepository: Sendable {
    let session: StoreSession

    /// Which devices ``list(tenantID:filter:after:limit:)`` returns.
    public struct Filter: Sendable, Equatable {
        public var status: DeviceStatus?
        public var label: String?
        /// Devices whose id starts with it, or whose name contains it (either case).
        public var search: String?

        public init(status: DeviceStatus? = nil, label: String? = nil, search: String? = nil) {
            self.status = status
            self.label = label
            self.search = search
        }
    }

    /// Inserts a device; an id in use (in any tenant) is ``StoreError/conflict(_:)``.
    public func insert(_ device: Device) async throws {
        do {
            try await self.session.sql.raw(
                """
                INSERT INTO devices (id, tenant_id, name, status, labels, attributes, secret_hash,
                                     created_at, updated_at, status_changed_at, certificate)
                VALUES (\(bind: device.id), \(bind: device.tenantID), \(bind: device.name), \(bind: device.status.rawValue),
                        \(bind: try StoreJSON.encode(device.labels)), \(bind: try StoreJSON.encode(device.attributes)),
                        \(bind: device.secretHash), \(bind: device.createdAt.storeMilliseconds),
                        \(bind: device.updatedAt.storeMilliseconds), \(bind: device.statusChangedAt.storeMilliseconds),
                        \(bind: try device.certificate.map { try StoreJSON.encode($0) }))
                """
            ).run()
        } catch where StoreError.isUniqueViolation(error) {
            throw StoreError.conflict("device id '\(device.id)' is in use")
        }
        try await self.insertLabels(of: device)
    }

    /// The tenant's device, locked until the transaction ends when `forUpdate`.
    public func get(tenantID: String, id: String, forUpdate: Bool = false) async throws -> Device? {
        try await self.session.sql.raw(
            """
            SELECT * FROM devices WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id)\
            \(unsafeRaw: forUpdate ? self.session.dialect.forUpdate : "")
            """
        ).first().map(Self.device)
    }

    /// The device with this id in any tenant: for the broker, which knows only the client id.
    public func get(id: String) async throws -> Device? {
        try await self.session.sql.raw("SELECT * FROM devices WHERE id = \(bind: id)").first().map(Self.device)
    }

    /// `SELECT <columns> FROM devices d` for the tenant's devices that pass the filter.
    private func filtered(_ columns: String, tenantID: String, filter: Filter) -> SQLQueryString {
        var query = SQLQueryString("SELECT \(unsafeRaw: columns) FROM devices d")
        if let label = filter.label {
            query.appendInterpolation(
                unsafeRaw: " JOIN device_labels l ON l.device_id = d.id AND l.tenant_id = d.tenant_id"
            )
            query.appendLiteral(" AND l.label = ")
            query.appendInterpolation(bind: label)
        }
        query.appendLiteral(" WHERE d.tenant_id = ")
        query.appendInterpolation(bind: tenantID)
        if let status = filter.status {
            query.appendLiteral(" AND d.status = ")
            query.appendInterpolation(bind: status.rawValue)
        }
        if let search = filter.search {
            // LIKE's wildcards in what was typed match themselves.
            let escaped = search.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_")
            // Either case, on both engines (SQLite's LIKE ignores case, PostgreSQL's does not).
            query.appendLiteral(" AND (LOWER(d.id) LIKE ")
            query.appendInterpolation(bind: escaped.lowercased() + "%")
            query.appendLiteral(" ESCAPE '\\' OR LOWER(d.name) LIKE ")
            query.appendInterpolation(bind: "%" + escaped.lowercased() + "%")
            query.appendLiteral(" ESCAPE '\\')")
        }
        return query
    }

    /// Up to `limit` devices of the tenant with ids after `after`, by id.
    public func list(tenantID: String, filter: Filter = Filter(), after: String? = nil, limit: Int) async throws -> [Device] {
        var query = self.filtered("d.*", tenantID: tenantID, filter: filter)
        if let after {
            query.appendLiteral(" AND d.id > ")
            query.appendInterpolation(bind: after)
        }
        query.appendLiteral(" ORDER BY d.id LIMIT ")
        query.appendInterpolation(bind: limit)
        return try await self.session.sql.raw(query).all().map(Self.device)
    }

    /// Writes every field of the device but its id and tenant.
    public func update(_ device: Device) async throws {
        try await self.session.sql.raw(
            """
            UPDATE devices SET name = \(bind: device.name), status = \(bind: device.status.rawValue),
                labels = \(bind: try StoreJSON.encode(device.labels)), attributes = \(bind: try StoreJSON.encode(device.attributes)),
                secret_hash = \(bind: device.secretHash), updated_at = \(bind: device.updatedAt.storeMilliseconds),
                status_changed_at = \(bind: device.statusChangedAt.storeMilliseconds),
                certificate = \(bind: try device.certificate.map { try StoreJSON.encode($0) })
            WHERE tenant_id = \(bind: device.tenantID) AND id = \(bind: device.id)
            """
        ).run()
        try await self.session.sql.raw(
            "DELETE FROM device_labels WHERE tenant_id = \(bind: device.tenantID) AND device_id = \(bind: device.id)"
        ).run()
        try await self.insertLabels(of: device)
    }

    /// Removes the device and its labels; false when the tenant has no such device.
    public func delete(tenantID: String, id: String) async throws -> Bool {
        try await self.session.sql.raw(
            "DELETE FROM devices WHERE tenant_id = \(bind: tenantID) AND id = \(bind: id) RETURNING id"
        ).first() != nil
    }

    /// How many devices the tenant has in each status.
    /// How many of the tenant's devices pass the filter.
    public func count(tenantID: String, filter: Filter = Filter()) async throws -> Int {
        try await self.session.sql.raw(self.filtered("COUNT(*) AS n", tenantID: tenantID, filter: filter)).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    public func countByStatus(tenantID: String) async throws -> [DeviceStatus: Int] {
        let rows = try await self.session.sql.raw(
            "SELECT status, COUNT(*) AS n FROM devices WHERE tenant_id = \(bind: tenantID) GROUP BY status"
        ).all()
        var counts: [DeviceStatus: Int] = [:]
        for row in rows {
            if let status = DeviceStatus(rawValue: try row.decode(column: "status", as: String.self)) {
                counts[status] = try row.decode(column: "n", as: Int.self)
            }
        }
        return counts
    }

    private func insertLabels(of device: Device) async throws {
        for label in device.labels {
            try await self.session.sql.raw(
                """
                INSERT INTO device_labels (device_id, tenant_id, label)
                VALUES (\(bind: device.id), \(bind: device.tenantID), \(bind: label))
                """
            ).run()
        }
    }

    static func device(_ row: any SQLRow) throws -> Device {
        let id = try row.decode(column: "id", as: String.self)
        let status = try row.decode(column: "status", as: String.self)
        guard let parsedStatus = DeviceStatus(rawValue: status) else {
            throw StoreError.corrupt("device '\(id)' has unknown status '\(status)'")
        }
        return Device(
            id: id,
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            name: try row.decode(column: "name", as: String.self),
            status: parsedStatus,
            labels: try row.decodeJSON(column: "labels", as: [String].self),
            attributes: try row.decodeJSON(column: "attributes", as: [String: String].self),
            secretHash: try row.decode(column: "secret_hash", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "created_at", as: Int.self)),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self)),
            statusChangedAt: Date(storeMilliseconds: try row.decode(column: "status_changed_at", as: Int.self)),
            certificate: try row.decode(column: "certificate", as: String?.self).map {
                try JSONDecoder().decode(DeviceCertificate.self, from: Data($0.utf8))
            }
        )
    }
}
