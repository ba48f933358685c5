import AWS
import Foundation

extension AWSIoTClient {
    /// A certificate as AWS IoT describes it.
    public struct Certificate: Sendable, Equatable, Decodable {
        public var certificateArn: String
        public var certificateId: String
        public var certificatePem: String?
        /// `ACTIVE`, `INACTIVE`, `REVOKED`, ...; nil where the call does not say.
        public var status: String?
    }

    public enum CertificateStatus: String, Sendable {
        case active = "ACTIVE"
        case inactive = "INACTIVE"
        case revoked = "REVOKED"
    }

    /// Has AWS sign a certificate for a CSR made here: the private key never leaves Conduit.
    ///
    /// Each call that lands makes a new certificate, so it is not tried again after a lost
    /// connection or a server fault: the caller looks for the certificate before asking again.
    public func createCertificateFromCsr(_ csrPEM: String, setAsActive: Bool = true) async throws -> Certificate {
        try await self.call(
            "CreateCertificateFromCsr", .POST, "/certificates", query: [("setAsActive", String(setAsActive))],
            body: ["certificateSigningRequest": csrPEM], idempotent: false
        )
    }

    /// Registers a certificate from a CA AWS does not know (RegisterCertificateWithoutCA): its
    /// holder connects with SNI to the account's ATS endpoint. Registering the same certificate
    /// twice answers `ResourceAlreadyExistsException` naming the registered one.
    public func registerCertificateWithoutCA(_ certificatePEM: String, status: CertificateStatus = .active) async throws -> Certificate {
        struct Output: Decodable {
            let certificateArn: String
            let certificateId: String
        }
        let output: Output = try await self.call(
            "RegisterCertificateWithoutCA", .POST, "/certificate/register-no-ca",
            body: ["certificatePem": certificatePEM, "status": status.rawValue]
        )
        return Certificate(certificateArn: output.certificateArn, certificateId: output.certificateId, certificatePem: certificatePEM, status: status.rawValue)
    }

    /// A key pair and certificate made by AWS, private key included (shown once by AWS).
    public struct KeysAndCertificate: Sendable, Decodable {
        public struct KeyPair: Sendable, Decodable {
            public var PublicKey: String
            public var PrivateKey: String
        }
        public var certificateArn: String
        public var certificateId: String
        public var certificatePem: String
        public var keyPair: KeyPair
    }

    public func createKeysAndCertificate(setAsActive: Bool = true) async throws -> KeysAndCertificate {
        try await self.call(
            "CreateKeysAndCertificate", .POST, "/keys-and-certificate", query: [("setAsActive", String(setAsActive))],
            body: [String: String](), idempotent: false
        )
    }

    public func describeCertificate(id: String) async throws -> Certificate {
        struct Output: Decodable { let certificateDescription: Certificate }
        let output: Output = try await self.call("DescribeCertificate", .GET, "/certificates/\(Self.segment(id))")
        return output.certificateDescription
    }

    public func updateCertificate(id: String, status: CertificateStatus) async throws {
        let _: Empty = try await self.call(
            "UpdateCertificate", .PUT, "/certificates/\(Self.segment(id))", query: [("newStatus", status.rawValue)]
        )
    }

    /// Deletes a certificate, which AWS allows only once it is inactive and attached to nothing.
    public func deleteCertificate(id: String) async throws {
        let _: Empty = try await self.call("DeleteCertificate", .DELETE, "/certificates/\(Self.segment(id))")
    }

    // MARK: Principals

    public func attachThingPrincipal(thing: String, principal: String) async throws {
        try AWSIoTValidation.thingName(thing)
        let _: Empty = try await self.call(
            "AttachThingPrincipal", .PUT, "/things/\(Self.segment(thing))/principals", headers: [("x-amzn-principal", principal)]
        )
    }

    public func detachThingPrincipal(thing: String, principal: String) async throws {
        try AWSIoTValidation.thingName(thing)
        let _: Empty = try await self.call(
            "DetachThingPrincipal", .DELETE, "/things/\(Self.segment(thing))/principals", headers: [("x-amzn-principal", principal)]
        )
    }

    /// Every principal (certificate ARN) attached to the thing.
    public func listThingPrincipals(thing: String) async throws -> [String] {
        try AWSIoTValidation.thingName(thing)
        struct Page: Decodable {
            let principals: [String]?
            let nextToken: String?
        }
        return try await Self.allPages { token in
            var query = [("maxResults", "250")]
            if let token { query.append(("nextToken", token)) }
            let page: Page = try await self.call("ListThingPrincipals", .GET, "/things/\(Self.segment(thing))/principals", query: query)
            return (page.principals ?? [], page.nextToken)
        }
    }

    // MARK: Policies

    public struct Policy: Sendable, Equatable, Decodable {
        public var policyName: String
        public var policyArn: String?
        public var policyDocument: String?
    }

    /// Creates a policy; the document must be a JSON object with a `Statement`.
    public func createPolicy(name: String, document: String) async throws -> Policy {
        try AWSIoTValidation.policyName(name)
        try AWSIoTValidation.policyDocument(document)
        return try await self.call("CreatePolicy", .POST, "/policies/\(Self.segment(name))", body: ["policyDocument": document])
    }

