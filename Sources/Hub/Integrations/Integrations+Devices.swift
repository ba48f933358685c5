import AWSIoT
import Foundation
import Store

extension Integrations {
    /// A device's provisioning in one integration, as the operator sees it.
    public struct DeviceStatus: Sendable {
        public var record: ProvisioningJob
        public var integration: Integration
    }

    /// The device's provisioning in each integration that binds it (or did, until AWS is clean).
    public func awsStatus(of deviceID: String, by principal: Principal) async throws -> [DeviceStatus] {
        _ = try await self.hub.devices.get(deviceID, by: principal)
        let session = self.hub.store.session
        let integrations = Dictionary(
            uniqueKeysWithValues: try await session.integrations.list(tenantID: principal.tenantID).map { ($0.id, $0) }
        )
        return try await session.awsThings.list(tenantID: principal.tenantID, deviceID: deviceID).compactMap { record in
            integrations[record.integrationID].map { DeviceStatus(record: record, integration: $0) }
        }
    }

    /// What a device needs to connect to AWS IoT Core itself, shown once.
    public struct CredentialsBundle: Sendable {
        public var deviceID: String
        public var integrationID: String
        public var clientID: String
        public var thingName: String
        public var thingArn: String?
        public var thingID: String?
        public var certificateID: String
        public var certificateArn: String
        public var certificatePem: String
        public var privateKey: String
        /// The public key of the certificate, PEM.
        public var publicKey: String?
        /// Amazon Root CA 1, the CA of the ATS endpoints; nil when this machine has no copy.
        public var rootCA: String?
        public var endpoint: String?
        public var region: String
        public var port: Int
    }

    /// The device's certificate and private key, once: the key is erased from Conduit as it is
    /// handed out; a second call is a 409 until the credentials are rotated.
    public func issueCredentials(deviceID: String, integrationID: String, by principal: Principal) async throws -> CredentialsBundle {
        try principal.require(.admin, to: "fetching device credentials")
        _ = try await self.hub.devices.get(deviceID, by: principal)
        let integration = try await self.get(integrationID, by: principal)
        let now = self.hub.now()
        let secrets = self.hub.secrets
        let (record, privateKey) = try await self.hub.store.transaction { session -> (ProvisioningJob, String) in
            guard var record = try await session.awsThings.get(integrationID: integrationID, deviceID: deviceID, forUpdate: true),
                record.bound
            else {
                throw HubError.notFound("device '\(deviceID)' in integration", integrationID)
            }
            guard record.state == .provisioned, let _ = record.progress.certificateID else {
                throw HubError.conflict(
                    "not_provisioned", "device '\(deviceID)' is \(record.state.rawValue) in integration '\(integrationID)'; its credentials exist once it is provisioned"
                )
            }
            guard record.progress.credentialsIssuedAt == nil, let sealed = record.sealedPrivateKey else {
                throw HubError.conflict(
                    "credentials_issued", "the credentials of device '\(deviceID)' were handed out already and are not kept; POST .../rotate for new ones"
                )
            }
            let privateKey = try secrets.open(sealed, for: .thingKey(record))
            record.progress.credentialsIssuedAt = now
            record.sealedPrivateKey = nil
            record.updatedAt = now
            try await session.awsThings.update(record)
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.awsCredentialsIssued, deviceID: deviceID, actor: principal.actor,
                data: EventLog.json(AWSEventData(integrationId: integrationID, certificateId: record.progress.certificateID)), at: now
            )
            return (record, privateKey)
        }
        return CredentialsBundle(
            deviceID: deviceID, integrationID: integrationID, clientID: deviceID, thingName: deviceID, thingArn: record.progress.thingArn,
            thingID: record.progress.thingID, certificateID: record.progress.certificateID ?? "",
            certificateArn: record.progress.certificateArn ?? "", certificatePem: record.progress.certificatePem ?? "",
            privateKey: privateKey, publicKey: DeviceKeyMaterial.publicKeyPEM(privateKeyPEM: privateKey),
            rootCA: DeviceKeyMaterial.amazonRootCA1(), endpoint: integration.dataEndpoint, region: integration.settings.region, port: 8883
        )
    }

    /// Replaces the device's key and certificate: the job makes and attaches new ones, then
    /// detaches, deactivates and deletes the old certificate. Waits up to `wait` for it.
    public func rotateCredentials(
        deviceID: String, integrationID: String, by principal: Principal, wait: Duration = .seconds(30)
    ) async throws -> DeviceStatus {
        try principal.require(.admin, to: "rotating device credentials")
        _ = try await self.hub.devices.get(deviceID, by: principal)
        let integration = try await self.get(integrationID, by: principal)
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            guard var record = try await session.awsThings.get(integrationID: integrationID, deviceID: deviceID, forUpdate: true),
                record.bound
            else {
                throw HubError.notFound("device '\(deviceID)' in integration", integrationID)
            }
            guard !record.needsWork else {
                throw HubError.conflict(
                    "busy", "device '\(deviceID)' is \(record.state.rawValue) in integration '\(integrationID)'; rotate once its job has settled"
                )
            }
            guard record.wanted == .active, let id = record.progress.certificateID, let arn = record.progress.certificateArn else {
                throw HubError.conflict(
                    "not_provisioned", "device '\(deviceID)' has no certificate in integration '\(integrationID)' to rotate (it is \(record.state.rawValue))"
                )
            }
            record.progress.retiring.append(.init(certificateID: id, certificateArn: arn))
            ProvisioningStepRunner.forgetCertificate(&record)
            record.progress.keyRequest = nil
            record.needsWork = true
            record.state = .provisioning
            record.attempts = 0
            record.lastError = nil
            record.nextAttemptAt = now
            record.updatedAt = now
            try await session.awsThings.update(record)
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.awsCredentialsRotated, deviceID: deviceID, actor: principal.actor,
                data: EventLog.json(AWSEventData(integrationId: integrationID, certificateId: id)), at: now
            )
        }
        self.hub.provisioningDoorbell.ring()
        let record = try await self.waitUntilSettled(deviceID: deviceID, integrationID: integrationID, timeout: wait)
        return DeviceStatus(record: record, integration: integration)
    }

    /// Waits until the device's job in the integration has nothing left to do now (done, or
    /// waiting after a failure), or `timeout` passes; returns the row as it then is.
    public func waitUntilSettled(deviceID: String, integrationID: String, timeout: Duration) async throws -> ProvisioningJob {
        let deadline = ContinuousClock.now + timeout
        while true {
            let generation = self.hub.provisioningDoorbell.generation
            guard let record = try await self.hub.store.session.awsThings.get(integrationID: integrationID, deviceID: deviceID) else {
                throw HubError.notFound("device '\(deviceID)' in integration", integrationID)
            }
            if !record.needsWork || record.lastError != nil || ContinuousClock.now >= deadline { return record }
            await self.hub.provisioningDoorbell.wait(since: generation, timeout: .milliseconds(200))
        }
    }
}
