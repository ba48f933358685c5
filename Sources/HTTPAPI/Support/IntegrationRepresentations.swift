import Foundation
import Hub
import Hummingbird

/// An integration as the API shows it: secrets never, `"<hidden>"` in their place.
struct IntegrationRepresentation: ResponseEncodable {
    struct Credentials: Encodable {
        var accessKeyId: String?
        var secretAccessKey: String?
        var roleArn: String?
        var externalId: String?
        var source: String?
    }
    struct Policy: Encodable {
        var name: String?
        var perThing: Bool?
        var shared: Bool?
    }
    struct Bind: Encodable {
        var devices: [String]?
        var labels: [String]?
        var all: Bool?
    }
    struct DeviceSummary: Encodable {
        var deviceId: String
        var state: AWSProvisioningState
        var lastError: String?
        var attempts: Int
        var updatedAt: Date
    }
    /// The downlink gateway: its thing and certificate in AWS, and its connection.
    struct Gateway: Encodable {
        var thingName: String
        /// `aws` (signed by AWS for a key Conduit made) or `registered` (the operator's own).
        var certificateSource: String
        var privateKey: String?
        var state: AWSProvisioningState?
        var thingArn: String?
        var certificateId: String?
        var certificateStatus: String?
        var lastError: String?
        var endpoint: String?
        var connected: Bool?
        var connectionError: String?
    }
    struct Devices: Encodable {
        var count: Int
        var states: [String: Int]
        /// The first devices by id.
        var items: [DeviceSummary]
        var latestErrors: [DeviceSummary]
    }

    let id: String
    let name: String
    let type: String
    let region: String
    let endpointUrl: String?
    let credentials: Credentials
    let policy: Policy
    let thingGroup: String?
    let thingAttributes: [String]
    let ingestTopics: [String]
    let uplinkTopic: String
    let payloadFormat: String
    let downlinkPrefix: String
    let mqttEndpoint: String?
    let mqttTrustRoots: String?
    let gateway: Gateway
    let active: Bool
    let bind: Bind
    let status: IntegrationStatus
    let dataEndpoint: String?
    let createdAt: Date
    let updatedAt: Date
    let devices: Devices?

    init(_ integration: Integration, overview: Integrations.Overview? = nil) {
        let settings = integration.settings
        self.id = integration.id
        self.name = integration.name
        self.type = integration.type
        self.region = settings.region
        self.endpointUrl = settings.endpointURL
        switch integration.credentials.kind {
        case .accessKey:
            self.credentials = Credentials(accessKeyId: integration.credentials.accessKeyID, secretAccessKey: "<hidden>")
        case .role:
            self.credentials = Credentials(roleArn: integration.credentials.roleARN, externalId: integration.credentials.externalID)
        case .default:
            self.credentials = Credentials(source: "default")
        }
        switch settings.policyMode {
        case .perThing: self.policy = Policy(perThing: true)
        case .shared: self.policy = Policy(shared: true)
        case .named(let name): self.policy = Policy(name: name)
        }
        self.thingGroup = settings.thingGroup
        self.thingAttributes = settings.thingAttributes
        self.ingestTopics = settings.ingestTopics ?? []
        self.uplinkTopic = settings.uplinkTopic
        self.payloadFormat = settings.payloadFormat
        self.downlinkPrefix = settings.downlinkPrefix
        self.mqttEndpoint = settings.mqttEndpoint
        self.mqttTrustRoots = settings.mqttTrustRoots
        var gateway = Gateway(
            thingName: Integrations.gatewayThingName(integration.id), certificateSource: settings.gatewayCertificate == nil ? "aws" : "registered",
            privateKey: integration.credentials.sealedGatewayPrivateKey == nil ? nil : "<hidden>"
        )
        if let record = overview?.gateway {
            gateway.state = record.state
            gateway.thingArn = record.progress.thingArn
            gateway.certificateId = record.progress.certificateID
            gateway.certificateStatus = record.progress.certificateStatus?.rawValue
            // What AWS holds now (while a certificate is being switched, the settings say what comes).
            if record.progress.certificateID != nil {
                gateway.certificateSource = record.progress.certificateRegistered == true ? "registered" : "aws"
            }
            gateway.lastError = record.lastError
        }
        if let connection = overview?.gatewayConnection {
            gateway.endpoint = connection.endpoint
            gateway.connected = connection.connected
            gateway.connectionError = connection.lastError
        }
        self.gateway = gateway
        self.active = integration.active
        let binding = settings.binding
        self.bind = binding.all ? Bind(all: true) : binding.labels.isEmpty ? Bind(devices: binding.devices) : Bind(labels: binding.labels)
        self.status = integration.status
        self.dataEndpoint = integration.dataEndpoint
        self.createdAt = integration.createdAt
        self.updatedAt = integration.updatedAt
        self.devices = overview.map { overview in
            let summary = { (record: ProvisioningJob) in
                DeviceSummary(
                    deviceId: record.deviceID, state: record.state, lastError: record.lastError, attempts: record.attempts,
                    updatedAt: record.updatedAt
                )
            }
            return Devices(
                count: overview.deviceCount, states: Dictionary(uniqueKeysWithValues: overview.stateCounts.map { ($0.key.rawValue, $0.value) }),
                items: overview.devices.map(summary), latestErrors: overview.latestErrors.map(summary)
            )
        }
    }
}

