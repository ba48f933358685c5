import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Crypto
import Testing
import X509
import _CryptoExtras

@Suite("AWS IoT certificates, policies and principals against moto")
struct IoTCertificateTests {
    static let policyDocument = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#

    @Test("a CSR made here becomes an ACTIVE certificate; the key never leaves", arguments: DeviceKeyMaterial.Algorithm.allCases)
    func certificateFromCsr(algorithm: DeviceKeyMaterial.Algorithm) async throws {
        let iot = try Moto.iot()
        let material = try DeviceKeyMaterial.generate(commonName: "device-\(algorithm.rawValue)", algorithm: algorithm)
        #expect(material.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let csr = try CertificateSigningRequest(pemEncoded: material.csrPEM)
        #expect(csr.subject.description.contains("device-\(algorithm.rawValue)"))
        let certificate = try await iot.createCertificateFromCsr(material.csrPEM)
        #expect(!certificate.certificateId.isEmpty)
        let described = try await iot.describeCertificate(id: certificate.certificateId)
        #expect(described.status == "ACTIVE")
        #expect(described.certificatePem?.contains("BEGIN CERTIFICATE") == true)
        // The CSR carries the public half of the key made here (moto signs a key of its own, so
        // the signed certificate's key is checked against real AWS only).
        let publicKey: X509.Certificate.PublicKey =
            switch algorithm {
            case .p256: .init(try P256.Signing.PrivateKey(pemRepresentation: material.privateKeyPEM).publicKey)
            case .rsa2048: .init(try _RSA.Signing.PrivateKey(pemRepresentation: material.privateKeyPEM).publicKey)
            }
        #expect(csr.publicKey == publicKey)
        try await iot.updateCertificate(id: certificate.certificateId, status: .inactive)
        try await iot.deleteCertificate(id: certificate.certificateId)
    }

    @Test("deleting follows AWS's order: inactive, detached from things and policies, then deleted")
    func deletionOrder() async throws {
        let iot = try Moto.iot()
        let thing = Moto.unique("cert-thing")
        let policy = Moto.unique("policy")
        _ = try await iot.createThing(name: thing)
        let material = try DeviceKeyMaterial.generate(commonName: thing)
        let certificate = try await iot.createCertificateFromCsr(material.csrPEM)
        let created = try await iot.createPolicy(name: policy, document: Self.policyDocument)
        #expect(created.policyName == policy)
        #expect(try await iot.getPolicy(name: policy).policyDocument?.contains("iot:Connect") == true)
        try await iot.attachPolicy(name: policy, target: certificate.certificateArn)
        try await iot.attachThingPrincipal(thing: thing, principal: certificate.certificateArn)
        #expect(try await iot.listAttachedPolicies(target: certificate.certificateArn) == [policy])
        #expect(try await iot.listThingPrincipals(thing: thing) == [certificate.certificateArn])

        // An active certificate cannot go.
        await #expect(throws: AWSError.self) { try await iot.deleteCertificate(id: certificate.certificateId) }
        try await iot.updateCertificate(id: certificate.certificateId, status: .inactive)
        // Still attached to a thing: cannot go either.
        await #expect(throws: AWSError.self) { try await iot.deleteCertificate(id: certificate.certificateId) }
        // A policy still attached cannot be deleted.
        await #expect(throws: AWSError.self) { try await iot.deletePolicy(name: policy) }

        try await iot.detachThingPrincipal(thing: thing, principal: certificate.certificateArn)
        try await iot.detachPolicy(name: policy, target: certificate.certificateArn)
        #expect(try await iot.listThingPrincipals(thing: thing).isEmpty)
        #expect(try await iot.listAttachedPolicies(target: certificate.certificateArn).isEmpty)
        try await iot.deleteCertificate(id: certificate.certificateId)
        try await iot.deletePolicy(name: policy)
        try await iot.deleteThing(name: thing)
        do {
            _ = try await iot.describeCertificate(id: certificate.certificateId)
            Issue.record("a deleted certificate was found")
        } catch let error as AWSError {
            #expect(error.code == "ResourceNotFoundException")
        }
    }

    @Test("policy documents and names are checked before the network")
    func policyValidation() async throws {
        let iot = try Moto.iot()
        await #expect(throws: AWSIoTValidationError(field: "policyDocument", rule: "must be a JSON object")) {
            _ = try await iot.createPolicy(name: "p", document: "not json")
        }
        await #expect(throws: AWSIoTValidationError(field: "policyDocument", rule: "must have a Statement")) {
            _ = try await iot.createPolicy(name: "p", document: #"{"Version":"2012-10-17"}"#)
        }
        await #expect(throws: AWSIoTValidationError(field: "policyName", rule: "must match [\\w+=,.@-]{1,128}")) {
            _ = try await iot.createPolicy(name: "no spaces", document: Self.policyDocument)
        }
    }

    @Test("Amazon Root CA 1 comes from the system store")
    func rootCA() {
        #expect(DeviceKeyMaterial.amazonRootCA1()?.contains("BEGIN CERTIFICATE") == true)
    }
}
