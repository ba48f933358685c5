import Crypto
import Foundation
import Store

/// What AWS should hold for one device in one integration, and the next step toward it from what
/// exists. Pure: no AWS, no store, no clock; the provisioner runs the steps it names.
struct ProvisioningPlan: Sendable {
    var wanted: ProvisioningTarget
    var thingName: String
    var thingGroup: String?
    var perThingPolicy: Bool
    /// The integration's one policy for all its things (``sharedPolicyName(_:)``), made once.
    var sharedPolicy: Bool
    /// The policy to attach: the named one, the shared one, or the thing's own.
    var policyName: String
    /// The thing attributes to set; nil when the device is gone (nothing to write then).
    var attributes: [String: String]?
    /// The integration's downlink gateway, not a device: its own policy, no group, and maybe a
    /// certificate of the operator's instead of one AWS signs.
    let isGateway: Bool
    /// The certificate to register instead of having AWS sign one (the gateway's, from the operator's CA).
    let registeredCertificate: String?
    let settings: IntegrationSettings

    init(integration: Integration, deviceID: String, device: Device?, wanted: ProvisioningTarget) {
        self.wanted = wanted
        self.settings = integration.settings
        if deviceID == ProvisioningJob.gatewayDeviceID {
            self.isGateway = true
            self.thingName = Self.gatewayThingName(integration.id)
            self.thingGroup = nil
            self.perThingPolicy = true
            self.sharedPolicy = false
            self.policyName = Self.gatewayPolicyName(integration.id)
            self.attributes = ["conduit": "downlink-gateway"]
            self.registeredCertificate = integration.settings.gatewayCertificate
        } else {
            self.isGateway = false
            self.thingName = deviceID
            self.thingGroup = integration.settings.thingGroup
            switch integration.settings.policyMode {
            case .perThing:
                (self.perThingPolicy, self.sharedPolicy, self.policyName) = (true, false, Self.thingPolicyName(deviceID))
            case .shared:
                (self.perThingPolicy, self.sharedPolicy, self.policyName) = (false, true, Self.sharedPolicyName(integration.id))
            case .named(let name):
                (self.perThingPolicy, self.sharedPolicy, self.policyName) = (false, false, name)
            }
            self.attributes = device.map { Self.thingAttributes(of: $0, copying: integration.settings.thingAttributes) }
            self.registeredCertificate = nil
        }
    }

    /// The gateway's thing name, which is also its MQTT client id. Device ids may not start with
    /// `conduit-gateway-`, so none collides with it.
    static func gatewayThingName(_ integrationID: String) -> String {
        Validation.gatewayThingPrefix + integrationID
    }

    /// The gateway's policy: `conduit-gateway@` and the integration id. A device's own policy
    /// (`conduit-` and its id, `:` as `.`) never holds an `@`, so none collides with it.
    static func gatewayPolicyName(_ integrationID: String) -> String {
        "conduit-gateway@" + integrationID
    }

    /// The integration's shared policy: `conduit-shared@` and the integration id (no device
    /// policy holds an `@`, and the gateway's begins otherwise).
    static func sharedPolicyName(_ integrationID: String) -> String {
        "conduit-shared@" + integrationID
    }

    /// The same plan toward another wanted state.
    func with(wanted: ProvisioningTarget) -> ProvisioningPlan {
        var plan = self
        plan.wanted = wanted
        return plan
    }

