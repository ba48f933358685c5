/// One step of driving a device's resources in AWS toward what its integration wants. Each is
/// idempotent: run twice, it leaves AWS as running it once does.
public enum AWSProvisioningStep: String, Sendable, CaseIterable {
    /// Records that AWS calls may follow, so that a later removal looks for what they made.
    case begin
    /// CreateThing, adopting a thing of that name that exists already.
    case createThing
    /// UpdateThing with the attributes the device now has.
    case updateThingAttributes
    /// Makes the key pair and CSR, here: the private key never goes to AWS.
    case createKey
    /// CreateCertificateFromCsr, after looking for a certificate an interrupted try made.
    case createCertificate
    /// RegisterCertificateWithoutCA of a certificate the operator brought (the gateway's),
    /// adopting it when it is registered already.
    case registerCertificate
    /// Sets aside a certificate that is no longer the one wanted, for retireCertificate.
    case replaceCertificate
    /// Looks for a certificate an interrupted request may have made, without asking for one.
    case resolveCertificateRequest
    /// CreatePolicy: the thing's own least-privilege policy.
    case createPolicy
    /// CreatePolicyVersion: the thing's policy after its integration's topics changed.
    case updatePolicy
    /// Makes sure the integration's shared policy exists and holds the document its settings
    /// make (CreatePolicy, or CreatePolicyVersion): once per process for all its things.
    case ensureSharedPolicy
    /// AttachPolicy to the certificate (and DetachPolicy of one it replaces).
    case attachPolicy
    /// DeletePolicy of the thing's own policy when the integration no longer wants one.
    case deleteCreatedPolicy
    /// AttachThingPrincipal.
    case attachPrincipal
    /// AddThingToThingGroup (creating the group when missing), leaving a group it replaces.
    case setGroup
    /// UpdateCertificate to ACTIVE.
    case activateCertificate
    /// UpdateCertificate to INACTIVE.
    case deactivateCertificate
    /// Detach, deactivate and delete a certificate a rotation or a repair replaced.
    case retireCertificate
    /// Detach, deactivate and delete the device's certificate.
    case deleteCertificate
    /// DeletePolicy of the thing's own policy (its old versions first).
    case deletePolicy
    /// DetachThingPrincipal of every principal, then DeleteThing.
    case deleteThing
}
