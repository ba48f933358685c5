import AWS
import AWSIoT
import Foundation
import Store

/// Runs the steps of one job against AWS. Every step is idempotent: what a crash may have made
/// already is found and adopted, what is gone already counts as removed.
struct ProvisioningStepRunner {
    let provisioner: Provisioner
    let client: AWSIoTClient
    let integration: Integration
    var plan: ProvisioningPlan

    var thingName: String { self.plan.thingName }

    func perform(_ step: AWSProvisioningStep, on record: inout ProvisioningJob) async throws {
        do {
            try await self.performStep(step, on: &record)
        } catch let error as AWSError where error.isNotFound && Self.stepsNeedingWhatExists.contains(step) {
            // Something this step builds on was deleted in AWS behind Conduit's back: forget it,
            // and the plan makes it again.
            guard try await self.forgetWhatIsMissing(&record) else { throw error }
        }
    }

    /// Steps that act on a thing, certificate or policy Conduit recorded as made.
    static let stepsNeedingWhatExists: Set<AWSProvisioningStep> = [
        .updateThingAttributes, .updatePolicy, .attachPolicy, .attachPrincipal, .activateCertificate, .deactivateCertificate,
    ]

    /// Looks for the thing, the certificate and the thing's own policy in AWS; forgets those
    /// gone. True when one was.
    private func forgetWhatIsMissing(_ record: inout ProvisioningJob) async throws -> Bool {
        var missing = false
        if record.progress.thingArn != nil, try await self.thingIsMissing() {
            Self.forgetThing(&record.progress)
            record.progress.repairs.append("thing \(self.thingName) was missing in AWS: made again")
            missing = true
        }
        if let id = record.progress.certificateID {
            do {
                _ = try await self.client.describeCertificate(id: id)
            } catch let error as AWSError where error.isNotFound {
                Self.forgetCertificate(&record)
                record.progress.repairs.append("certificate \(id) was missing in AWS: a new one was made")
                missing = true
            }
        }
        if let policy = record.progress.createdPolicy {
            do {
                _ = try await self.client.getPolicy(name: policy)
            } catch let error as AWSError where error.isNotFound {
                record.progress.createdPolicy = nil
                record.progress.policyDocumentDigest = nil
                record.progress.attachedPolicy = nil
                record.progress.repairs.append("policy \(policy) was missing in AWS: made again")
                missing = true
            }
        }
        if self.plan.sharedPolicy, record.progress.sharedPolicyDigest != nil {
            let name = self.plan.policyName
            do {
                _ = try await self.client.getPolicy(name: name)
            } catch let error as AWSError where error.isNotFound {
                self.provisioner.hub.connections.forgetPolicy(name)
                record.progress.sharedPolicyDigest = nil
                if record.progress.attachedPolicy == name { record.progress.attachedPolicy = nil }
                record.progress.repairs.append("policy \(name) was missing in AWS: made again")
                missing = true
            }
        }
        return missing
    }

    private func thingIsMissing() async throws -> Bool {
        do {
            _ = try await self.client.describeThing(name: self.thingName)
            return false
        } catch let error as AWSError where error.isNotFound {
            return true
        }
    }

    /// Forgets the thing and what hangs on it (it is gone).
    static func forgetThing(_ progress: inout AWSThingProgress) {
        progress.thingArn = nil
        progress.thingID = nil
        progress.attributesDigest = nil
        progress.principalAttached = false
        progress.groupName = nil
    }

