import Foundation
import Hub
import Hummingbird

/// `/v1/devices/{id}/certificate`: the one TLS client certificate that logs the device in.
struct DeviceCertificateRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("devices/{id}/certificate", use: self.enroll)
        group.get("devices/{id}/certificate", use: self.get)
        group.delete("devices/{id}/certificate", use: self.revoke)
    }

    /// `{"certificatePem": PEM}` enrols a certificate of the operator's CA; `{"csr": PEM}` has
    /// Conduit's device CA sign one. Either replaces what was enrolled, and ends its connections.
    @Sendable func enroll(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<DeviceCertificateRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "enrolling device certificates")
        let body = try await JSONBody(request: request, context: context, allowed: ["certificatePem", "csr"])
        let input: DeviceRegistry.CertificateInput
        switch (try body.string("certificatePem"), try body.string("csr")) {
        case (let pem?, nil): input = .certificate(pem: pem)
        case (nil, let csr?): input = .csr(pem: csr)
        default: throw HubError.invalidField("body", "give one of certificatePem (a certificate in PEM) or csr (a CSR for Conduit's device CA)")
        }
        let enrolled = try await self.hub.devices.enrollCertificate(input, for: try context.parameters.require("id"), by: principal)
        guard let certificate = enrolled.device.certificate else { throw HubError.notFound("certificate of device", enrolled.device.id) }
        return EditedResponse(status: .created, response: DeviceCertificateRepresentation(certificate))
    }

    @Sendable func get(_ request: Request, context: ConduitRequestContext) async throws -> DeviceCertificateRepresentation {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let device = try await self.hub.devices.get(id, by: principal)
        guard let certificate = device.certificate else { throw HubError.notFound("certificate of device", id) }
        return DeviceCertificateRepresentation(certificate)
    }

    @Sendable func revoke(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        _ = try await self.hub.devices.revokeCertificate(of: try context.parameters.require("id"), by: principal)
        return Response(status: .noContent)
    }
}

/// A device's enrolled certificate: public, shown to any role.
struct DeviceCertificateRepresentation: ResponseEncodable {
    let fingerprint: String
    let subject: String
    let notBefore: Date
    let notAfter: Date
    let enrolledAt: Date
    let source: String
    let certificatePem: String

    init(_ certificate: DeviceCertificate) {
        self.fingerprint = certificate.fingerprint
        self.subject = certificate.subject
        self.notBefore = certificate.notBefore
        self.notAfter = certificate.notAfter
        self.enrolledAt = certificate.enrolledAt
        self.source = certificate.source
        self.certificatePem = certificate.pem
    }
}
