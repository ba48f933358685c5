import AWS
import AWSIoT
import Foundation
import Store

/// A device shadow as Conduit shows it: AWS's state without the metadata in the way.
public struct ShadowDocument: Sendable, Equatable {
    public var desired: [String: JSONValue]
    public var reported: [String: JSONValue]
    /// Where desired differs from reported; nil when they agree.
    public var delta: [String: JSONValue]?
    /// nil for a shadow that does not exist yet.
    public var version: Int?
    /// When AWS last wrote it, seconds since 1970.
    public var timestamp: Int?
    /// The integration whose thing's shadow it is.
    public var integrationID: String?

    public init(
        desired: [String: JSONValue] = [:], reported: [String: JSONValue] = [:], delta: [String: JSONValue]? = nil, version: Int? = nil, timestamp: Int? = nil,
        integrationID: String? = nil
    ) {
        self.integrationID = integrationID
        self.desired = desired
        self.reported = reported
        self.delta = delta
        self.version = version
        self.timestamp = timestamp
    }

    /// Reads AWS's GetThingShadow answer: `state.desired`, `state.reported`, `state.delta`,
    /// `version`, `timestamp`; `metadata` and `clientToken` are left out.
    init(aws document: [String: JSONValue], integrationID: String?) throws {
        let state = document["state"]?.object ?? [:]
        self.init(
            desired: state["desired"]?.object ?? [:], reported: state["reported"]?.object ?? [:], delta: state["delta"]?.object,
            version: document["version"].flatMap(Self.integer), timestamp: document["timestamp"].flatMap(Self.integer), integrationID: integrationID
        )
    }

    static func integer(_ value: JSONValue) -> Int? {
        switch value {
        case .integer(let number): return Int(number)
        case .number(let number) where number.rounded() == number && abs(number) < 9e18: return Int(number)
        default: return nil
        }
    }
}

/// Device shadows in AWS IoT, with AWS's semantics: read by anyone in the tenant, desired state
/// changed by admins only, reported state never from here (it is the device's).
public struct Shadows: Sendable {
    let hub: Hub

    /// AWS's limits, checked before AWS is called.
    public enum Limits {
        /// Bytes of the state document sent (desired, as compact JSON) and of the shadow AWS keeps.
        public static let stateBytes = 8 * 1024
        /// Levels of nesting in the desired section.
        public static let depth = 6
    }

    /// The shadow (classic, or `name`d) of the device in the integration (the device's only one
    /// when nil); a provisioned device without one reads as empty.
    public func get(deviceID: String, integrationID: String? = nil, name: String? = nil, by principal: Principal) async throws -> ShadowDocument {
        let target = try await self.target(deviceID: deviceID, integrationID: integrationID, name: name, by: principal)
        return try await self.read(target)
    }

    /// The names of the device's named shadows.
    public func list(deviceID: String, integrationID: String? = nil, by principal: Principal) async throws -> [String] {
        let target = try await self.target(deviceID: deviceID, integrationID: integrationID, name: nil, by: principal)
        return try await Self.calling { try await target.client.listNamedShadows(thing: target.thing) }.sorted()
    }

    /// Changes desired state as AWS's UpdateThingShadow does: the keys given are set, a `null`
    /// removes its key, others stay. With `version`, only if the shadow is at that version (else
    /// 409 with the current one). Returns the shadow as it then is.
    public func updateDesired(
        deviceID: String, integrationID: String? = nil, name: String? = nil, desired: [String: JSONValue], version: Int?, by principal: Principal
    ) async throws -> ShadowDocument {
        try principal.require(.admin, to: "changing a device's desired state")
        try Self.validate(desired: desired)
        if let version, version < 0 { throw HubError.invalidField("version", "must be 0 or more") }
        let target = try await self.target(deviceID: deviceID, integrationID: integrationID, name: name, by: principal)
        // The shadow before: for a version given to one that does not exist (AWS's REST call
        // has none to compare it with), and for the device's `update/documents`.
        let previousObject = try await self.readObject(target)
        let previous = previousObject.flatMap { ShadowMessages.Snapshot($0) }
        if let version, previous == nil && version != 0 { throw Self.versionConflict(expected: version, current: 0) }
        var body: [String: JSONValue] = ["state": .object(["desired": .object(desired)])]
        if let version, previous != nil { body["version"] = .integer(Int64(version)) }
        do {
            _ = try await Self.calling(field: "desired") {
                try await target.client.updateThingShadow(thing: target.thing, name: name, document: JSONValue.object(body).encoded)
            }
        } catch let error as HubError where error.code == "version_conflict" {
            throw Self.versionConflict(expected: version ?? 0, current: try await self.read(target).version ?? 0)
        }
        let currentObject = try await self.readObject(target)
        if target.servesDevice, let currentObject, let current = ShadowMessages.Snapshot(currentObject) {
            // The device hears it as from AWS: `update/documents`, and the delta.
            self.hub.deviceShadows.changed(deviceID: deviceID, name: name, previous: previous, current: current, clientToken: nil, desiredChanged: true)
        }
        return try currentObject.map { try ShadowDocument(aws: $0, integrationID: target.integrationID) } ?? ShadowDocument(integrationID: target.integrationID)
    }

