import Foundation
import Store

/// The names of the events Conduit records.
public enum EventType {
    public static let deviceCreated = "device.created"
    public static let deviceUpdated = "device.updated"
    public static let deviceDeleted = "device.deleted"
    public static let deviceSecretRotated = "device.secret_rotated"
    public static let deviceCertificateEnrolled = "device.certificate_enrolled"
    public static let deviceCertificateRevoked = "device.certificate_revoked"
    public static let tokenCreated = "token.created"
    public static let tokenRevoked = "token.revoked"
    public static let integrationCreated = "integration.created"
    public static let integrationUpdated = "integration.updated"
    public static let integrationDeleted = "integration.deleted"
    public static let awsProvisioned = "aws.provisioned"
    public static let awsDisabled = "aws.disabled"
    public static let awsDeprovisioned = "aws.deprovisioned"
    public static let awsFailed = "aws.failed"
    public static let awsDriftRepaired = "aws.drift_repaired"
    public static let awsCredentialsIssued = "aws.credentials_issued"
    public static let awsCredentialsRotated = "aws.credentials_rotated"
    public static let uplinkDropped = "uplink.dropped"
    /// A message from AWS IoT on an ingest topic named no device of the integration's tenant.
    public static let awsMessageDropped = "aws.message_dropped"
    public static let downlinkSkipped = "downlink.skipped"
    public static let ruleFired = "rule.fired"
    public static let ruleActionFailed = "rule.action_failed"
    /// A webhook answered 410 Gone: its deliveries are held until it is resumed.
    public static let webhookPaused = "webhook.paused"
    public static let userCreated = "user.created"
    public static let userDeleted = "user.deleted"
    public static let userRoleChanged = "user.role_changed"

    /// The event a device's settling in a provisioning state records, if any.
    static func aws(_ state: AWSProvisioningState) -> String? {
        switch state {
        case .provisioned: awsProvisioned
        case .disabled: awsDisabled
        case .deprovisioned: awsDeprovisioned
        default: nil
        }
    }

    /// `device.accepted`, `device.rejected` or `device.decommissioned`.
    public static func lifecycle(_ action: LifecycleAction) -> String { "device.\(action.target.rawValue)" }

    /// Every type above, for validating filters.
    public static var all: [String] {
        [
            deviceCreated, deviceUpdated, deviceDeleted, deviceSecretRotated, deviceCertificateEnrolled, deviceCertificateRevoked, tokenCreated, tokenRevoked, integrationCreated,
            integrationUpdated, integrationDeleted, awsProvisioned, awsDisabled, awsDeprovisioned, awsFailed, awsDriftRepaired,
            awsCredentialsIssued, awsCredentialsRotated, awsMessageDropped, uplinkDropped, downlinkSkipped, ruleFired, ruleActionFailed, webhookPaused, userCreated, userDeleted, userRoleChanged,
        ] + LifecycleAction.allCases.map(lifecycle)
    }
}

/// Reads the event log.
public struct EventLog: Sendable {
    let hub: Hub

    /// A page of the principal's tenant's events, newest first.
    public func list(filter: EventRepository.Filter, page: PageRequest, by principal: Principal) async throws -> Page<Event> {
        if let deviceID = filter.deviceID { try Validation.deviceID(deviceID, field: "deviceId") }
        if let type = filter.type, !EventType.all.contains(type) {
            throw HubError.invalidField("type", "must be one of \(EventType.all.sorted().joined(separator: ", "))")
        }
        var before: Int?
        if let cursor = try page.decodedCursor() {
            guard let sequence = Int(cursor) else {
                throw HubError.invalidField("cursor", "must be a nextCursor returned by this list")
            }
            before = sequence
        }
        let fetched = try await self.hub.store.session.events.list(
            tenantID: principal.tenantID, filter: filter, before: before, limit: page.limit + 1
        )
        return PageRequest.page(fetched, limit: page.limit) { String($0.sequence) }
    }

    /// Encodes an event's details as a compact JSON object.
    static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(value), as: UTF8.self)) ?? "{}"
    }
}
