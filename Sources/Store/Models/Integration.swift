import Foundation

/// An AWS IoT Core integration of a tenant: where its devices are mirrored, with which
/// credentials, and how. Secrets in ``credentials`` are sealed before they reach the store.
public struct Integration: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    public var name: String
    /// Always `aws-iot-core` for now.
    public var type: String
    public var settings: IntegrationSettings
    public var credentials: IntegrationCredentials
    /// An inactive integration keeps what it made in AWS but does no new work.
    public var active: Bool
    public var status: IntegrationStatus
    /// The account's `iot:Data-ATS` endpoint, from DescribeEndpoint when the integration was checked.
    public var dataEndpoint: String?
    /// The thing groups Conduit created for it (or was about to): only those does it delete.
    public var createdGroups: [String]
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, tenantID: String, name: String, type: String, settings: IntegrationSettings,
        credentials: IntegrationCredentials, active: Bool, status: IntegrationStatus, dataEndpoint: String?,
        createdGroups: [String], createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.type = type
        self.settings = settings
        self.credentials = credentials
        self.active = active
        self.status = status
        self.dataEndpoint = dataEndpoint
        self.createdGroups = createdGroups
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Whether an integration is in use or being taken apart.
public enum IntegrationStatus: String, Sendable, Codable {
    case active
    /// Deleted by an operator: its devices are being removed from AWS; the row goes when they are.
    case deleting
}

/// How an integration reaches AWS and what it makes there.
public struct IntegrationSettings: Sendable, Equatable, Codable {
    public var region: String
    /// An override of AWS IoT's control-plane endpoint (a VPC or FIPS endpoint, a local stack).
    public var endpointURL: String?
    /// An existing policy attached to every certificate; nil with ``perThingPolicy`` or ``sharedPolicy``.
    public var policyName: String?
    /// Conduit makes a least-privilege policy for each thing.
    public var perThingPolicy: Bool
    /// Conduit makes one least-privilege policy for all the integration's things, scoped by AWS
    /// IoT's thing policy variables (`${iot:Connection.Thing.ThingName}`); nil or false otherwise
    /// (stored integrations predate it). Never true with ``perThingPolicy``.
    public var sharedPolicy: Bool?
    public var thingGroup: String?
    /// Device attributes copied to the thing (the device name always is, as `name`).
    public var thingAttributes: [String]
    public var uplinkTopic: String
    public var payloadFormat: String
    public var downlinkPrefix: String
    public var binding: IntegrationBinding
    /// An override of the MQTT data endpoint (`host:port`) the downlink gateway connects to;
    /// nil for the account's `iot:Data-ATS` endpoint on 8883.
    public var mqttEndpoint: String?
    /// The CA certificates (PEM) the data endpoint's certificate must chain to; nil for the
    /// system's trust store (which holds Amazon's roots).
    public var mqttTrustRoots: String?
    /// A gateway certificate (PEM) from the operator's own CA, registered with
    /// RegisterCertificateWithoutCA; nil to have AWS sign one for a key Conduit makes. Its
    /// private key is kept sealed in ``IntegrationCredentials/sealedGatewayPrivateKey``.
    public var gatewayCertificate: String?
    /// Topic filters in AWS IoT whose messages are taken back into Conduit, each with one
    /// `{deviceId}` level that names the device (`waylay/{deviceId}/state`); nil for none.
    public var ingestTopics: [String]?

    public init(
        region: String, endpointURL: String?, policyName: String?, perThingPolicy: Bool, thingGroup: String?,
        thingAttributes: [String], uplinkTopic: String, payloadFormat: String, downlinkPrefix: String,
        binding: IntegrationBinding, mqttEndpoint: String? = nil, mqttTrustRoots: String? = nil, gatewayCertificate: String? = nil,
        sharedPolicy: Bool? = nil
    ) {
        self.sharedPolicy = sharedPolicy
        self.mqttEndpoint = mqttEndpoint
        self.mqttTrustRoots = mqttTrustRoots
        self.gatewayCertificate = gatewayCertificate
        self.region = region
        self.endpointURL = endpointURL
        self.policyName = policyName
        self.perThingPolicy = perThingPolicy
        self.thingGroup = thingGroup
        self.thingAttributes = thingAttributes
        self.uplinkTopic = uplinkTopic
        self.payloadFormat = payloadFormat
        self.downlinkPrefix = downlinkPrefix
        self.binding = binding
    }
}

extension IntegrationSettings {
    /// Which policy the integration's device certificates get.
    public enum PolicyMode: Sendable, Equatable {
        /// One Conduit makes for each thing.
        case perThing
        /// One Conduit makes for all the things, scoped by thing policy variables.
        case shared
        /// An existing policy of the operator's.
        case named(String)
    }

    public var policyMode: PolicyMode {
        get {
            if self.sharedPolicy == true { return .shared }
            return self.perThingPolicy ? .perThing : .named(self.policyName ?? "")
        }
        set {
            switch newValue {
            case .perThing: (self.perThingPolicy, self.sharedPolicy, self.policyName) = (true, nil, nil)
            case .shared: (self.perThingPolicy, self.sharedPolicy, self.policyName) = (false, true, nil)
            case .named(let name): (self.perThingPolicy, self.sharedPolicy, self.policyName) = (false, nil, name)
            }
        }
    }

    /// True when Conduit makes the policy (per thing or shared): it must scope the uplink topic.
    public var conduitMakesPolicy: Bool {
        if case .named = self.policyMode { return false }
        return true
    }
}

/// Which devices an integration mirrors: listed ones, those with any of some labels, or all.
public struct IntegrationBinding: Sendable, Equatable, Codable {
    public var all: Bool
    public var devices: [String]
    public var labels: [String]

    public init(all: Bool = false, devices: [String] = [], labels: [String] = []) {
        self.all = all
        self.devices = devices
        self.labels = labels
    }

    /// True when the binding takes this device.
    public func binds(_ device: Device) -> Bool {
        self.all || self.devices.contains(device.id) || device.labels.contains(where: self.labels.contains)
    }
}

/// Where an integration's AWS credentials come from. The secret key is stored sealed.
public struct IntegrationCredentials: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        /// An access key pair given by the operator.
        case accessKey
        /// A role assumed from Conduit's own credentials, with an ExternalId.
        case role
        /// Conduit's own credential chain (environment, profile, container, instance).
        case `default`
    }

    public var kind: Kind
    public var accessKeyID: String?
    /// `v1:...`, sealed by the hub's SecretBox.
    public var sealedSecretAccessKey: String?
    public var roleARN: String?
    public var externalID: String?
    /// The private key of ``IntegrationSettings/gatewayCertificate``, sealed.
    public var sealedGatewayPrivateKey: String?

    public init(
        kind: Kind, accessKeyID: String? = nil, sealedSecretAccessKey: String? = nil, roleARN: String? = nil,
        externalID: String? = nil, sealedGatewayPrivateKey: String? = nil
    ) {
        self.sealedGatewayPrivateKey = sealedGatewayPrivateKey
        self.kind = kind
        self.accessKeyID = accessKeyID
        self.sealedSecretAccessKey = sealedSecretAccessKey
        self.roleARN = roleARN
        self.externalID = externalID
    }
}