    /// Makes desired state what `desired` says, as an editor showing the whole of it means: keys
    /// given are set, keys left out are removed (nested objects compared key by key), and only
    /// while the shadow is at `version` (else 409 `version_conflict` with the current one).
    /// Returns the shadow as it then is, or nil when there was nothing to change.
    public func replaceDesired(
        deviceID: String, integrationID: String? = nil, name: String? = nil, desired: [String: JSONValue], version: Int, by principal: Principal
    ) async throws -> ShadowDocument? {
        try principal.require(.admin, to: "changing a device's desired state")
        let current = try await self.get(deviceID: deviceID, integrationID: integrationID, name: name, by: principal)
        guard (current.version ?? 0) == version else { throw Self.versionConflict(expected: version, current: current.version ?? 0) }
        let patch = Self.desiredPatch(from: current.desired, to: desired)
        guard !patch.isEmpty else { return nil }
        return try await self.updateDesired(deviceID: deviceID, integrationID: integrationID, name: name, desired: patch, version: version, by: principal)
    }

    /// What UpdateThingShadow needs to turn `old` into `new`: changed keys set, removed keys null,
    /// nested objects compared key by key (AWS merges them); arrays are replaced whole.
    public static func desiredPatch(from old: [String: JSONValue], to new: [String: JSONValue]) -> [String: JSONValue] {
        var patch: [String: JSONValue] = [:]
        for (key, value) in new {
            if case .object(let newObject) = value, case .object(let oldObject)? = old[key] {
                let inner = Self.desiredPatch(from: oldObject, to: newObject)
                if !inner.isEmpty { patch[key] = .object(inner) }
            } else if old[key] != value {
                patch[key] = value
            }
        }
        for key in old.keys where new[key] == nil { patch[key] = .null }
        return patch
    }

    /// Deletes the shadow (classic, or `name`d); one that does not exist is deleted already.
    public func delete(deviceID: String, integrationID: String? = nil, name: String? = nil, by principal: Principal) async throws {
        try principal.require(.admin, to: "deleting a device's shadow")
        let target = try await self.target(deviceID: deviceID, integrationID: integrationID, name: name, by: principal)
        do {
            try await target.client.deleteThingShadow(thing: target.thing, name: name)
        } catch let error as AWSError where error.isNotFound {
            // None to delete.
        } catch {
            throw Self.translate(error)
        }
    }

    // MARK: Rules

    /// AWS's rules for a desired state: at most 8 KB as sent (`{"state":{"desired":…}}`), 6
    /// levels deep, no null inside an array.
    static func validate(desired: [String: JSONValue]) throws {
        let value = JSONValue.object(desired)
        let size = JSONValue.object(["state": .object(["desired": value])]).encoded.count
        guard size <= Limits.stateBytes else {
            throw HubError.invalidField("desired", "is \(size) bytes; AWS IoT keeps at most \(Limits.stateBytes) bytes of shadow state")
        }
        guard value.depth <= Limits.depth else {
            throw HubError.invalidField("desired", "nests \(value.depth) levels; AWS IoT allows at most \(Limits.depth)")
        }
        if let path = Self.nullInArray(value, path: "desired") {
            throw HubError.invalidField(path, "is null inside an array; AWS IoT allows null only as an object's value (to remove its key)")
        }
    }

    private static func nullInArray(_ value: JSONValue, path: String) -> String? {
        switch value {
        case .object(let members):
            for key in members.keys.sorted() {
                if let found = self.nullInArray(members[key]!, path: "\(path).\(key)") { return found }
            }
        case .array(let items):
            for (index, item) in items.enumerated() {
                if item == .null { return "\(path)[\(index)]" }
                if let found = self.nullInArray(item, path: "\(path)[\(index)]") { return found }
            }
        default:
            break
        }
        return nil
    }

    static func versionConflict(expected: Int, current: Int) -> HubError {
        let advice = current == 0 ? "it does not exist yet: send version 0, or none" : "read it again and retry with its version"
        var error = HubError.conflict("version_conflict", "version: the shadow is at version \(current), not \(expected); \(advice)")
        error.details = ["currentVersion": current]
        return error
    }

    // MARK: Plumbing

    struct Target {
        var client: AWSIoTDataClient
        var thing: String
        var name: String?
        var integrationID: String
        /// The integration is the one whose shadow the device itself uses on its shadow topics.
        var servesDevice: Bool
    }