    /// The next step, or nil when AWS is as wanted.
    func nextStep(_ progress: AWSThingProgress) -> AWSProvisioningStep? {
        switch self.wanted {
        case .active:
            if !progress.touched { return .begin }
            if progress.thingArn == nil { return .createThing }
            if let attributes, progress.attributesDigest != Self.digest(attributes) { return .updateThingAttributes }
            if progress.certificateID != nil, self.certificateIsReplaced(progress) { return .replaceCertificate }
            if progress.certificateID == nil {
                if self.registeredCertificate != nil {
                    // A certificate AWS may have signed before the operator brought their own is
                    // looked for first, so that it is not left behind.
                    return progress.keyRequest?.uncertain == true ? .resolveCertificateRequest : .registerCertificate
                }
                return progress.keyRequest == nil ? .createKey : .createCertificate
            }
            if self.perThingPolicy {
                if progress.createdPolicy == nil || progress.policyDocumentDigest == nil { return .createPolicy }
                if progress.policyDocumentDigest != self.policyDocument(progress).map(Self.digest) { return .updatePolicy }
            }
            if self.sharedPolicy, progress.sharedPolicyDigest != self.policyDocument(progress).map(Self.digest) { return .ensureSharedPolicy }
            if progress.attachedPolicy != self.policyName { return .attachPolicy }
            if !self.perThingPolicy && progress.createdPolicy != nil { return .deleteCreatedPolicy }
            if !progress.principalAttached { return .attachPrincipal }
            if progress.groupName != self.thingGroup { return .setGroup }
            if progress.certificateStatus != .active { return .activateCertificate }
            if !progress.retiring.isEmpty { return .retireCertificate }
            return nil
        case .inactive:
            if progress.certificateID == nil, progress.keyRequest?.uncertain == true { return .resolveCertificateRequest }
            if progress.certificateID != nil && progress.certificateStatus != .inactive { return .deactivateCertificate }
            if !progress.retiring.isEmpty { return .retireCertificate }
            return nil
        case .absent, .nothingYet:
            // A pending device has nothing in AWS; what a deleted device of the same id left is removed.
            if progress.certificateID == nil, progress.keyRequest?.uncertain == true { return .resolveCertificateRequest }
            if progress.certificateID != nil { return .deleteCertificate }
            if !progress.retiring.isEmpty { return .retireCertificate }
            if progress.createdPolicy != nil { return .deletePolicy }
            if progress.touched { return .deleteThing }
            return nil
        }
    }

    /// True when the certificate in AWS is not the one wanted: the operator gave the gateway
    /// another certificate, or went back to one AWS signs.
    func certificateIsReplaced(_ progress: AWSThingProgress) -> Bool {
        if let wanted = self.registeredCertificate { return progress.certificatePem != wanted }
        return progress.certificateRegistered == true
    }

    /// The state to show when no step is left.
    var settledState: AWSProvisioningState {
        switch self.wanted {
        case .nothingYet: .pending
        case .active: .provisioned
        case .inactive: .disabled
        case .absent: .deprovisioned
        }
    }

    /// The state to show while steps are left.
    var workingState: AWSProvisioningState {
        self.wanted == .absent || self.wanted == .nothingYet ? .deprovisioning : .provisioning
    }

    /// The state for `progress`, with no error pending.
    func state(of progress: AWSThingProgress) -> AWSProvisioningState {
        self.nextStep(progress) == nil ? self.settledState : self.workingState
    }

    // MARK: What is made

    /// The thing's own policy: `conduit-` and the device id with `:` as `.` (policy names allow
    /// no colon and device ids no dot, so the mapping is one to one).
    static func thingPolicyName(_ deviceID: String) -> String {
        "conduit-" + deviceID.replacingOccurrences(of: ":", with: ".")
    }

    /// `name` (the device's name) and the copied attributes, each value with the characters AWS
    /// does not allow in an attribute value (`[a-zA-Z0-9_.,@/:#=\[\]-]`) replaced by `_`.
    static func thingAttributes(of device: Device, copying keys: [String]) -> [String: String] {
        var attributes = ["name": self.attributeValue(device.name)]
        for key in keys {
            if let value = device.attributes[key] { attributes[key] = self.attributeValue(value) }
        }
        return attributes
    }

    static func attributeValue(_ value: String) -> String {
        let allowed = Set("_.,@/:#=[]-")
        return String(String(value.map { ($0.isASCII && ($0.isLetter || $0.isNumber)) || allowed.contains($0) ? $0 : "_" }).prefix(800))
    }

