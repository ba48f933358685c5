import Crypto
import Foundation
import X509
import _CryptoExtras

/// A device's key pair, made by Conduit, and the CSR that AWS signs: the private key never goes
/// to AWS. PKCS#8 PEM, as AWS IoT's own device bundles.
public struct DeviceKeyMaterial: Sendable {
    public enum Algorithm: String, Sendable, CaseIterable {
        /// ECDSA on P-256: small and fast; the default.
        case p256 = "P-256"
        /// RSA 2048, for devices whose TLS stack has no ECDSA.
        case rsa2048 = "RSA-2048"
    }

    public let algorithm: Algorithm
    /// The private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). Secret: show once, store encrypted.
    public let privateKeyPEM: String
    /// A CSR with the subject CN = `commonName`, PEM.
    public let csrPEM: String

    /// Makes a new key pair and a CSR for `commonName` (the device id).
    ///
    /// - Parameter requestID: goes in the subject's OU, so that a certificate AWS signed for this
    ///   CSR can be recognised later even by a stand-in that signs a key of its own.
    public static func generate(commonName: String, requestID: String? = nil, algorithm: Algorithm = .p256) throws -> DeviceKeyMaterial {
        let subject = try DistinguishedName {
            CommonName(commonName)
            if let requestID { OrganizationalUnitName(requestID) }
        }
        switch algorithm {
        case .p256:
            let key = P256.Signing.PrivateKey()
            let csr = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .ecdsaWithSHA256
            )
            return DeviceKeyMaterial(algorithm: algorithm, privateKeyPEM: key.pemRepresentation, csrPEM: try csr.serializeAsPEM().pemString)
        case .rsa2048:
            let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            let csr = try CertificateSigningRequest(
                version: .v1, subject: subject, privateKey: Certificate.PrivateKey(key), attributes: CertificateSigningRequest.Attributes(),
                signatureAlgorithm: .sha256WithRSAEncryption
            )
            return DeviceKeyMaterial(algorithm: algorithm, privateKeyPEM: key.pkcs8PEMRepresentation, csrPEM: try csr.serializeAsPEM().pemString)
        }
    }

    /// True when `certificatePEM` was signed for this key pair: its public key is ours, or (from a
    /// signer that makes its own key, as stand-ins of AWS do) its subject carries `requestID`.
    public static func certificate(_ certificatePEM: String, matchesPrivateKey privateKeyPEM: String, requestID: String) -> Bool {
        guard let certificate = try? Certificate(pemEncoded: certificatePEM) else { return false }
        if let key = try? Certificate.PrivateKey(pemEncoded: privateKeyPEM), key.publicKey == certificate.publicKey {
            return true
        }
        return certificate.subject.contains { name in
            name.contains { $0.type == .RDNAttributeType.organizationalUnitName && String(describing: $0.value) == requestID }
        }
    }

    /// The public key of a private key (PKCS#8 PEM), as PEM; nil when it cannot be read.
    public static func publicKeyPEM(privateKeyPEM: String) -> String? {
        guard let key = try? Certificate.PrivateKey(pemEncoded: privateKeyPEM) else { return nil }
        return try? key.publicKey.serializeAsPEM().pemString
    }

    /// Amazon Root CA 1, the CA of AWS IoT's ATS endpoints, from the system's CA store (Debian's
    /// ca-certificates ships it); nil when the store has no copy.
    public static func amazonRootCA1(path: String = "/etc/ssl/certs/Amazon_Root_CA_1.pem") -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }
}