    private func performStep(_ step: AWSProvisioningStep, on record: inout ProvisioningJob) async throws {
        switch step {
        case .begin:
            record.progress.touched = true
        case .createThing:
            try await self.createThing(&record.progress)
        case .updateThingAttributes:
            let attributes = self.plan.attributes ?? [:]
            try await self.client.updateThing(name: self.thingName, attributes: attributes, merge: true)
            record.progress.attributesDigest = ProvisioningPlan.digest(attributes)
        case .createKey:
            let requestID = UUID().uuidString.lowercased()
            let key = try DeviceKeyMaterial.generate(commonName: self.thingName, requestID: requestID)
            record.sealedPrivateKey = try self.provisioner.hub.secrets.seal(key.privateKeyPEM, for: .thingKey(record))
            record.progress.keyRequest = .init(nonce: requestID, requestedAt: self.provisioner.hub.now(), csr: key.csrPEM, uncertain: false)
        case .createCertificate:
            try await self.createCertificate(&record)
        case .registerCertificate:
            try await self.registerCertificate(&record)
        case .replaceCertificate:
            if let id = record.progress.certificateID, let arn = record.progress.certificateArn {
                record.progress.retiring.append(.init(certificateID: id, certificateArn: arn))
            }
            Self.forgetCertificate(&record)
        case .resolveCertificateRequest:
            if try await self.adoptInterruptedCertificate(&record) { return }
            if record.wanted == .active {
                record.progress.keyRequest?.uncertain = false
            } else {
                record.progress.keyRequest = nil
                record.sealedPrivateKey = nil
            }
        case .createPolicy:
            try await self.createPolicy(&record)
        case .updatePolicy:
            guard let name = record.progress.createdPolicy, let document = self.plan.policyDocument(record.progress) else { return }
            try await Self.replacePolicyDocument(name: name, document: document, client: self.client)
            record.progress.policyDocumentDigest = ProvisioningPlan.digest(document)
        case .ensureSharedPolicy:
            try await self.ensureSharedPolicy(&record.progress)
        case .attachPolicy:
            guard let arn = record.progress.certificateArn else { return }
            do {
                try await self.client.attachPolicy(name: self.plan.policyName, target: arn)
            } catch let error as AWSError where error.isNotFound && self.plan.sharedPolicy {
                // The shared policy was deleted in AWS (and may have been made again meanwhile by
                // another of its things' jobs): make sure of it, and try once more. A second
                // not-found is about the certificate, which forgetWhatIsMissing looks into.
                self.provisioner.hub.connections.forgetPolicy(self.plan.policyName)
                try await self.ensureSharedPolicy(&record.progress)
                try await self.client.attachPolicy(name: self.plan.policyName, target: arn)
            }
            if let old = record.progress.attachedPolicy, old != self.plan.policyName {
                try await self.ignoringNotFound { try await self.client.detachPolicy(name: old, target: arn) }
            }
            record.progress.attachedPolicy = self.plan.policyName
            if !self.plan.sharedPolicy { record.progress.sharedPolicyDigest = nil }
        case .deleteCreatedPolicy, .deletePolicy:
            if let name = record.progress.createdPolicy {
                try await Self.deletePolicy(name, client: self.client)
            }
            if record.progress.attachedPolicy == record.progress.createdPolicy { record.progress.attachedPolicy = nil }
            record.progress.createdPolicy = nil
            record.progress.policyDocumentDigest = nil
        case .attachPrincipal:
            guard let arn = record.progress.certificateArn else { return }
            try await self.client.attachThingPrincipal(thing: self.thingName, principal: arn)
            record.progress.principalAttached = true
        case .setGroup:
            try await self.setGroup(&record.progress)
        case .activateCertificate, .deactivateCertificate:
            guard let id = record.progress.certificateID else { return }
            let status: AWSIoTClient.CertificateStatus = step == .activateCertificate ? .active : .inactive
            try await self.client.updateCertificate(id: id, status: status)
            record.progress.certificateStatus = AWSCertificateStatus(rawValue: status.rawValue)
        case .retireCertificate:
            guard let retiring = record.progress.retiring.first else { return }
            // The certificate in use came back (the operator gave the gateway its old one
            // again): it stays.
            if retiring.certificateID != record.progress.certificateID {
                try await self.deleteCertificate(id: retiring.certificateID, arn: retiring.certificateArn)
            }
            record.progress.retiring.removeFirst()
        case .deleteCertificate:
            if let id = record.progress.certificateID, let arn = record.progress.certificateArn {
                try await self.deleteCertificate(id: id, arn: arn)
            }
            Self.forgetCertificate(&record)
            record.progress.keyRequest = nil
        case .deleteThing:
            // AWS keeps a thing's shadows when the thing goes (a thing of the same name made
            // later would find them): they go first.
            if !self.plan.isGateway, let data = try? self.provisioner.hub.connections.dataClient(for: self.integration) {
                try await self.deleteShadows(data)
            }
            do {
                for principal in try await self.client.listThingPrincipals(thing: self.thingName) {
                    try await self.ignoringNotFound { try await self.client.detachThingPrincipal(thing: self.thingName, principal: principal) }
                }
                try await self.client.deleteThing(name: self.thingName)
            } catch let error as AWSError where error.isNotFound {
                // No such thing: nothing to remove.
            }
            let issued = record.progress.credentialsIssuedAt
            record.progress = AWSThingProgress()
            record.progress.credentialsIssuedAt = issued
            record.sealedPrivateKey = nil
        }
    }

