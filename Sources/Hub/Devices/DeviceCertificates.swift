import Crypto
import Foundation
import Logging
import Metrics
import Store
import X509

/// The CA that signs device certificates (the broker's `mqtt.tls.ca`), with its key when the
/// operator gave it (`mqtt.tls.caKey`): then Conduit signs devices' CSRs.
public struct DeviceCA: Sendable {
    let certificate: Certificate
    let key: Certificate.PrivateKey

    /// - Throws: a message naming the file's setting when either does not parse or they do not pair.
    public init(certificatePEM: String, keyPEM: String) throws {
        guard let certificate = try? GatewayCertificates.parse(certificatePEM).first else {
            throw HubError.invalidField("mqtt.tls.ca", "must hold the device CA's certificate in PEM")
        }
        guard let key = try? Certificate.PrivateKey(pemEncoded: keyPEM) else {
            throw HubError.invalidField("mqtt.tls.caKey", "must be an EC or RSA private key in PEM (PKCS#8, SEC1 or PKCS#1)")
        }
        guard key.publicKey == certificate.publicKey else {
            throw HubError.invalidField("mqtt.tls.caKey", "is not the private key of the first certificate in mqtt.tls.ca")
        }
        self.certificate = certificate
        self.key = key
    }

    /// How long a certificate Conduit signs is valid.
    public static let validity: TimeInterval = 365 * 24 * 3600

    /// A client certificate for `deviceID` with the CSR's key: the subject is the device (CN =
    /// its id), whatever the CSR asked for, and it may only authenticate a TLS client.
    func sign(_ csr: CertificateSigningRequest, deviceID: String, now: Date) throws -> Certificate {
        let subject = try DistinguishedName { CommonName(deviceID) }
        let algorithm: Certificate.SignatureAlgorithm = self.key.publicKey.description.contains("RSA") ? .sha256WithRSAEncryption : .ecdsaWithSHA256
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: csr.publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: min(now.addingTimeInterval(Self.validity), self.certificate.notValidAfter),
            issuer: self.certificate.subject, subject: subject, signatureAlgorithm: algorithm,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.clientAuth])
            },
            issuerPrivateKey: self.key
        )
    }
}

extension DeviceRegistry {
    /// What enrolment was given: a certificate from the operator's own CA, or a CSR for
    /// Conduit's device CA to sign.
    public enum CertificateInput: Sendable {
        case certificate(pem: String)
        case csr(pem: String)
    }

    /// Enrols the device's TLS client certificate: from then on CONNECT with a certificate logs
    /// the device in only if it is this one (its SHA-256 fingerprint), whatever CA signed another
    /// with the same CN. A certificate enrolled before is replaced, and its connections end now.
    /// Returns the device and the certificate (PEM), which for a CSR Conduit has just signed.
    public func enrollCertificate(_ input: CertificateInput, for id: String, by principal: Principal) async throws -> (device: Device, pem: String) {
        try principal.require(.operator, to: "enrolling device certificates")
        let now = self.hub.now()
        let certificate: Certificate
        let source: String
        switch input {
        case .certificate(let pem):
            let parsed = (try? GatewayCertificates.parse(pem)) ?? []
            guard let first = parsed.first else {
                throw HubError.invalidField("certificatePem", "must be an X.509 certificate in PEM (-----BEGIN CERTIFICATE-----)")
            }
            guard parsed.count == 1 else { throw HubError.invalidField("certificatePem", "must hold exactly one certificate, the device's own") }
            certificate = first
            source = "pem"
        case .csr(let pem):
            guard let ca = self.hub.deviceCA else {
                throw HubError.conflict(
                    "no_device_ca", "this Conduit has no device CA key (mqtt.tls.caKey) to sign CSRs with; enrol a certificate (certificatePem) instead"
                )
            }
            guard let csr = try? CertificateSigningRequest(pemEncoded: pem) else {
                throw HubError.invalidField("csr", "must be a certificate signing request in PEM (-----BEGIN CERTIFICATE REQUEST-----)")
            }
            guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
                throw HubError.invalidField("csr", "is not signed by its own key")
            }
            certificate = try ca.sign(csr, deviceID: id, now: now)
            source = "csr"
        }
        if let constraints = try? certificate.extensions.basicConstraints, case .isCertificateAuthority = constraints {
            throw HubError.invalidField(source == "pem" ? "certificatePem" : "csr", "is a CA certificate, not a device's")
        }
        guard certificate.notValidBefore <= now, now < certificate.notValidAfter else {
            let format = ISO8601DateFormatter()
            throw HubError.invalidField(
                "certificatePem",
                "is not valid now: it is valid from \(format.string(from: certificate.notValidBefore)) to \(format.string(from: certificate.notValidAfter))"
            )
        }
        let document = try certificate.serializeAsPEM()
        let pem = document.pemString + "\n"
        let enrolled = DeviceCertificate(
            fingerprint: Self.fingerprint(ofDER: document.derBytes), subject: certificate.subject.description,
            notBefore: certificate.notValidBefore, notAfter: certificate.notValidAfter, enrolledAt: now, source: source, pem: pem
        )
        let device = try await self.changeCertificate(of: id, to: enrolled, by: principal, at: now)
        return (device, pem)
    }

    /// Revokes the device's certificate: connections that logged in with it end now, and it logs
    /// in no more.
    public func revokeCertificate(of id: String, by principal: Principal) async throws -> Device {
        try principal.require(.operator, to: "revoking device certificates")
        return try await self.changeCertificate(of: id, to: nil, by: principal, at: self.hub.now())
    }

    private func changeCertificate(of id: String, to certificate: DeviceCertificate?, by principal: Principal, at now: Date) async throws -> Device {
        guard Validation.isDeviceID(id) else { throw HubError.notFound("device", id) }
        let device = try await self.hub.store.transaction { session in
            guard var device = try await session.devices.get(tenantID: principal.tenantID, id: id, forUpdate: true) else {
                throw HubError.notFound("device", id)
            }
            guard device.status != .decommissioned || certificate == nil else {
                throw HubError.conflict("invalid_transition", "device '\(id)' is decommissioned: it takes no certificate")
            }
            guard certificate != nil || device.certificate != nil else { return device }
            let old = device.certificate?.fingerprint
            device.certificate = certificate
            device.updatedAt = now
            try await session.devices.update(device)
            var data: [String: String] = [:]
            if let old { data["previousFingerprint"] = old }
            if let certificate { data["fingerprint"] = certificate.fingerprint }
            try await session.events.append(
                tenantID: principal.tenantID, type: certificate == nil ? EventType.deviceCertificateRevoked : EventType.deviceCertificateEnrolled,
                deviceID: id, actor: principal.actor, data: EventLog.json(data), at: now
            )
            return device
        }
        // Whatever logged in with the certificate before, ends now.
        self.hub.disconnectDevice(id)
        self.hub.logger.info(
            certificate == nil ? "device certificate revoked" : "device certificate enrolled",
            metadata: [LogKey.deviceID: "\(id)", LogKey.tenantID: "\(principal.tenantID)"]
        )
        return device
    }

    /// SHA-256 of a certificate's DER, lowercase hex: how certificates are compared.
    public static func fingerprint(ofDER der: [UInt8]) -> String {
        SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
    }
}