/// A device's provisioning in one integration.
struct DeviceAWSRepresentation: ResponseEncodable {
    let integrationId: String
    let integrationName: String
    let state: AWSProvisioningState
    let thingName: String
    let thingArn: String?
    let certificateId: String?
    let certificateStatus: String?
    let endpoint: String?
    let credentialsIssuedAt: Date?
    let lastError: String?
    let attempts: Int
    let nextAttemptAt: Date?
    let updatedAt: Date

    init(_ status: Integrations.DeviceStatus) {
        let record = status.record
        self.integrationId = record.integrationID
        self.integrationName = status.integration.name
        self.state = record.state
        self.thingName = record.deviceID
        self.thingArn = record.progress.thingArn
        self.certificateId = record.progress.certificateID
        self.certificateStatus = record.progress.certificateStatus?.rawValue
        self.endpoint = status.integration.dataEndpoint
        self.credentialsIssuedAt = record.progress.credentialsIssuedAt
        self.lastError = record.lastError
        self.attempts = record.attempts
        self.nextAttemptAt = record.needsWork && record.lastError != nil ? record.nextAttemptAt : nil
        self.updatedAt = record.updatedAt
    }
}

/// A device's AWS IoT credentials, shown once.
struct CredentialsRepresentation: ResponseEncodable {
    let deviceId: String
    let integrationId: String
    let clientId: String
    let thingName: String
    let thingArn: String?
    let certificateId: String
    let certificateArn: String
    let certificatePem: String
    let privateKey: String
    let publicKey: String?
    let rootCA: String?
    let endpoint: String?
    let region: String
    let port: Int

    init(_ bundle: Integrations.CredentialsBundle) {
        self.deviceId = bundle.deviceID
        self.integrationId = bundle.integrationID
        self.clientId = bundle.clientID
        self.thingName = bundle.thingName
        self.thingArn = bundle.thingArn
        self.certificateId = bundle.certificateID
        self.certificateArn = bundle.certificateArn
        self.certificatePem = bundle.certificatePem
        self.privateKey = bundle.privateKey
        self.publicKey = bundle.publicKey
        self.rootCA = bundle.rootCA
        self.endpoint = bundle.endpoint
        self.region = bundle.region
        self.port = bundle.port
    }
}

/// What a reconcile pass found on one device.
struct DriftRepresentation: Encodable {
    let deviceId: String
    let repairs: [String]
}
