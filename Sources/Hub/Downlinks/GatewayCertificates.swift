import Foundation
import X509

/// Checks of the certificates an operator gives for an integration's downlink gateway: its own
/// certificate and key, and the CA certificates its data endpoint must chain to.
enum GatewayCertificates {
    /// Every certificate in a PEM text; text between them is ignored, as OpenSSL does.
    static func parse(_ pem: String) throws -> [Certificate] {
        let begin = "-----BEGIN CERTIFICATE-----"
        let end = "-----END CERTIFICATE-----"
        var certificates: [Certificate] = []
        var rest = Substring(pem)
        while let start = rest.range(of: begin) {
            guard let stop = rest.range(of: end, range: start.upperBound..<rest.endIndex) else { throw PEMError.unterminated }
            certificates.append(try Certificate(pemEncoded: String(rest[start.lowerBound..<stop.upperBound])))
            rest = rest[stop.upperBound...]
        }
        return certificates
    }

    enum PEMError: Error, CustomStringConvertible {
        case unterminated
        var description: String { "a certificate has no -----END CERTIFICATE-----" }
    }

    /// One certificate, valid at `now`, whose public key is the private key's. Returns it as PEM
    /// in one canonical form, so that the same certificate sent again compares equal.
    static func check(certificatePEM: String, privateKeyPEM: String, now: Date) throws -> String {
        let certificates: [Certificate]
        do {
            certificates = try self.parse(certificatePEM)
        } catch {
            throw HubError.invalidField("gateway.certificatePem", "must be an X.509 certificate in PEM (-----BEGIN CERTIFICATE-----)")
        }
        guard !certificates.isEmpty else {
            throw HubError.invalidField("gateway.certificatePem", "must be an X.509 certificate in PEM (-----BEGIN CERTIFICATE-----)")
        }
        guard certificates.count == 1, let certificate = certificates.first else {
            throw HubError.invalidField("gateway.certificatePem", "must hold exactly one certificate (AWS registers the gateway's own, without its CA)")
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: privateKeyPEM)
        } catch {
            throw HubError.invalidField("gateway.privateKey", "must be an EC or RSA private key in PEM (PKCS#8, SEC1 or PKCS#1)")
        }
        guard key.publicKey == certificate.publicKey else {
            throw HubError.invalidField("gateway.privateKey", "is not the private key of gateway.certificatePem")
        }
        guard certificate.notValidBefore <= now, now < certificate.notValidAfter else {
            let format = ISO8601DateFormatter()
            throw HubError.invalidField(
                "gateway.certificatePem",
                "is not valid now: it is valid from \(format.string(from: certificate.notValidBefore)) to \(format.string(from: certificate.notValidAfter))"
            )
        }
        return try certificate.serializeAsPEM().pemString + "\n"
    }
}