    /// The integration that serves a device's shadows when none is named, on its shadow topics
    /// and in the API: of the integrations it has a thing in, the one made first (active ones
    /// before those being deleted). Nil when it has no thing in AWS.
    public func shadowIntegration(tenantID: String, deviceID: String) async throws -> Integration? {
        let records = try await self.hub.store.session.awsThings.list(tenantID: tenantID, deviceID: deviceID).filter(Self.hasShadow)
        return try await self.shadowIntegration(tenantID: tenantID, among: records)
    }

    /// The first made of these things' integrations (active ones first).
    private func shadowIntegration(tenantID: String, among records: [ProvisioningJob]) async throws -> Integration? {
        var candidates: [Integration] = []
        for record in records {
            if let integration = try await self.hub.store.session.integrations.get(tenantID: tenantID, id: record.integrationID) {
                candidates.append(integration)
            }
        }
        return candidates.min { a, b in
            (a.status == .active ? 0 : 1, a.createdAt, a.id) < (b.status == .active ? 0 : 1, b.createdAt, b.id)
        }
    }

    /// A thing in AWS that is there to stay: made, and not being removed.
    static func hasShadow(_ record: ProvisioningJob) -> Bool {
        record.progress.thingArn != nil && (record.wanted == .active || record.wanted == .inactive)
    }

    /// The device's thing in the integration: the one named, or the one serving its shadows.
    private func target(deviceID: String, integrationID: String?, name: String?, by principal: Principal) async throws -> Target {
        if let name { try FieldRules.shadowName.check(name, field: "name") }
        _ = try await self.hub.devices.get(deviceID, by: principal)
        let session = self.hub.store.session
        let records = try await session.awsThings.list(tenantID: principal.tenantID, deviceID: deviceID).filter(Self.hasShadow)
        guard let home = try await self.shadowIntegration(tenantID: principal.tenantID, among: records) else {
            if let integrationID { _ = try await self.hub.integrations.get(integrationID, by: principal) }
            throw HubError.conflict("not_provisioned", "device '\(deviceID)' has no thing in AWS; accept it into an integration first")
        }
        var integration = home
        if let integrationID, integrationID != home.id {
            guard records.contains(where: { $0.integrationID == integrationID }) else {
                _ = try await self.hub.integrations.get(integrationID, by: principal)
                throw HubError.conflict("not_provisioned", "device '\(deviceID)' has no thing in AWS in integration '\(integrationID)'")
            }
            integration = try await self.hub.integrations.get(integrationID, by: principal)
        }
        return Target(
            client: try self.hub.connections.dataClient(for: integration), thing: deviceID, name: name, integrationID: integration.id,
            servesDevice: integration.id == home.id
        )
    }

    private func readObject(_ target: Target) async throws -> [String: JSONValue]? {
        guard let bytes = try await Self.calling({ try await target.client.getThingShadow(thing: target.thing, name: target.name) }) else {
            return nil
        }
        return try DeviceShadows.object(bytes)
    }

    private func read(_ target: Target) async throws -> ShadowDocument {
        try await self.readObject(target).map { try ShadowDocument(aws: $0, integrationID: target.integrationID) }
            ?? ShadowDocument(integrationID: target.integrationID)
    }

    /// Runs an AWS call, its failures as the API's errors (AWS's refusals naming `field`).
    static func calling<T>(field: String = "name", _ call: () async throws -> T) async throws -> T {
        do {
            return try await call()
        } catch {
            throw self.translate(error, field: field)
        }
    }

    static func translate(_ error: any Error, field: String = "name") -> any Error {
        switch error {
        case let error as AWSError where error.code == "ConflictException" || error.statusCode == 409:
            return HubError.conflict("version_conflict", error.message)
        case let error as AWSError where error.statusCode == 413:
            return HubError.invalidField("desired", "AWS IoT refused it: the shadow would be over 8 KB (\(error.message))")
        case let error as AWSError where error.code == "InvalidRequestException" || error.statusCode == 400:
            return HubError.invalidField(field, "AWS IoT refused it: \(error.message)")
        case let error as AWSError where error.isThrottling:
            return HubError.upstream("AWS IoT is throttling these calls; try again shortly (\(error.code))")
        case let error as AWSError where error.isNotFound:
            return HubError.conflict("not_provisioned", "the device's thing is missing in AWS: \(error.message)")
        case let error as AWSError:
            return HubError.upstream("AWS IoT answered \(error.code): \(error.message)")
        case let error as AWSIoTValidationError:
            return HubError.invalidField(error.field == "document" ? "desired" : error.field, error.rule)
        case let error as AWSCredentialError:
            return HubError.upstream("the integration's AWS credentials failed: \(error.message)")
        case is HubError, is CancellationError:
            return error
        default:
            return HubError.upstream("AWS IoT is unreachable: \(error)")
        }
    }
}
