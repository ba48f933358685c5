import AWS
import AWSIoT
import Foundation
import Store

extension Integrations {
    /// What a reconcile pass found wrong with one device in AWS; the job repairs it.
    public struct Drift: Sendable, Equatable {
        public var deviceID: String
        public var repairs: [String]
    }

    /// Compares every settled device of the integration with AWS and hands what differs to its
    /// job: a thing, certificate, policy, attachment or group membership deleted or changed in
    /// AWS directly is made again. The repairs are recorded as events once done.
    public func reconcile(_ id: String, by principal: Principal) async throws -> [Drift] {
        try principal.require(.admin, to: "reconciling integrations")
        let integration = try await self.get(id, by: principal)
        guard integration.status == .active else {
            throw HubError.conflict("integration_deleting", "integration '\(id)' is being deleted")
        }
        return try await self.reconcile(integration)
    }

    func reconcile(_ integration: Integration) async throws -> [Drift] {
        let client = try self.hub.connections.client(for: integration)
        let session = self.hub.store.session
        var drift: [Drift] = []
        // The shared policy is one for all the things: the first thing that holds it checks it.
        var sharedPolicyChecked = false
        func check(_ rows: [ProvisioningJob]) async throws {
            for row in rows where !row.needsWork && (row.wanted == .active || row.wanted == .inactive) {
                let device = row.isGateway ? nil : try await session.devices.get(tenantID: row.tenantID, id: row.deviceID)
                let plan = ProvisioningPlan(integration: integration, deviceID: row.deviceID, device: device, wanted: row.wanted)
                var record = row
                let repairs = try await self.compare(&record, with: client, plan: plan, sharedPolicyChecked: &sharedPolicyChecked)
                guard !repairs.isEmpty else { continue }
                if try await self.handOver(record, repairs: repairs, expected: row, plan: plan) {
                    // The gateway's drift is named by its thing.
                    drift.append(Drift(deviceID: plan.thingName, repairs: repairs))
                }
            }
        }
        if let gateway = try await session.awsThings.get(integrationID: integration.id, deviceID: ProvisioningJob.gatewayDeviceID) {
            try await check([gateway])
        }
        var after: String?
        while true {
            let rows = try await session.awsThings.list(integrationID: integration.id, after: after, limit: 200)
            try await check(rows)
            guard rows.count == 200, let last = rows.last else { break }
            after = last.deviceID
        }
        if !drift.isEmpty { self.hub.provisioningDoorbell.ring() }
        return drift
    }

