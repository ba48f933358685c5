import Foundation
import Logging
import Metrics
import Store

/// The device registry: creation, edits, lifecycle and secrets, each change written with its event
/// in one transaction.
public struct DeviceRegistry: Sendable {
    let hub: Hub

    /// What a caller sends to create a device.
    public struct Creation: Sendable {
        public var id: String?
        public var name: String
        public var labels: [String]
        public var attributes: [String: String]

        public init(id: String? = nil, name: String, labels: [String] = [], attributes: [String: String] = [:]) {
            self.id = id
            self.name = name
            self.labels = labels
            self.attributes = attributes
        }
    }

    /// A change to a device: nil leaves a field alone; an attribute set to nil is removed.
    public struct Patch: Sendable {
        public var name: String?
        public var labels: [String]?
        public var attributes: [String: String?]?

        public init(name: String? = nil, labels: [String]? = nil, attributes: [String: String?]? = nil) {
            self.name = name
            self.labels = labels
            self.attributes = attributes
        }
    }

    /// A device with its secret, as shown once after creation or rotation.
    public struct DeviceWithSecret: Sendable {
        public var device: Device
        public var secret: String
    }

    /// Registers a device as `pending` and returns it with its broker secret.
    public func create(_ creation: Creation, by principal: Principal) async throws -> DeviceWithSecret {
        try principal.require(.operator, to: "creating devices")
        let id = creation.id ?? UUID().uuidString.lowercased()
        try Validation.deviceID(id)
        let name = try Validation.displayName(creation.name)
        let labels = try Validation.labels(creation.labels)
        try Validation.attributes(creation.attributes)
        let secret = Secrets.generate(prefix: "", bytes: 24)
        let now = self.hub.now()
        let device = Device(
            id: id, tenantID: principal.tenantID, name: name, status: .pending, labels: labels,
            attributes: creation.attributes, secretHash: Secrets.secretHash(secret), createdAt: now, updatedAt: now,
            statusChangedAt: now
        )
        do {
            try await self.hub.store.transaction { session in
                try await session.devices.insert(device)
                try await session.events.append(
                    tenantID: principal.tenantID, type: EventType.deviceCreated, deviceID: id, actor: principal.actor,
                    data: EventLog.json(["name": name, "status": DeviceStatus.pending.rawValue]), at: now
                )
                try await AWSBindings.sync(deviceID: id, tenantID: principal.tenantID, device: device, in: session, now: now)
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("device_exists", "id: a device with id '\(id)' exists already")
        }
        Counter(label: "conduit_devices_created_total").increment()
        self.hub.logger.info("device created", metadata: [LogKey.deviceID: "\(id)", LogKey.tenantID: "\(principal.tenantID)"])
        return DeviceWithSecret(device: device, secret: secret)
    }

    /// The principal's tenant's device, or a 404 (also for another tenant's device).
    public func get(_ id: String, by principal: Principal) async throws -> Device {
        guard Validation.isDeviceID(id) else { throw HubError.notFound("device", id) }
        guard let device = try await self.hub.store.session.devices.get(tenantID: principal.tenantID, id: id) else {
            throw HubError.notFound("device", id)
        }
        return device
    }

    /// A page of the principal's tenant's devices, by id.
    public func list(filter: DeviceRepository.Filter, page: PageRequest, by principal: Principal) async throws -> Page<Device> {
        if let label = filter.label { try Validation.label(label, field: "label") }
        let after = try page.decodedCursor()
        if let after, !Validation.isDeviceID(after) {
            throw HubError.invalidField("cursor", "must be a nextCursor returned by this list")
        }
        let fetched = try await self.hub.store.session.devices.list(
            tenantID: principal.tenantID, filter: filter, after: after, limit: page.limit + 1
        )
        return PageRequest.page(fetched, limit: page.limit, key: \.id)
    }

    /// What a list of devices shows beside each: its state in each integration, and when it last sent a message.
    public struct Summary: Sendable {
        public var awsStates: [AWSProvisioningState] = []
        public var lastMessageAt: Date?
    }

    /// The summaries of the principal's tenant's devices given (a page of a list), in two queries.
    public func summaries(of ids: [String], by principal: Principal) async throws -> [String: Summary] {
        let session = self.hub.store.session
        let states = try await session.awsThings.states(tenantID: principal.tenantID, deviceIDs: ids)
        let last = try await session.messages.lastReceived(tenantID: principal.tenantID, deviceIDs: ids)
        var result: [String: Summary] = [:]
        for id in ids {
            result[id] = Summary(awsStates: states[id] ?? [], lastMessageAt: last[id])
        }
        return result
    }

    /// Applies a patch; fields not in it keep their values.
    public func update(_ id: String, with patch: Patch, by principal: Principal) async throws -> Device {
        try principal.require(.operator, to: "changing devices")
        let name = try patch.name.map { try Validation.displayName($0) }
        let labels = try patch.labels.map { try Validation.labels($0) }
        let now = self.hub.now()
        // Labels decide which integrations bind the device, and so what Conduit makes or deletes
        // in AWS: an operator may change them only within the bindings an admin set.
        let integrations = labels == nil || principal.role.includes(.admin) ? [] : try await self.hub.store.session.integrations.list(tenantID: principal.tenantID)
        return try await self.mutate(id, by: principal) { device in
            var changed: [String] = []
            if let name, name != device.name {
                device.name = name
                changed.append("name")
            }
            if let labels, labels != device.labels {
                var relabelled = device
                relabelled.labels = labels
                let moved = integrations.filter { $0.status == .active && $0.settings.binding.binds(device) != $0.settings.binding.binds(relabelled) }
                if let first = moved.first {
                    let verb = first.settings.binding.binds(relabelled) ? "add it to" : "remove it from"
                    throw HubError.forbidden(
                        "labels: this change would \(verb) integration '\(first.name)' (\(first.id)), which makes or deletes its thing in AWS; that needs the admin role"
                    )
                }
                device.labels = labels
                changed.append("labels")
            }
            if let attributes = patch.attributes {
                var merged = device.attributes
                for (key, value) in attributes {
                    merged[key] = value
                }
                try Validation.attributes(merged)
                if merged != device.attributes {
                    device.attributes = merged
                    changed.append("attributes")
                }
            }
            guard !changed.isEmpty else { return nil }
            device.updatedAt = now
            return (EventType.deviceUpdated, EventLog.json(["fields": changed]))
        }
    }

    /// Moves a device through its lifecycle; an illegal transition is a 409.
    public func perform(_ action: LifecycleAction, on id: String, by principal: Principal) async throws -> Device {
        try principal.require(.operator, to: "\(action.rawValue)ing devices")
        let now = self.hub.now()
        let device = try await self.mutate(id, by: principal) { device in
            let from = device.status
            device.status = try action.apply(to: from)
            // For good: its certificate logs nothing in again, even should it come back.
            if device.status == .decommissioned { device.certificate = nil }
            device.updatedAt = now
            device.statusChangedAt = now
            return (EventType.lifecycle(action), EventLog.json(["from": from.rawValue, "to": device.status.rawValue]))
        }
        Counter(label: "conduit_devices_lifecycle_total", dimensions: [("action", action.rawValue)]).increment()
        if device.status == .decommissioned {
            // For good: what it retained goes with it.
            await self.hub.forgetDevice(id)
        } else if device.status != .accepted {
            // Access ends now, not at the device's next reconnect.
            self.hub.disconnectDevice(id)
        }
        self.hub.logger.info(
            "device \(action.target.rawValue)", metadata: [LogKey.deviceID: "\(id)", LogKey.tenantID: "\(principal.tenantID)"]
        )
        return device
    }

    /// Replaces the device's broker secret; the old one stops working at once.
    public func rotateSecret(of id: String, by principal: Principal) async throws -> DeviceWithSecret {
        try principal.require(.operator, to: "rotating device secrets")
        let secret = Secrets.generate(prefix: "", bytes: 24)
        let now = self.hub.now()
        let device = try await self.mutate(id, by: principal) { device in
            guard device.status != .decommissioned else {
                throw HubError.conflict("invalid_transition", "device '\(id)' is decommissioned: its secret cannot be rotated")
            }
            device.secretHash = Secrets.secretHash(secret)
            device.updatedAt = now
            return (EventType.deviceSecretRotated, EventLog.json([String: String]()))
        }
        self.hub.disconnectDevice(id)
        return DeviceWithSecret(device: device, secret: secret)
    }

    /// Removes a device from the registry; its events stay.
    public func delete(_ id: String, by principal: Principal) async throws {
        try principal.require(.operator, to: "deleting devices")
        guard Validation.isDeviceID(id) else { throw HubError.notFound("device", id) }
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            guard let device = try await session.devices.get(tenantID: principal.tenantID, id: id, forUpdate: true) else {
                throw HubError.notFound("device", id)
            }
            _ = try await session.devices.delete(tenantID: principal.tenantID, id: id)
            try await session.messages.deleteAll(tenantID: principal.tenantID, deviceID: id)
            // Its id may be taken again, by another tenant even: nothing queued for it may reach that device.
            try await session.downlinks.deleteAll(tenantID: principal.tenantID, deviceID: id)
            // A device made again under this id starts afresh in every rule.
            try await session.rules.deleteStates(tenantID: principal.tenantID, deviceID: id)
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.deviceDeleted, deviceID: id, actor: principal.actor,
                data: EventLog.json(["name": device.name, "status": device.status.rawValue]), at: now
            )
            // Its rows stay until its things are gone from AWS.
            try await AWSBindings.sync(deviceID: id, tenantID: principal.tenantID, device: nil, in: session, now: now)
        }
        self.hub.provisioningDoorbell.ring()
        await self.hub.forgetDevice(id)
        self.hub.logger.info("device deleted", metadata: [LogKey.deviceID: "\(id)", LogKey.tenantID: "\(principal.tenantID)"])
    }

    /// The device with this id (any tenant, any status) when `secret` is its broker secret, else nil.
    public func verifySecret(deviceID: String, secret: String) async throws -> Device? {
        guard Validation.isDeviceID(deviceID), let device = try await self.hub.store.session.devices.get(id: deviceID),
            Secrets.verify(secret: secret, against: device.secretHash)
        else { return nil }
        return device
    }

    /// Reads the device under a lock, lets `change` edit it, and writes it with the event `change`
    /// returns; a nil event means nothing changed and nothing is written.
    private func mutate(
        _ id: String, by principal: Principal,
        _ change: @escaping @Sendable (inout Device) throws -> (type: String, data: String)?
    ) async throws -> Device {
        guard Validation.isDeviceID(id) else { throw HubError.notFound("device", id) }
        let device = try await self.hub.store.transaction { session in
            guard var device = try await session.devices.get(tenantID: principal.tenantID, id: id, forUpdate: true) else {
                throw HubError.notFound("device", id)
            }
            guard let event = try change(&device) else { return device }
            try await session.devices.update(device)
            try await session.events.append(
                tenantID: principal.tenantID, type: event.type, deviceID: id, actor: principal.actor, data: event.data,
                at: device.updatedAt
            )
            // Its status, labels, name and attributes decide what its integrations make in AWS.
            try await AWSBindings.sync(deviceID: id, tenantID: principal.tenantID, device: device, in: session, now: device.updatedAt)
            return device
        }
        self.hub.provisioningDoorbell.ring()
        return device
    }
}