    /// The thing's least-privilege policy: connect as its own client id; publish on its uplink
    /// topic and its shadow; subscribe and receive on its downlink topic and its shadow. The
    /// gateway's: connect as its own client id, subscribe to `{downlinkPrefix}/+/down` and receive
    /// what comes on it, nothing else. Needs the account, which the thing's ARN tells.
    ///
    /// The shared policy grants the same, with the thing named by AWS IoT's thing policy variable
    /// `${iot:Connection.Thing.ThingName}`: the thing attached to the certificate that connects.
    /// It may connect only while its certificate is attached to a thing
    /// (`iot:Connection.Thing.IsAttached`), and only with that thing's name as its client id, so
    /// that the variable always names the thing that is connected.
    func policyDocument(_ progress: AWSThingProgress) -> String? {
        guard let thingArn = progress.thingArn else { return nil }
        let parts = thingArn.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 6 else { return nil }
        let prefix = "arn:\(parts[1]):iot:\(parts[3]):\(parts[4])"
        let id = self.sharedPolicy ? Self.thingNameVariable : self.thingName
        if self.isGateway {
            let downlinks = self.settings.downlinkPrefix
            var statements: [[String: Any]] = [
                ["Effect": "Allow", "Action": "iot:Connect", "Resource": "\(prefix):client/\(id)"],
                ["Effect": "Allow", "Action": "iot:Subscribe", "Resource": "\(prefix):topicfilter/\(downlinks)/+/down"],
                ["Effect": "Allow", "Action": "iot:Receive", "Resource": "\(prefix):topic/\(downlinks)/*/down"],
                // Changes of its things' shadows made in AWS, relayed to the devices: exactly `update/documents`.
                ["Effect": "Allow", "Action": "iot:Subscribe", "Resource": Self.shadowDocumentsFilters.map { "\(prefix):topicfilter/\($0)" }],
                [
                    "Effect": "Allow", "Action": "iot:Receive",
                    "Resource": Self.shadowDocumentsFilters.map { "\(prefix):topic/\($0.replacingOccurrences(of: "+", with: "*"))" },
                ],
            ]
            // Exactly the ingest topics: the filter as subscribed, and its topics (a policy's * for + and {deviceId}).
            for filter in self.settings.ingestTopics ?? [] {
                let subscription = IngestTopics.subscription(filter)
                statements.append(["Effect": "Allow", "Action": "iot:Subscribe", "Resource": "\(prefix):topicfilter/\(subscription)"])
                statements.append(["Effect": "Allow", "Action": "iot:Receive", "Resource": "\(prefix):topic/\(subscription.replacingOccurrences(of: "+", with: "*"))"])
            }
            return Self.json(["Version": "2012-10-17", "Statement": statements])
        }
        // Never widened: a template stored before PolicyScope's rule, which cannot name this
        // thing alone, grants no uplink topic at all.
        let uplink = PolicyScope.uplinkResource(self.settings.uplinkTopic, thingName: id)
        let downlink = "\(self.settings.downlinkPrefix)/\(id)/down"
        let shadow = "$aws/things/\(id)/shadow/*"
        var connect: [String: Any] = ["Effect": "Allow", "Action": "iot:Connect", "Resource": "\(prefix):client/\(id)"]
        if self.sharedPolicy { connect["Condition"] = ["Bool": ["iot:Connection.Thing.IsAttached": "true"]] }
        let document: [String: Any] = [
            "Version": "2012-10-17",
            "Statement": [
                connect,
                ["Effect": "Allow", "Action": "iot:Publish", "Resource": (uplink.map { ["\(prefix):topic/\($0)"] } ?? []) + ["\(prefix):topic/\(shadow)"]],
                [
                    "Effect": "Allow", "Action": "iot:Subscribe",
                    "Resource": ["\(prefix):topicfilter/\(downlink)", "\(prefix):topicfilter/\(shadow)"],
                ],
                ["Effect": "Allow", "Action": "iot:Receive", "Resource": ["\(prefix):topic/\(downlink)", "\(prefix):topic/\(shadow)"]],
            ],
        ]
        return Self.json(document)
    }

    /// What a gateway subscribes to for its things' shadows: each change AWS publishes, classic and named.
    static let shadowDocumentsFilters = ["$aws/things/+/shadow/update/documents", "$aws/things/+/shadow/name/+/update/documents"]

    /// AWS IoT's thing policy variable: the name of the thing the connecting certificate is attached to.
    static let thingNameVariable = "${iot:Connection.Thing.ThingName}"

    private static func json(_ document: [String: Any]) -> String? {
        guard let data = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return nil
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func digest(_ document: String) -> String {
        SHA256.hash(data: Data(document.utf8)).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    static func digest(_ attributes: [String: String]) -> String {
        self.digest(attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n"))
    }
}