    /// Reads the device's resources from AWS; changes `record.progress` so that the plan remakes
    /// what is missing, and says what.
    private func compare(
        _ record: inout ProvisioningJob, with client: AWSIoTClient, plan: ProvisioningPlan, sharedPolicyChecked: inout Bool
    ) async throws -> [String] {
        var repairs: [String] = []
        let thingName = plan.thingName
        var thingExists = false
        if record.progress.thingArn != nil {
            do {
                let thing = try await client.describeThing(name: thingName)
                thingExists = true
                if record.wanted == .active, let attributes = plan.attributes,
                    attributes.contains(where: { thing.attributes?[$0.key] != $0.value })
                {
                    record.progress.attributesDigest = nil
                    repairs.append("thing attributes were changed in AWS: restored")
                }
            } catch let error as AWSError where error.isNotFound {
                ProvisioningStepRunner.forgetThing(&record.progress)
                repairs.append("thing \(thingName) was deleted in AWS: made again")
            }
        }
        if let id = record.progress.certificateID, let arn = record.progress.certificateArn {
            var certificateExists = false
            do {
                let certificate = try await client.describeCertificate(id: id)
                certificateExists = true
                let wantedStatus: AWSCertificateStatus = record.wanted == .active ? .active : .inactive
                let status = certificate.status.flatMap(AWSCertificateStatus.init(rawValue:))
                if status == .revoked {
                    record.progress.retiring.append(.init(certificateID: id, certificateArn: arn))
                    ProvisioningStepRunner.forgetCertificate(&record)
                    certificateExists = false
                    repairs.append("certificate \(id) was revoked in AWS: a new one was made" + (plan.isGateway ? "" : "; fetch the device's new credentials"))
                } else if status != wantedStatus {
                    record.progress.certificateStatus = status
                    repairs.append("certificate \(id) was set \(certificate.status ?? "?") in AWS: set \(wantedStatus.rawValue) again")
                }
            } catch let error as AWSError where error.isNotFound {
                ProvisioningStepRunner.forgetCertificate(&record)
                repairs.append("certificate \(id) was deleted in AWS: a new one was made" + (plan.isGateway ? "" : "; fetch the device's new credentials"))
            }
            if certificateExists && record.wanted == .active {
                if thingExists, record.progress.principalAttached, !(try await client.listThingPrincipals(thing: thingName)).contains(arn) {
                    record.progress.principalAttached = false
                    repairs.append("certificate \(id) was detached from the thing in AWS: attached again")
                }
                if let policy = record.progress.attachedPolicy, !(try await client.listAttachedPolicies(target: arn)).contains(policy) {
                    record.progress.attachedPolicy = nil
                    repairs.append("policy \(policy) was detached from certificate \(id) in AWS: attached again")
                }
            }
        }
        if record.wanted == .active, let policy = record.progress.createdPolicy {
            do {
                let stored = try await client.getPolicy(name: policy)
                let wanted = plan.policyDocument(record.progress)
                if let wanted, stored.policyDocument.map(ProvisioningStepRunner.canonicalJSON) != ProvisioningStepRunner.canonicalJSON(wanted) {
                    record.progress.policyDocumentDigest = nil
                    repairs.append("policy \(policy) was changed in AWS: restored")
                }
            } catch let error as AWSError where error.isNotFound {
                record.progress.createdPolicy = nil
                record.progress.policyDocumentDigest = nil
                record.progress.attachedPolicy = nil
                repairs.append("policy \(policy) was deleted in AWS: made again")
            }
        }
        if record.wanted == .active, plan.sharedPolicy, record.progress.sharedPolicyDigest != nil, !sharedPolicyChecked {
            sharedPolicyChecked = true
            let name = plan.policyName
            do {
                let stored = try await client.getPolicy(name: name)
                if let wanted = plan.policyDocument(record.progress),
                    stored.policyDocument.map(ProvisioningStepRunner.canonicalJSON) != ProvisioningStepRunner.canonicalJSON(wanted)
                {
                    self.hub.connections.forgetPolicy(name)
                    record.progress.sharedPolicyDigest = nil
                    repairs.append("policy \(name) was changed in AWS: restored")
                }
            } catch let error as AWSError where error.isNotFound {
                self.hub.connections.forgetPolicy(name)
                record.progress.sharedPolicyDigest = nil
                record.progress.attachedPolicy = nil
                repairs.append("policy \(name) was deleted in AWS: made again")
            }
        }
        if record.wanted == .active, thingExists, let group = record.progress.groupName,
            !(try await client.listThingGroupsForThing(thing: thingName)).contains(group)
        {
            record.progress.groupName = nil
            repairs.append("thing was removed from group \(group) in AWS: added again")
        }
        return repairs
    }

    /// Writes the found drift to the job, unless the row changed meanwhile (then its own job runs).
    private func handOver(_ record: ProvisioningJob, repairs: [String], expected: ProvisioningJob, plan: ProvisioningPlan) async throws -> Bool {
        let now = self.hub.now()
        return try await self.hub.store.transaction { session in
            guard let current = try await session.awsThings.get(integrationID: record.integrationID, deviceID: record.deviceID, forUpdate: true),
                current.progress == expected.progress, current.wanted == expected.wanted, !current.needsWork
            else { return false }
            var updated = current
            updated.progress = record.progress
            updated.sealedPrivateKey = record.sealedPrivateKey
            updated.progress.repairs = repairs
            let next = plan.with(wanted: current.wanted)
            updated.needsWork = next.nextStep(updated.progress) != nil
            updated.state = next.state(of: updated.progress)
            updated.attempts = 0
            updated.lastError = nil
            updated.nextAttemptAt = now
            updated.updatedAt = now
            try await session.awsThings.update(updated)
            return true
        }
    }
}
