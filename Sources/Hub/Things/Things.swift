import AWS
import AWSIoT
import Foundation
import Store

/// Para's IoT things (`/v1/things`, `serviceBroker: "AWS"`), over Conduit's devices: creating
/// one creates and accepts a device, provisions it in the tenant's AWS integration and hands its
/// credentials out once; its `deviceState` is the shadow's desired state, fresh from AWS.
public struct Things: Sendable {
    let hub: Hub

    /// The label every device made as a thing carries; things are listed by it.
    public static let label = "para:thing"
    /// How long a create or a delete waits for AWS before answering.
    static let wait: Duration = .seconds(60)

    /// A thing: its device, the integration it lives in, and its state.
    public struct Thing: Sendable {
        public var device: Device
        public var integrationID: String?
        public var deviceState: [String: JSONValue]
        /// Its credentials (Para's `deviceDetails`), only in the answer to its creation.
        public var details: Integrations.CredentialsBundle?
    }

    /// Creates a thing and provisions it before answering (admins: it hands out a private key),
    /// with `deviceState` as its first desired state. If AWS does not take it within the wait,
    /// nothing is kept: the device goes again, and its job removes whatever AWS got.
    public func create(
        name: String, serviceBroker: String, integrationID: String?, deviceState: [String: JSONValue] = [:], by principal: Principal
    ) async throws -> Thing {
        try principal.require(.admin, to: "creating things (their credentials are handed out)")
        guard serviceBroker.lowercased() == "aws" else {
            throw HubError.invalidField("serviceBroker", "must be \"AWS\" (Conduit brokers things to AWS IoT Core only)")
        }
        do {
            try Shadows.validate(desired: deviceState)
        } catch let error as HubError {
            // The same rules, in Para's words: the field is deviceState.
            throw HubError(kind: error.kind, code: error.code, message: "deviceState" + error.message.dropFirst("desired".count))
        }
        let integration = try await self.integration(integrationID, by: principal)
        // The thing must be one the integration binds: by all, or by its label.
        let binding = integration.settings.binding
        guard binding.all || !binding.labels.isEmpty else {
            throw HubError.conflict(
                "integration_binds_devices",
                "integration '\(integration.id)' binds a list of devices; things are made in an integration that binds all devices or by label"
            )
        }
        var labels = [Self.label]
        if !binding.all, let label = binding.labels.first { labels.append(label) }
        let created = try await self.hub.devices.create(
            .init(id: Secrets.identifier(prefix: "thing-"), name: name, labels: labels, attributes: ["serviceBroker": "AWS"]), by: principal
        )
        let id = created.device.id
        do {
            let device = try await self.hub.devices.perform(.accept, on: id, by: principal)
            let record = try await self.provision(deviceID: id, integrationID: integration.id)
            // AWS refusing for good (a policy the integration names that does not exist...) is the
            // integration's to fix: a conflict. Still not done when the wait ran out: AWS is slow or away.
            if record.state == .failed {
                throw HubError.conflict(
                    "aws_refused", "AWS refused the thing (\(record.lastError ?? "failed")); the integration's settings need fixing; nothing was kept"
                )
            }
            guard record.state == .provisioned else {
                throw HubError.upstream(
                    "AWS did not take the thing (\(record.state.rawValue)\(record.lastError.map { ": \($0)" } ?? "")); nothing was kept, try again"
                )
            }
            // Everything that can fail comes before the key is handed out: once it is, it is gone.
            var state: [String: JSONValue] = [:]
            if !deviceState.isEmpty {
                state = try await self.hub.shadows.updateDesired(
                    deviceID: id, integrationID: integration.id, desired: deviceState, version: nil, by: principal
                ).desired
            }
            let credentials = try await self.hub.integrations.issueCredentials(deviceID: id, integrationID: integration.id, by: principal)
            return Thing(device: device, integrationID: integration.id, deviceState: state, details: credentials)
        } catch {
            // Not half a thing: the device goes, and its job takes out of AWS what AWS got.
            try? await self.hub.devices.delete(id, by: principal)
            try? await Provisioner(hub: self.hub).runNow(integrationID: integration.id, deviceID: id)
            throw error
        }
    }

    /// The thing, its `deviceState` read from its shadow now.
    public func get(_ id: String, by principal: Principal) async throws -> Thing {
        let device = try await self.device(id, by: principal)
        return try await self.withState(device, by: principal)
    }

    /// The most things one page lists: each costs a GetThingShadow in AWS, so one request may
    /// make at most this many calls (against the account's quota, shared with every device).
    public static let maximumPageSize = 100

    /// The tenant's things, a page at a time, with the total.
    public func list(page: PageRequest, by principal: Principal) async throws -> (page: Page<Thing>, total: Int) {
        guard page.limit <= Self.maximumPageSize else {
            throw HubError.invalidField(
                "limit", "must be between 1 and \(Self.maximumPageSize) for things: each one listed is a call to AWS"
            )
        }
        let filter = DeviceRepository.Filter(label: Self.label)
        let devices = try await self.hub.devices.list(filter: filter, page: page, by: principal)
        let total = try await self.hub.store.session.devices.count(tenantID: principal.tenantID, filter: filter)
        // Each shadow is read from AWS, eight at a time.
        let things = try await withThrowingTaskGroup(of: (Int, Thing).self) { group in
            var things: [(Int, Thing)] = []
            for (index, device) in devices.items.enumerated() {
                if index >= 8, let done = try await group.next() { things.append(done) }
                group.addTask { (index, try await self.withState(device, by: principal)) }
            }
            for try await thing in group { things.append(thing) }
            return things.sorted { $0.0 < $1.0 }.map(\.1)
        }
        return (Page(items: things, nextCursor: devices.nextCursor), total)
    }

