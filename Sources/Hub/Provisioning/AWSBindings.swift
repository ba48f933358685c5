import Foundation
import Store

/// Keeps each device's rows in `aws_things` in step with its status, its labels and the
/// integrations that bind it. Runs inside the transaction that changed any of them, so the wanted
/// state is durable with the change; the provisioner then drives AWS to it.
enum AWSBindings {
    /// What a device in `status` should be in AWS.
    static func wanted(for status: DeviceStatus) -> ProvisioningTarget {
        switch status {
        case .pending: .nothingYet
        case .accepted: .active
        case .rejected: .inactive
        case .decommissioned: .absent
        }
    }

    /// Brings the device's rows in line with every integration of its tenant.
    ///
    /// - Parameter device: the device as it now is; nil when it was deleted.
    /// - Returns: true when some row now needs work.
    @discardableResult
    static func sync(
        deviceID: String, tenantID: String, device: Device?, in session: StoreSession, integrations: [Integration]? = nil,
        now: Date
    ) async throws -> Bool {
        var work = false
        let all: [Integration]
        if let integrations { all = integrations } else { all = try await session.integrations.list(tenantID: tenantID) }
        for integration in all {
            work = try await self.sync(deviceID: deviceID, tenantID: tenantID, device: device, integration: integration, in: session, now: now) || work
        }
        return work
    }

    /// Brings one device's row in one integration in line.
    static func sync(
        deviceID: String, tenantID: String, device: Device?, integration: Integration, in session: StoreSession, now: Date
    ) async throws -> Bool {
        let bound: Bool
        let wanted: ProvisioningTarget
        if deviceID == ProvisioningJob.gatewayDeviceID {
            // The downlink gateway lives as long as its integration.
            bound = integration.status == .active
            wanted = bound ? .active : .absent
        } else {
            bound = device.map { integration.status == .active && integration.settings.binding.binds($0) } ?? false
            wanted = bound ? self.wanted(for: device!.status) : .absent
        }
        let plan = ProvisioningPlan(integration: integration, deviceID: deviceID, device: device, wanted: wanted)
        guard var record = try await session.awsThings.get(integrationID: integration.id, deviceID: deviceID, forUpdate: true) else {
            guard bound else { return false }
            let progress = AWSThingProgress()
            let needsWork = plan.nextStep(progress) != nil
            try await session.awsThings.insert(
                ProvisioningJob(
                    integrationID: integration.id, deviceID: deviceID, tenantID: tenantID, wanted: wanted, bound: true,
                    state: plan.state(of: progress), progress: progress, needsWork: needsWork, nextAttemptAt: now, updatedAt: now
                )
            )
            return needsWork
        }
        let needsWork = plan.nextStep(record.progress) != nil
        guard record.wanted != wanted || record.bound != bound || record.needsWork != needsWork else { return false }
        if record.wanted != wanted {
            // A new goal is a new job: earlier failures say nothing about it.
            record.attempts = 0
            record.lastError = nil
            record.nextAttemptAt = now
        }
        record.wanted = wanted
        record.bound = bound
        record.needsWork = needsWork
        // A job still failing keeps showing `failed` until it succeeds or gets a new goal.
        if record.lastError == nil || !needsWork { record.state = plan.state(of: record.progress) }
        record.updatedAt = now
        if !needsWork && !bound {
            try await session.awsThings.delete(integrationID: integration.id, deviceID: deviceID)
        } else {
            try await session.awsThings.update(record)
        }
        return needsWork
    }

    /// Brings every device of the integration's tenant in line with it (after it was created,
    /// rebound, reconfigured or deleted), the rows of devices that no longer exist, and its
    /// downlink gateway.
    @discardableResult
    static func sync(integration: Integration, in session: StoreSession, now: Date) async throws -> Bool {
        var work = try await self.sync(
            deviceID: ProvisioningJob.gatewayDeviceID, tenantID: integration.tenantID, device: nil, integration: integration, in: session, now: now
        )
        var after: String?
        var seen = Set<String>()
        while true {
            let devices = try await session.devices.list(tenantID: integration.tenantID, after: after, limit: 500)
            for device in devices {
                seen.insert(device.id)
                work = try await self.sync(
                    deviceID: device.id, tenantID: integration.tenantID, device: device, integration: integration, in: session, now: now
                ) || work
            }
            guard devices.count == 500, let last = devices.last else { break }
            after = last.id
        }
        var afterRow: String?
        while true {
            let rows = try await session.awsThings.list(integrationID: integration.id, after: afterRow, limit: 500)
            for row in rows where !seen.contains(row.deviceID) {
                work = try await self.sync(
                    deviceID: row.deviceID, tenantID: integration.tenantID, device: nil, integration: integration, in: session, now: now
                ) || work
            }
            guard rows.count == 500, let last = rows.last else { break }
            afterRow = last.deviceID
        }
        return work
    }
}
