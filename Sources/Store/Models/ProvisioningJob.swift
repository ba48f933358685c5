import Foundation

/// The durable provisioning job of one device in one integration: what Conduit wants in AWS for
/// it, what it has made so far, and the state of the work that closes the gap. Leased by one
/// worker at a time; ``ProvisioningStepRunner`` (in Hub) runs its steps.
public struct ProvisioningJob: Sendable, Equatable {
    /// The device id of the row that holds an integration's downlink gateway: its thing, its
    /// certificate and its policy. Not a possible device id (`$`), so no device collides with it.
    public static let gatewayDeviceID = "$gateway"

    public var isGateway: Bool { self.deviceID == Self.gatewayDeviceID }

    public var integrationID: String
    public var deviceID: String
    public var tenantID: String
    public var wanted: ProvisioningTarget
    /// The device exists and the integration binds it; when false the row goes once AWS is clean.
    public var bound: Bool
    public var state: AWSProvisioningState
    public var progress: AWSThingProgress
    /// The device's private key, sealed, until its credentials are fetched once.
    public var sealedPrivateKey: String?
    /// True while AWS still differs from ``wanted``.
    public var needsWork: Bool
    public var lastError: String?
    /// Failed attempts since the last success.
    public var attempts: Int
    public var nextAttemptAt: Date
    public var updatedAt: Date
    /// The lease a worker holds on the job, one token per claim; nil when no one runs it.
    public var leaseOwner: String?

    public init(
        integrationID: String, deviceID: String, tenantID: String, wanted: ProvisioningTarget, bound: Bool,
        state: AWSProvisioningState, progress: AWSThingProgress = AWSThingProgress(), sealedPrivateKey: String? = nil,
        needsWork: Bool, lastError: String? = nil, attempts: Int = 0, nextAttemptAt: Date, updatedAt: Date, leaseOwner: String? = nil
    ) {
        self.leaseOwner = leaseOwner
        self.integrationID = integrationID
        self.deviceID = deviceID
        self.tenantID = tenantID
        self.wanted = wanted
        self.bound = bound
        self.state = state
        self.progress = progress
        self.sealedPrivateKey = sealedPrivateKey
        self.needsWork = needsWork
        self.lastError = lastError
        self.attempts = attempts
        self.nextAttemptAt = nextAttemptAt
        self.updatedAt = updatedAt
    }
}

/// What a device should be in AWS, from its status and its binding.
public enum ProvisioningTarget: String, Sendable, Codable {
    /// Pending: nothing in AWS yet. (Stored as `none`.)
    case nothingYet = "none"
    /// Accepted: thing, active certificate, policy, group.
    case active
    /// Rejected: whatever exists stays, its certificate inactive.
    case inactive
    /// Decommissioned, deleted or unbound: nothing left in AWS.
    case absent
}

/// An AWS IoT certificate's status, as AWS names it (every value AWS documents).
public enum AWSCertificateStatus: String, Sendable, Codable, CaseIterable {
    case active = "ACTIVE"
    case inactive = "INACTIVE"
    case revoked = "REVOKED"
    case pendingTransfer = "PENDING_TRANSFER"
    case registerInactive = "REGISTER_INACTIVE"
    case pendingActivation = "PENDING_ACTIVATION"
}

/// Where a device stands in an integration, as operators see it.
public enum AWSProvisioningState: String, Sendable, Codable, CaseIterable {
    case pending, provisioning, provisioned, disabled, deprovisioning, deprovisioned, failed
}

/// What exists in AWS for the device, recorded step by step so that a job resumes where it was.
public struct AWSThingProgress: Sendable, Equatable, Codable {
    /// A certificate request in flight: the CSR's nonce and whether AWS may have answered it
    /// without Conduit hearing (a crash, a lost connection), so that a retry looks before it asks again.
    public struct KeyRequest: Sendable, Equatable, Codable {
        public var nonce: String
        public var requestedAt: Date
        public var csr: String
        public var uncertain: Bool

        public init(nonce: String, requestedAt: Date, csr: String, uncertain: Bool) {
            self.nonce = nonce
            self.requestedAt = requestedAt
            self.csr = csr
            self.uncertain = uncertain
        }
    }

    /// A certificate to detach, deactivate and delete (after a rotation or a repair).
    public struct RetiringCertificate: Sendable, Equatable, Codable {
        public var certificateID: String
        public var certificateArn: String

        public init(certificateID: String, certificateArn: String) {
            self.certificateID = certificateID
            self.certificateArn = certificateArn
        }
    }

    /// Some AWS call may have been made for this device: deprovisioning must look.
    public var touched = false
    public var thingArn: String?
    public var thingID: String?
    /// A digest of the attributes last written to the thing.
    public var attributesDigest: String?
    public var keyRequest: KeyRequest?
    public var certificateID: String?
    public var certificateArn: String?
    public var certificatePem: String?
    /// The certificate's status in AWS, as last set or seen.
    public var certificateStatus: AWSCertificateStatus?
    /// The certificate was registered (RegisterCertificateWithoutCA), not signed by AWS for a
    /// key Conduit made.
    public var certificateRegistered: Bool?
    /// The per-thing policy Conduit made, and a digest of the document it holds.
    public var createdPolicy: String?
    public var policyDocumentDigest: String?
    /// A digest of the integration's shared policy document, as last made sure of in AWS for
    /// this thing: a change of topics makes every thing's job update the policy (once).
    public var sharedPolicyDigest: String?
    /// The policy attached to the certificate.
    public var attachedPolicy: String?
    public var principalAttached = false
    /// The thing group the thing was added to.
    public var groupName: String?
    public var retiring: [RetiringCertificate] = []
    public var credentialsIssuedAt: Date?
    /// Drift found by a reconcile pass, reported once the job has repaired it.
    public var repairs: [String] = []

    public init() {}
}
