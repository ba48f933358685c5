import Foundation
import SQLKit

/// Each device's provisioning in each integration: the durable jobs of the provisioner.
public struct AWSThingRepository: Sendable {
    let session: StoreSession

    public func insert(_ record: ProvisioningJob) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO aws_things (integration_id, device_id, tenant_id, wanted, bound, state, progress, private_key,
                                    needs_work, last_error, attempts, next_attempt_at, lease_owner, lease_until, updated_at)
            VALUES (\(bind: record.integrationID), \(bind: record.deviceID), \(bind: record.tenantID),
                    \(bind: record.wanted.rawValue), \(bind: record.bound ? 1 : 0), \(bind: record.state.rawValue),
                    \(bind: try StoreJSON.encode(record.progress)), \(bind: record.sealedPrivateKey),
                    \(bind: record.needsWork ? 1 : 0), \(bind: record.lastError), \(bind: record.attempts),
                    \(bind: record.nextAttemptAt.storeMilliseconds), NULL, 0, \(bind: record.updatedAt.storeMilliseconds))
            """
        ).run()
    }

    /// Writes every field of the record; with `leaseOwner`, only while that worker holds the lease
    /// (false when it lost it), and the lease is extended to `leaseUntil` or released when nil.
    @discardableResult
    public func update(_ record: ProvisioningJob, leaseOwner: String? = nil, leaseUntil: Date? = nil) async throws -> Bool {
        var query = SQLQueryString(
            """
            UPDATE aws_things SET wanted = \(bind: record.wanted.rawValue), bound = \(bind: record.bound ? 1 : 0),
                state = \(bind: record.state.rawValue), progress = \(bind: try StoreJSON.encode(record.progress)),
                private_key = \(bind: record.sealedPrivateKey), needs_work = \(bind: record.needsWork ? 1 : 0),
                last_error = \(bind: record.lastError), attempts = \(bind: record.attempts),
                next_attempt_at = \(bind: record.nextAttemptAt.storeMilliseconds),
                updated_at = \(bind: record.updatedAt.storeMilliseconds)
            """
        )
        if leaseOwner != nil {
            if let leaseUntil {
                query.appendLiteral(", lease_until = ")
                query.appendInterpolation(bind: leaseUntil.storeMilliseconds)
            } else {
                query.appendLiteral(", lease_owner = NULL, lease_until = 0")
            }
        }
        query.appendLiteral(" WHERE integration_id = ")
        query.appendInterpolation(bind: record.integrationID)
        query.appendLiteral(" AND device_id = ")
        query.appendInterpolation(bind: record.deviceID)
        if let leaseOwner {
            query.appendLiteral(" AND lease_owner = ")
            query.appendInterpolation(bind: leaseOwner)
        }
        query.appendLiteral(" RETURNING device_id")
        return try await self.session.sql.raw(query).first() != nil
    }

    /// The rows whose private key was sealed in the first format, bound to no row (`v1:`).
    public func withLegacySealedKeys() async throws -> [ProvisioningJob] {
        try await self.session.sql.raw("SELECT * FROM aws_things WHERE private_key LIKE 'v1:%'").all().map(Self.record)
    }

    /// Replaces the sealed private key of a row, if it still holds `expected`.
    public func replaceSealedKey(integrationID: String, deviceID: String, expected: String, with sealed: String) async throws {
        try await self.session.sql.raw(
            """
            UPDATE aws_things SET private_key = \(bind: sealed)
            WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID) AND private_key = \(bind: expected)
            """
        ).run()
    }

    /// The row, locked until the transaction ends when `forUpdate`.
    public func get(integrationID: String, deviceID: String, forUpdate: Bool = false) async throws -> ProvisioningJob? {
        try await self.session.sql.raw(
            """
            SELECT * FROM aws_things WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID)\
            \(unsafeRaw: forUpdate ? self.session.dialect.forUpdate : "")
            """
        ).first().map(Self.record)
    }

    /// Every integration's row for the tenant's device.
    public func list(tenantID: String, deviceID: String) async throws -> [ProvisioningJob] {
        try await self.session.sql.raw(
            """
            SELECT * FROM aws_things WHERE tenant_id = \(bind: tenantID) AND device_id = \(bind: deviceID)
            ORDER BY integration_id
            """
        ).all().map(Self.record)
    }

    /// The provisioning state of each of the tenant's devices given, in every integration, by device id.
    public func states(tenantID: String, deviceIDs: [String]) async throws -> [String: [AWSProvisioningState]] {
        guard !deviceIDs.isEmpty else { return [:] }
        var query = SQLQueryString("SELECT device_id, state FROM aws_things WHERE tenant_id = ")
        query.appendInterpolation(bind: tenantID)
        query.appendLiteral(" AND device_id IN (")
        query.appendBindList(deviceIDs)
        query.appendLiteral(") ORDER BY device_id, integration_id")
        var result: [String: [AWSProvisioningState]] = [:]
        for row in try await self.session.sql.raw(query).all() {
            if let state = AWSProvisioningState(rawValue: try row.decode(column: "state", as: String.self)) {
                result[try row.decode(column: "device_id", as: String.self), default: []].append(state)
            }
        }
        return result
    }

    /// Up to `limit` rows of the integration with device ids after `after`, by device id.
    public func list(integrationID: String, after: String? = nil, limit: Int) async throws -> [ProvisioningJob] {
        var query = SQLQueryString(
            "SELECT * FROM aws_things WHERE integration_id = \(bind: integrationID) AND device_id <> \(bind: ProvisioningJob.gatewayDeviceID)"
        )
        if let after {
            query.appendLiteral(" AND device_id > ")
            query.appendInterpolation(bind: after)
        }
        query.appendLiteral(" ORDER BY device_id LIMIT ")
        query.appendInterpolation(bind: limit)
        return try await self.session.sql.raw(query).all().map(Self.record)
    }

    /// How many of the integration's devices are in each state.
    public func countByState(integrationID: String) async throws -> [AWSProvisioningState: Int] {
        let rows = try await self.session.sql.raw(
            """
            SELECT state, COUNT(*) AS n FROM aws_things
            WHERE integration_id = \(bind: integrationID) AND device_id <> \(bind: ProvisioningJob.gatewayDeviceID) GROUP BY state
            """
        ).all()
        var counts: [AWSProvisioningState: Int] = [:]
        for row in rows {
            if let state = AWSProvisioningState(rawValue: try row.decode(column: "state", as: String.self)) {
                counts[state] = try row.decode(column: "n", as: Int.self)
            }
        }
        return counts
    }

    /// The integration's rows whose last attempt failed, most recent first.
    public func latestErrors(integrationID: String, limit: Int) async throws -> [ProvisioningJob] {
        try await self.session.sql.raw(
            """
            SELECT * FROM aws_things
            WHERE integration_id = \(bind: integrationID) AND device_id <> \(bind: ProvisioningJob.gatewayDeviceID) AND last_error IS NOT NULL
            ORDER BY updated_at DESC LIMIT \(bind: limit)
            """
        ).all().map(Self.record)
    }

    /// True when some job of the integration (its gateway's included) may have made something
    /// in AWS already: one that has begun, and is not settled as pending or deprovisioned.
    public func holdsResources(integrationID: String) async throws -> Bool {
        let rows = try await self.session.sql.raw(
            """
            SELECT progress FROM aws_things
            WHERE integration_id = \(bind: integrationID) AND state NOT IN ('pending', 'deprovisioned')
            """
        ).all()
        return try rows.contains { try $0.decodeJSON(column: "progress", as: AWSThingProgress.self).touched }
    }

    /// The ids of the integrations whose AWS topics the device's messages go to: those that want
    /// it active (provisioned, or being provisioned) and are themselves active. Ids only: this
    /// runs for every message a device publishes.
    public func uplinkIntegrationIDs(tenantID: String, deviceID: String) async throws -> [String] {
        try await self.session.sql.raw(
            """
            SELECT i.id FROM aws_things t JOIN integrations i ON i.id = t.integration_id
            WHERE t.tenant_id = \(bind: tenantID) AND t.device_id = \(bind: deviceID) AND t.wanted = 'active'
              AND i.active = 1 AND i.status = 'active'
            ORDER BY i.id
            """
        ).all().map { try $0.decode(column: "id", as: String.self) }
    }

    /// How many rows of the integration are left.
    public func count(integrationID: String) async throws -> Int {
        try await self.session.sql.raw(
            "SELECT COUNT(*) AS n FROM aws_things WHERE integration_id = \(bind: integrationID)"
        ).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// How many rows still need work, across integrations that may run; with `excludingFailed`,
    /// not counting those whose last attempt failed for good (they wait for an operator).
    public func countNeedingWork(excludingFailed: Bool = false) async throws -> Int {
        try await self.session.sql.raw(
            """
            SELECT COUNT(*) AS n FROM aws_things t JOIN integrations i ON i.id = t.integration_id
            WHERE t.needs_work = 1 AND (i.active = 1 OR i.status = 'deleting')            \(unsafeRaw: excludingFailed ? " AND t.state <> 'failed'" : "")
            """
        ).first()?.decode(column: "n", as: Int.self) ?? 0
    }

    /// Leases up to `limit` due jobs to `owner` until `leaseUntil`, each under a token of its own
    /// (``ProvisioningJob/leaseOwner``) so that two runs of one job can never both write: rows that need work, whose
    /// next attempt is due, that no live lease holds, of an active (or deleting) integration.
    /// Call inside a transaction; on PostgreSQL rows another node is claiming are skipped.
    public func claimDue(now: Date, limit: Int, owner: String, leaseUntil: Date) async throws -> [ProvisioningJob] {
        let lock = self.session.dialect == .postgres ? " FOR UPDATE OF t SKIP LOCKED" : ""
        let rows = try await self.session.sql.raw(
            """
            SELECT t.* FROM aws_things t JOIN integrations i ON i.id = t.integration_id
            WHERE t.needs_work = 1 AND t.next_attempt_at <= \(bind: now.storeMilliseconds)
              AND t.lease_until <= \(bind: now.storeMilliseconds) AND (i.active = 1 OR i.status = 'deleting')
            ORDER BY t.next_attempt_at LIMIT \(bind: limit)\(unsafeRaw: lock)
            """
        ).all().map(Self.record)
        var claimed: [ProvisioningJob] = []
        for var record in rows {
            let token = owner + "/" + UUID().uuidString.lowercased()
            try await self.session.sql.raw(
                """
                UPDATE aws_things SET lease_owner = \(bind: token), lease_until = \(bind: leaseUntil.storeMilliseconds)
                WHERE integration_id = \(bind: record.integrationID) AND device_id = \(bind: record.deviceID)
                """
            ).run()
            record.leaseOwner = token
            claimed.append(record)
        }
        return claimed
    }

    /// Leases one job to `owner` if it needs work, its next attempt is due, no live lease holds
    /// it and its integration may run (active, or being deleted); nil otherwise.
    public func claim(integrationID: String, deviceID: String, now: Date, owner: String, leaseUntil: Date) async throws -> ProvisioningJob? {
        let token = owner + "/" + UUID().uuidString.lowercased()
        return try await self.session.sql.raw(
            """
            UPDATE aws_things SET lease_owner = \(bind: token), lease_until = \(bind: leaseUntil.storeMilliseconds)
            WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID) AND needs_work = 1
              AND next_attempt_at <= \(bind: now.storeMilliseconds) AND lease_until <= \(bind: now.storeMilliseconds)
              AND EXISTS (SELECT 1 FROM integrations i WHERE i.id = aws_things.integration_id AND (i.active = 1 OR i.status = 'deleting'))
            RETURNING *
            """
        ).first().map(Self.record)
    }

    /// Extends a held lease; false when the job's lease is no longer this token's.
    public func renewLease(_ record: ProvisioningJob, until: Date) async throws -> Bool {
        guard let token = record.leaseOwner else { return false }
        return try await self.session.sql.raw(
            """
            UPDATE aws_things SET lease_until = \(bind: until.storeMilliseconds)
            WHERE integration_id = \(bind: record.integrationID) AND device_id = \(bind: record.deviceID)
              AND lease_owner = \(bind: token)
            RETURNING device_id
            """
        ).first() != nil
    }

    /// The earliest time a job that needs work falls due (nil when none does).
    public func nextDue() async throws -> Date? {
        let row = try await self.session.sql.raw(
            """
            SELECT MIN(CASE WHEN t.lease_until > t.next_attempt_at THEN t.lease_until ELSE t.next_attempt_at END) AS due
            FROM aws_things t JOIN integrations i ON i.id = t.integration_id
            WHERE t.needs_work = 1 AND (i.active = 1 OR i.status = 'deleting')
            """
        ).first()
        return try row?.decode(column: "due", as: Int?.self).map(Date.init(storeMilliseconds:))
    }

    /// Makes every unfinished job of the integration due now, its failures forgotten.
    public func retryNow(integrationID: String, now: Date) async throws {
        try await self.session.sql.raw(
            """
            UPDATE aws_things SET next_attempt_at = \(bind: now.storeMilliseconds), attempts = 0
            WHERE integration_id = \(bind: integrationID) AND needs_work = 1
            """
        ).run()
    }

    public func delete(integrationID: String, deviceID: String) async throws {
        try await self.session.sql.raw(
            "DELETE FROM aws_things WHERE integration_id = \(bind: integrationID) AND device_id = \(bind: deviceID)"
        ).run()
    }

    static func record(_ row: any SQLRow) throws -> ProvisioningJob {
        let deviceID = try row.decode(column: "device_id", as: String.self)
        let wanted = try row.decode(column: "wanted", as: String.self)
        let state = try row.decode(column: "state", as: String.self)
        guard let parsedWanted = ProvisioningTarget(rawValue: wanted), let parsedState = AWSProvisioningState(rawValue: state) else {
            throw StoreError.corrupt("aws_things row of device '\(deviceID)' has unknown state '\(wanted)'/'\(state)'")
        }
        return ProvisioningJob(
            integrationID: try row.decode(column: "integration_id", as: String.self),
            deviceID: deviceID,
            tenantID: try row.decode(column: "tenant_id", as: String.self),
            wanted: parsedWanted,
            bound: try row.decode(column: "bound", as: Int.self) != 0,
            state: parsedState,
            progress: try row.decodeJSON(column: "progress", as: AWSThingProgress.self),
            sealedPrivateKey: try row.decode(column: "private_key", as: String?.self),
            needsWork: try row.decode(column: "needs_work", as: Int.self) != 0,
            lastError: try row.decode(column: "last_error", as: String?.self),
            attempts: try row.decode(column: "attempts", as: Int.self),
            nextAttemptAt: Date(storeMilliseconds: try row.decode(column: "next_attempt_at", as: Int.self)),
            updatedAt: Date(storeMilliseconds: try row.decode(column: "updated_at", as: Int.self)),
            leaseOwner: try row.decode(column: "lease_owner", as: String?.self)
        )
    }
}