    /// Writes `deviceState` as the shadow's desired state (keys given are set, a null removes
    /// its key), and returns the thing as it then is.
    public func updateState(_ id: String, deviceState: [String: JSONValue], by principal: Principal) async throws -> Thing {
        let device = try await self.device(id, by: principal)
        guard let record = try await self.thingRecord(of: device, by: principal) else {
            throw HubError.conflict("not_provisioned", "thing '\(id)' has no thing in AWS yet; its state can be written once it is provisioned")
        }
        let shadow = try await self.hub.shadows.updateDesired(
            deviceID: device.id, integrationID: record.integrationID, desired: deviceState, version: nil, by: principal
        )
        return Thing(device: device, integrationID: record.integrationID, deviceState: shadow.desired, details: nil)
    }

    /// Deletes the thing, as Para does, and answers once AWS is clean: the device goes, and its
    /// job removes the certificate (so the device can write nothing more), the policy, the
    /// shadows and the thing. If AWS is away, a 502 says so; the removal goes on.
    public func delete(_ id: String, by principal: Principal) async throws {
        try principal.require(.admin, to: "deleting things")
        let device = try await self.device(id, by: principal)
        let records = try await self.hub.store.session.awsThings.list(tenantID: principal.tenantID, deviceID: device.id)
        try await self.hub.devices.delete(device.id, by: principal)
        for record in records {
            let settled = try await self.provision(deviceID: device.id, integrationID: record.integrationID)
            guard settled.state == .deprovisioned else {
                throw HubError.upstream(
                    "thing '\(id)' is deleted, but AWS is not clean yet (\(settled.state.rawValue)\(settled.lastError.map { ": \($0)" } ?? "")); its removal goes on"
                )
            }
        }
    }

    // MARK: Plumbing

    /// The tenant's AWS integration for a new thing: the one named, or its only active one.
    private func integration(_ id: String?, by principal: Principal) async throws -> Integration {
        if let id {
            let integration = try await self.hub.integrations.get(id, by: principal)
            guard integration.status == .active, integration.active else {
                throw HubError.conflict("integration_inactive", "integration '\(id)' is not active; things cannot be made in it")
            }
            return integration
        }
        let usable = try await self.hub.integrations.list(by: principal).filter { $0.status == .active && $0.active }
        guard let only = usable.first else {
            throw HubError.conflict("no_integration", "the tenant has no active AWS IoT Core integration to make things in; create one first (POST /v1/integrations)")
        }
        // Which one depends on the tenant's integrations, not on the request alone: a conflict, as none is.
        guard usable.count == 1 else {
            throw HubError.conflict(
                "integration_required",
                "integrationId: is required: the tenant has several AWS integrations (\(usable.map(\.id).sorted().joined(separator: ", ")))"
            )
        }
        return only
    }

    /// A device made as a thing, or a 404.
    private func device(_ id: String, by principal: Principal) async throws -> Device {
        guard Validation.isDeviceID(id) else { throw HubError.notFound("thing", id) }
        let device: Device
        do {
            device = try await self.hub.devices.get(id, by: principal)
        } catch let error as HubError where error.kind == .notFound {
            throw HubError.notFound("thing", id)
        }
        guard device.labels.contains(Self.label) else { throw HubError.notFound("thing", id) }
        return device
    }

    /// The thing's row in the integration that holds it in AWS (the first, should several).
    private func thingRecord(of device: Device, by principal: Principal) async throws -> ProvisioningJob? {
        try await self.hub.store.session.awsThings.list(tenantID: principal.tenantID, deviceID: device.id)
            .first { $0.progress.thingArn != nil && $0.wanted == .active }
    }

    private func withState(_ device: Device, by principal: Principal) async throws -> Thing {
        guard let record = try await self.thingRecord(of: device, by: principal) else {
            return Thing(device: device, integrationID: nil, deviceState: [:], details: nil)
        }
        let shadow = try await self.hub.shadows.get(deviceID: device.id, integrationID: record.integrationID, by: principal)
        return Thing(device: device, integrationID: record.integrationID, deviceState: shadow.desired, details: nil)
    }

    /// Runs the device's job in the integration now, again after each failure that is worth a
    /// retry (throttling, AWS away), until it settles, fails for good, or the wait runs out; the
    /// row as it then is (a removed one reads as deprovisioned).
    private func provision(deviceID: String, integrationID: String) async throws -> ProvisioningJob {
        let provisioner = Provisioner(hub: self.hub)
        let deadline = ContinuousClock.now + Self.wait
        while true {
            try await provisioner.runNow(integrationID: integrationID, deviceID: deviceID)
            let record: ProvisioningJob
            do {
                record = try await self.hub.integrations.waitUntilSettled(
                    deviceID: deviceID, integrationID: integrationID, timeout: deadline - ContinuousClock.now
                )
            } catch let error as HubError where error.kind == .notFound {
                return ProvisioningJob(
                    integrationID: integrationID, deviceID: deviceID, tenantID: "", wanted: .absent, bound: false, state: .deprovisioned,
                    needsWork: false, nextAttemptAt: self.hub.now(), updatedAt: self.hub.now()
                )
            }
            guard record.needsWork, record.state != .failed, ContinuousClock.now < deadline else { return record }
            // Its next try is due at nextAttemptAt (a worker may take it first).
            let pause = min(max(record.nextAttemptAt.timeIntervalSince(self.hub.now()), 0.05), 5)
            try await Task.sleep(for: .milliseconds(Int(pause * 1000)))
        }
    }
}
