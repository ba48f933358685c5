import Foundation

/// A device in the registry. Its id is global (it is the MQTT client id and the AWS IoT thing name).
public struct Device: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    public var status: DeviceStatus
    /// Sorted, without duplicates.
    public var labels: [String]
    public var attributes: [String: String]
    /// The salted hash of the broker password; never shown.
    public var secretHash: String
    public var createdAt: Date
    public var updatedAt: Date
    public var statusChangedAt: Date
    /// The TLS client certificate enrolled for the device: the one certificate that logs it in.
    public var certificate: DeviceCertificate?

    public init(
        id: String, tenantID: String, name: String, status: DeviceStatus, labels: [String],
        attributes: [String: String], secretHash: String, createdAt: Date, updatedAt: Date, statusChangedAt: Date,
        certificate: DeviceCertificate? = nil
    ) {
        self.certificate = certificate
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.status = status
        self.labels = labels
        self.attributes = attributes
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.statusChangedAt = statusChangedAt
    }
}

/// A device's enrolled certificate: what CONNECT compares the presented one with, and what an
/// operator is shown. The certificate itself is public; it is kept for downloading again.
public struct DeviceCertificate: Sendable, Equatable, Codable {
    /// SHA-256 of the DER, lowercase hex.
    public var fingerprint: String
    public var subject: String
    public var notBefore: Date
    public var notAfter: Date
    public var enrolledAt: Date
    /// `pem` when the operator gave the certificate, `csr` when Conduit's device CA signed it.
    public var source: String
    public var pem: String

    public init(fingerprint: String, subject: String, notBefore: Date, notAfter: Date, enrolledAt: Date, source: String, pem: String) {
        self.fingerprint = fingerprint
        self.subject = subject
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.enrolledAt = enrolledAt
        self.source = source
        self.pem = pem
    }
}