    /// Deletes the thing's classic shadow and its named ones; those that are not there are done.
    private func deleteShadows(_ data: AWSIoTDataClient) async throws {
        var names: [String?] = [nil]
        do {
            names += try await data.listNamedShadows(thing: self.thingName).map(Optional.some)
        } catch let error as AWSError where error.isNotFound {
            // No such thing: no named shadows.
        }
        for name in names {
            try await self.ignoringNotFound { try await data.deleteThingShadow(thing: self.thingName, name: name) }
        }
    }

    /// Forgets the certificate, its key and its attachments (it is gone, or going).
    static func forgetCertificate(_ record: inout ProvisioningJob) {
        record.progress.certificateID = nil
        record.progress.certificateArn = nil
        record.progress.certificatePem = nil
        record.progress.certificateStatus = nil
        record.progress.certificateRegistered = nil
        record.progress.principalAttached = false
        record.progress.attachedPolicy = nil
        record.progress.credentialsIssuedAt = nil
        record.sealedPrivateKey = nil
    }

    // MARK: Things

    private func createThing(_ progress: inout AWSThingProgress) async throws {
        let attributes = self.plan.attributes ?? [:]
        let thing: AWSIoTClient.Thing
        do {
            thing = try await self.client.createThing(name: self.thingName, attributes: attributes)
        } catch let error as AWSError where error.isAlreadyExists {
            // A thing of that name exists with other attributes: adopt it, with ours.
            try await self.client.updateThing(name: self.thingName, attributes: attributes, merge: true)
            thing = try await self.client.describeThing(name: self.thingName)
        }
        progress.thingArn = thing.thingArn
        progress.thingID = thing.thingId
        progress.attributesDigest = ProvisioningPlan.digest(attributes)
    }

    private func setGroup(_ progress: inout AWSThingProgress) async throws {
        if let old = progress.groupName, old != self.plan.thingGroup {
            try await self.ignoringNotFound { try await self.client.removeThingFromThingGroup(thing: self.thingName, group: old) }
            progress.groupName = nil
        }
        guard let group = self.plan.thingGroup else { return }
        do {
            try await self.client.addThingToThingGroup(thing: self.thingName, group: group)
        } catch let error as AWSError where error.isNotFound {
            if try await self.thingIsMissing() {
                Self.forgetThing(&progress)
                progress.repairs.append("thing \(self.thingName) was missing in AWS: made again")
                return
            }
            // The group is missing: Conduit makes it (once for all the jobs that find it so), and
            // notes it first, so that deleting the integration removes it even if this process
            // dies right after creating it.
            let hub = self.provisioner.hub
            let (client, integrationID) = (self.client, self.integration.id)
            try await hub.connections.once("group|\(integrationID)|\(group)") {
                do {
                    _ = try await client.describeThingGroup(name: group)
                    return  // made meanwhile, by another job of this integration or by someone else
                } catch let error as AWSError where error.isNotFound {}
                try await hub.integrations.noteCreatedGroup(group, in: integrationID)
                do {
                    _ = try await client.createThingGroup(name: group)
                } catch let error as AWSError where error.isAlreadyExists {
                    // Made between the look and the creation: by another of this integration's
                    // jobs, almost surely, so it stays noted as Conduit's.
                }
            }
            try await self.client.addThingToThingGroup(thing: self.thingName, group: group)
        }
        progress.groupName = group
    }