    public func getPolicy(name: String) async throws -> Policy {
        try AWSIoTValidation.policyName(name)
        return try await self.call("GetPolicy", .GET, "/policies/\(Self.segment(name))")
    }

    public func deletePolicy(name: String) async throws {
        try AWSIoTValidation.policyName(name)
        let _: Empty = try await self.call("DeletePolicy", .DELETE, "/policies/\(Self.segment(name))")
    }

    /// Attaches a policy to a target (a certificate ARN, a thing group ARN, a Cognito identity).
    public func attachPolicy(name: String, target: String) async throws {
        try AWSIoTValidation.policyName(name)
        let _: Empty = try await self.call("AttachPolicy", .PUT, "/target-policies/\(Self.segment(name))", body: ["target": target])
    }

    public func detachPolicy(name: String, target: String) async throws {
        try AWSIoTValidation.policyName(name)
        let _: Empty = try await self.call("DetachPolicy", .POST, "/target-policies/\(Self.segment(name))", body: ["target": target])
    }

    /// The names of every policy of the account.
    public func listPolicies() async throws -> [String] {
        struct Page: Decodable {
            struct Entry: Decodable { let policyName: String }
            let policies: [Entry]?
            let nextMarker: String?
        }
        return try await Self.allPages { marker in
            var query = [("pageSize", "250")]
            if let marker { query.append(("marker", marker)) }
            let page: Page = try await self.call("ListPolicies", .GET, "/policies", query: query)
            return ((page.policies ?? []).map(\.policyName), page.nextMarker)
        }
    }

    /// The names of every policy attached to the target.
    public func listAttachedPolicies(target: String) async throws -> [String] {
        struct Page: Decodable {
            struct Entry: Decodable { let policyName: String }
            let policies: [Entry]?
            let nextMarker: String?
        }
        return try await Self.allPages { marker in
            var query = [("recursive", "false"), ("pageSize", "250")]
            if let marker { query.append(("marker", marker)) }
            let page: Page = try await self.call(
                "ListAttachedPolicies", .POST, "/attached-policies/\(Self.segment(target))", query: query, body: [String: String]()
            )
            return ((page.policies ?? []).map(\.policyName), page.nextMarker)
        }
    }
}

extension AWSIoTClient {
    /// A certificate as ListCertificates shows it.
    public struct CertificateSummary: Sendable, Equatable, Decodable {
        public var certificateArn: String
        public var certificateId: String
        public var status: String?
        /// Seconds since 1970.
        public var creationDate: Double?
    }

    /// The account's certificates, newest first, page by page until `stop` says the rest is not
    /// wanted (pages of older certificates follow).
    public func listCertificates(
        pageSize: Int = 250, stop: @Sendable ([CertificateSummary]) -> Bool = { _ in false }
    ) async throws -> [CertificateSummary] {
        struct Page: Decodable {
            let certificates: [CertificateSummary]?
            let nextMarker: String?
        }
        return try await Self.allPages { marker in
            var query = [("pageSize", String(pageSize)), ("isAscendingOrder", "false")]
            if let marker { query.append(("marker", marker)) }
            let page: Page = try await self.call("ListCertificates", .GET, "/certificates", query: query)
            let certificates = page.certificates ?? []
            return (certificates, stop(certificates) ? nil : page.nextMarker)
        }
    }

    /// The names of the thing groups the thing is in.
    public func listThingGroupsForThing(thing: String) async throws -> [String] {
        try AWSIoTValidation.thingName(thing)
        struct Page: Decodable {
            struct Group: Decodable { let groupName: String }
            let thingGroups: [Group]?
            let nextToken: String?
        }
        return try await Self.allPages { token in
            var query = [("maxResults", "250")]
            if let token { query.append(("nextToken", token)) }
            let page: Page = try await self.call(
                "ListThingGroupsForThing", .GET, "/things/\(Self.segment(thing))/thing-groups", query: query
            )
            return ((page.thingGroups ?? []).map(\.groupName), page.nextToken)
        }
    }

    /// A version of a policy.
    public struct PolicyVersion: Sendable, Equatable, Decodable {
        public var versionId: String
        public var isDefaultVersion: Bool
    }

    /// Adds a version to a policy, made the default when `setAsDefault` (AWS keeps at most five).
    public func createPolicyVersion(name: String, document: String, setAsDefault: Bool = true) async throws {
        try AWSIoTValidation.policyName(name)
        try AWSIoTValidation.policyDocument(document)
        let _: Empty = try await self.call(
            "CreatePolicyVersion", .POST, "/policies/\(Self.segment(name))/version", query: [("setAsDefault", String(setAsDefault))],
            body: ["policyDocument": document]
        )
    }

    public func listPolicyVersions(name: String) async throws -> [PolicyVersion] {
        try AWSIoTValidation.policyName(name)
        struct Output: Decodable { let policyVersions: [PolicyVersion]? }
        let output: Output = try await self.call("ListPolicyVersions", .GET, "/policies/\(Self.segment(name))/version")
        return output.policyVersions ?? []
    }

    public func deletePolicyVersion(name: String, versionId: String) async throws {
        try AWSIoTValidation.policyName(name)
        let _: Empty = try await self.call(
            "DeletePolicyVersion", .DELETE, "/policies/\(Self.segment(name))/version/\(Self.segment(versionId))"
        )
    }
}