    // MARK: Certificates

    private func createCertificate(_ record: inout ProvisioningJob) async throws {
        guard var request = record.progress.keyRequest else { return }
        if request.uncertain, try await self.adoptInterruptedCertificate(&record) { return }
        // Announce the request before making it: if this process dies before it hears AWS's
        // answer, the next try looks for the certificate instead of making a second one.
        request.uncertain = true
        record.progress.keyRequest = request
        try await self.provisioner.persist(record)
        let certificate: AWSIoTClient.Certificate
        do {
            certificate = try await self.client.createCertificateFromCsr(request.csr, setAsActive: true)
        } catch let error as AWSError where !error.isRetryable || error.isThrottling {
            // AWS answered, and its answer says it made nothing.
            record.progress.keyRequest?.uncertain = false
            throw error
        }
        record.progress.certificateID = certificate.certificateId
        record.progress.certificateArn = certificate.certificateArn
        record.progress.certificatePem = certificate.certificatePem
        record.progress.certificateStatus = .active
        record.progress.keyRequest = nil
    }

    /// Registers the certificate the operator brought, or adopts it when AWS has it already (a
    /// retry after a crash, or the operator registered it themselves).
    private func registerCertificate(_ record: inout ProvisioningJob) async throws {
        guard let pem = self.plan.registeredCertificate else { return }
        var certificate: AWSIoTClient.Certificate
        do {
            certificate = try await self.client.registerCertificateWithoutCA(pem, status: .active)
        } catch let error as AWSError where error.isAlreadyExists {
            guard let id = error.resourceID else { throw error }
            certificate = try await self.client.describeCertificate(id: id)
            if certificate.status == AWSIoTClient.CertificateStatus.revoked.rawValue {
                throw HubError.conflict(
                    "gateway_certificate_revoked", "gateway.certificatePem: AWS holds this certificate as REVOKED; give the gateway another"
                )
            }
        }
        // A gateway given its old certificate again: it is no longer on its way out.
        record.progress.retiring.removeAll { $0.certificateID == certificate.certificateId }
        record.progress.keyRequest = nil
        record.progress.certificateID = certificate.certificateId
        record.progress.certificateArn = certificate.certificateArn
        record.progress.certificatePem = pem
        record.progress.certificateStatus = certificate.status.flatMap(AWSCertificateStatus.init(rawValue:)) ?? .active
        record.progress.certificateRegistered = true
    }

    /// Looks among the certificates made since the request for one signed for its key; adopts it.
    private func adoptInterruptedCertificate(_ record: inout ProvisioningJob) async throws -> Bool {
        guard let request = record.progress.keyRequest, let sealed = record.sealedPrivateKey else { return false }
        let privateKey = try self.provisioner.hub.secrets.open(sealed, for: .thingKey(record))
        // Clocks differ: look five minutes further back than the request.
        let since = request.requestedAt.timeIntervalSince1970 - 300
        let candidates = try await self.client.listCertificates(stop: { page in
            page.contains { ($0.creationDate ?? .infinity) < since }
        })
        for candidate in candidates where (candidate.creationDate ?? .infinity) >= since {
            let described = try await self.client.describeCertificate(id: candidate.certificateId)
            guard let pem = described.certificatePem,
                DeviceKeyMaterial.certificate(pem, matchesPrivateKey: privateKey, requestID: request.nonce)
            else { continue }
            record.progress.certificateID = described.certificateId
            record.progress.certificateArn = described.certificateArn
            record.progress.certificatePem = pem
            record.progress.certificateStatus = described.status.flatMap(AWSCertificateStatus.init(rawValue:))
            record.progress.keyRequest = nil
            return true
        }
        return false
    }

    /// Detaches the certificate from its policies and things, deactivates and deletes it; a
    /// certificate that is gone already is done.
    private func deleteCertificate(id: String, arn: String) async throws {
        do {
            for policy in try await self.client.listAttachedPolicies(target: arn) {
                try await self.ignoringNotFound { try await self.client.detachPolicy(name: policy, target: arn) }
            }
            try await self.ignoringNotFound { try await self.client.detachThingPrincipal(thing: self.thingName, principal: arn) }
            try await self.client.updateCertificate(id: id, status: .inactive)
            try await self.client.deleteCertificate(id: id)
        } catch let error as AWSError where error.isNotFound {
            // Gone already.
        }
    }

    // MARK: Policies

    private func createPolicy(_ record: inout ProvisioningJob) async throws {
        guard let document = self.plan.policyDocument(record.progress) else { return }
        let name = self.plan.policyName
        if record.progress.createdPolicy != name {
            // Named before it is made, so that a removal after a crash deletes it.
            record.progress.createdPolicy = name
            try await self.provisioner.persist(record)
        }
        do {
            _ = try await self.client.createPolicy(name: name, document: document)
        } catch let error as AWSError where error.isAlreadyExists {
            // Made by an interrupted try: make sure it holds this document.
            try await Self.replacePolicyDocument(name: name, document: document, client: self.client)
        }
        record.progress.policyDocumentDigest = ProvisioningPlan.digest(document)
    }

    /// Makes sure the integration's shared policy holds the document the settings make. The
    /// process remembers what it made, so that of all the things provisioned only the first (and
    /// the first after a change of topics) calls AWS; the others wait for it.
    private func ensureSharedPolicy(_ progress: inout AWSThingProgress) async throws {
        guard let document = self.plan.policyDocument(progress) else { return }
        let (name, client) = (self.plan.policyName, self.client)
        let digest = ProvisioningPlan.digest(document)
        try await self.provisioner.hub.connections.ensurePolicy(name, digest: digest) {
            do {
                try await Self.replacePolicyDocument(name: name, document: document, client: client)
            } catch let error as AWSError where error.isNotFound {
                do {
                    _ = try await client.createPolicy(name: name, document: document)
                } catch let error as AWSError where error.isAlreadyExists {
                    // Made meanwhile, by another node.
                    try await Self.replacePolicyDocument(name: name, document: document, client: client)
                }
            }
        }
        progress.sharedPolicyDigest = digest
    }

    /// Makes `document` the policy's default version and deletes the others (AWS keeps five).
    private static func replacePolicyDocument(name: String, document: String, client: AWSIoTClient) async throws {
        if try await client.getPolicy(name: name).policyDocument.map(Self.canonicalJSON) == Self.canonicalJSON(document) { return }
        try await self.deleteOtherVersions(of: name, client: client)
        try await client.createPolicyVersion(name: name, document: document, setAsDefault: true)
        try await self.deleteOtherVersions(of: name, client: client)
    }

    private static func deleteOtherVersions(of name: String, client: AWSIoTClient) async throws {
        for version in try await client.listPolicyVersions(name: name) where !version.isDefaultVersion {
            do {
                try await client.deletePolicyVersion(name: name, versionId: version.versionId)
            } catch let error as AWSError where error.isNotFound {
                // Gone already.
            }
        }
    }

    /// Deletes a policy Conduit made: its other versions first, as AWS requires.
    static func deletePolicy(_ name: String, client: AWSIoTClient) async throws {
        do {
            try await self.deleteOtherVersions(of: name, client: client)
            try await client.deletePolicy(name: name)
        } catch let error as AWSError where error.isNotFound {
            // Gone already.
        }
    }

    static func canonicalJSON(_ text: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)),
            let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return text }
        return String(decoding: data, as: UTF8.self)
    }

    private func ignoringNotFound(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as AWSError where error.isNotFound {
            // Already as wanted.
        }
    }
}
