import Foundation
import Store

/// What a caller sends to create an integration, or to change one: a nil field is not given (it
/// takes its default on create, keeps its value on change); `.some(nil)` clears an optional one.
public struct IntegrationDraft: Sendable {
    /// The credentials as sent: one of an access key, a role, or Conduit's own chain.
    public struct Credentials: Sendable {
        public var accessKeyID: String?
        public var secretAccessKey: String?
        public var roleARN: String?
        public var externalID: String?
        public var source: String?

        public init(accessKeyID: String? = nil, secretAccessKey: String? = nil, roleARN: String? = nil, externalID: String? = nil, source: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.roleARN = roleARN
            self.externalID = externalID
            self.source = source
        }
    }

    /// `{"name": existing}`, `{"perThing": true}` or `{"shared": true}`.
    public struct Policy: Sendable {
        public var name: String?
        public var perThing: Bool?
        public var shared: Bool?

        public init(name: String? = nil, perThing: Bool? = nil, shared: Bool? = nil) {
            self.name = name
            self.perThing = perThing
            self.shared = shared
        }
    }

    /// `{"devices": [...]}`, `{"labels": [...]}` or `{"all": true}`.
    public struct Bind: Sendable {
        public var devices: [String]?
        public var labels: [String]?
        public var all: Bool?

        public init(devices: [String]? = nil, labels: [String]? = nil, all: Bool? = nil) {
            self.devices = devices
            self.labels = labels
            self.all = all
        }
    }

    /// A gateway certificate from the operator's own CA, and its private key (PEM).
    public struct Gateway: Sendable {
        public var certificatePEM: String?
        public var privateKeyPEM: String?

        public init(certificatePEM: String? = nil, privateKeyPEM: String? = nil) {
            self.certificatePEM = certificatePEM
            self.privateKeyPEM = privateKeyPEM
        }
    }

    public var name: String?
    public var type: String?
    public var region: String?
    public var endpointURL: String??
    public var credentials: Credentials?
    public var policy: Policy?
    public var thingGroup: String??
    public var thingAttributes: [String]?
    public var uplinkTopic: String?
    public var payloadFormat: String?
    public var downlinkPrefix: String?
    public var active: Bool?
    public var bind: Bind?
    public var mqttEndpoint: String??
    public var mqttTrustRoots: String??
    /// `.some(nil)`: back to a certificate AWS signs.
    public var gateway: Gateway??
    /// AWS topic filters to take messages back from, each with one `{deviceId}` level; `[]` for none.
    public var ingestTopics: [String]?

    public init() {}

    /// True when the draft changes the credentials and nothing else.
    var changesOnlyCredentials: Bool {
        self.credentials != nil && self.name == nil && self.type == nil && self.region == nil && self.endpointURL == nil
            && self.policy == nil && self.thingGroup == nil && self.thingAttributes == nil && self.uplinkTopic == nil
            && self.payloadFormat == nil && self.downlinkPrefix == nil && self.active == nil && self.bind == nil
            && self.mqttEndpoint == nil && self.mqttTrustRoots == nil && self.gateway == nil && self.ingestTopics == nil
    }
}

/// The rules of an integration's fields, each naming the field and the rule it broke.
enum IntegrationRules {
    static let type = "aws-iot-core"
    static let defaultUplinkTopic = "conduit/{deviceId}/up"
    static let defaultDownlinkPrefix = "conduit/devices"
    static let payloadFormats = FieldRules.payloadFormats
    static let placeholders = FieldRules.placeholders

    // The string rules are ``FieldRules``', which the OpenAPI document prints.

    static func region(_ value: String) throws {
        try FieldRules.region.check(value, field: "region")
    }

    static func thingGroup(_ value: String) throws {
        try FieldRules.thingGroup.check(value, field: "thingGroup")
    }

    static func policyName(_ value: String) throws {
        try FieldRules.policyName.check(value, field: "policy.name")
    }

    static func thingAttributes(_ values: [String]) throws {
        guard values.count <= FieldRules.maximumThingAttributes else {
            throw HubError.invalidField("thingAttributes", "at most 2: a thing without a thing type has 3 attributes, and name is one")
        }
        for (index, key) in values.enumerated() {
            try Validation.attributeKey(key, field: "thingAttributes[\(index)]")
            if key == "name" { throw HubError.invalidField("thingAttributes[\(index)]", "name is always set; list other attributes") }
        }
    }

    /// A topic template: an MQTT topic for AWS IoT (no wildcards, not under `$`, at most 7
    /// slashes and 256 bytes) whose `{...}` are placeholders Conduit knows.
    /// Ingest topic filters: AWS topics with one whole `{deviceId}` level, `+` levels allowed,
    /// no `#`, not under `$aws/`, and never one of the integration's own uplink topics (Conduit
    /// would take its own messages back: a loop).
    static func ingestTopics(_ filters: [String], uplinkTopic: String) throws {
        guard filters.count <= FieldRules.maximumIngestTopics else { throw HubError.invalidField("ingestTopics", "at most \(FieldRules.maximumIngestTopics)") }
        let uplinks = TopicPattern(uplinkTemplate: uplinkTopic)
        for (index, filter) in filters.enumerated() {
            let field = "ingestTopics[\(index)]"
            guard !filter.isEmpty, filter.utf8.count <= 256 else { throw HubError.invalidField(field, "must be 1 to 256 bytes") }
            guard !filter.hasPrefix("$") else { throw HubError.invalidField(field, "must not be under $ (AWS's reserved topics)") }
            let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
            guard levels.filter({ $0 == "{deviceId}" }).count == 1 else {
                throw HubError.invalidField(field, "must have exactly one level that is {deviceId}, such as waylay/{deviceId}/state")
            }
            for level in levels where level != "{deviceId}" && level != "+" {
                if level.contains("#") { throw HubError.invalidField(field, "must not contain #: it names one topic per device, + for any one level") }
                if level.contains("+") || level.contains("{") || level.contains("}") {
                    throw HubError.invalidField(field, "a level is a name, + or {deviceId}, not '\(level)'")
                }
                if level.unicodeScalars.contains(where: { $0.value == 0 }) { throw HubError.invalidField(field, "must not contain NUL") }
            }
            if TopicPattern(ingestFilter: filter).sharesATopic(with: uplinks) {
                throw HubError.invalidField(field, "overlaps the integration's uplink topic (\(uplinkTopic)): Conduit would take its own uplinks back")
            }
        }
    }

    static func uplinkTopic(_ value: String) throws {
        guard let message = FieldRules.uplinkTopic.violation(value) else { return }
        // The rule decides; the message names the first unknown placeholder when that is what is wrong.
        if message == FieldRules.unknownPlaceholderMessage,
            let name = value.split(separator: "{").dropFirst().lazy.map({ String($0.prefix { $0 != "}" }) })
                .first(where: { !self.placeholders.contains($0) })
        {
            throw HubError.invalidField(
                "uplinkTopic", "unknown placeholder {\(name)}; known: \(self.placeholders.map { "{\($0)}" }.joined(separator: ", "))"
            )
        }
        throw HubError.invalidField("uplinkTopic", message)
    }

    static func downlinkPrefix(_ value: String) throws {
        try FieldRules.downlinkPrefix.check(value, field: "downlinkPrefix")
    }

    /// `host:port`: a DNS name or an IPv4 address (or an IPv6 one in brackets), and a port.
    static func mqttEndpoint(_ value: String) throws {
        try FieldRules.mqttEndpoint.check(value, field: "mqttEndpoint")
        guard self.hostAndPort(value) != nil else {
            throw HubError.invalidField("mqttEndpoint", "must be host:port, such as a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883")
        }
    }

    /// The host (an IPv6 one without its brackets) and port of `host:port`; nil when it is not one.
    static func hostAndPort(_ value: String) -> (host: String, port: Int)? {
        guard let colon = value.lastIndex(of: ":"), let port = Int(value[value.index(after: colon)...]), (1...65535).contains(port) else {
            return nil
        }
        let host = value[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") {
            let address = host.dropFirst().dropLast()
            guard !address.isEmpty, address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return nil }
            return (String(address), port)
        }
        guard !host.isEmpty, host.utf8.count <= 253, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }),
            !host.hasPrefix("."), !host.hasPrefix("-")
        else { return nil }
        return (String(host), port)
    }

    /// One or more CA certificates, PEM.
    static func mqttTrustRoots(_ value: String) throws {
        try FieldRules.mqttTrustRoots.check(value, field: "mqttTrustRoots")
        do {
            let certificates = try GatewayCertificates.parse(value)
            guard !certificates.isEmpty else { throw HubError.invalidField("mqttTrustRoots", "must hold at least one certificate (PEM)") }
        } catch let error as HubError {
            throw error
        } catch {
            throw HubError.invalidField("mqttTrustRoots", "must be CA certificates in PEM (-----BEGIN CERTIFICATE-----): \(error)")
        }
    }

    /// The operator's gateway certificate and its key: both given, the key the certificate's,
    /// and the certificate valid now. Returns the certificate and the sealed key.
    static func gateway(
        _ input: IntegrationDraft.Gateway, secrets: SecretBox, binding: SecretBinding, now: Date
    ) throws -> (certificate: String, sealedKey: String) {
        guard let certificatePEM = input.certificatePEM else { throw HubError.invalidField("gateway.certificatePem", "is required") }
        guard let keyPEM = input.privateKeyPEM else { throw HubError.invalidField("gateway.privateKey", "is required") }
        let certificate = try GatewayCertificates.check(certificatePEM: certificatePEM, privateKeyPEM: keyPEM, now: now)
        return (certificate, try secrets.seal(keyPEM, for: binding))
    }

    static func credentials(_ input: IntegrationDraft.Credentials, secrets: SecretBox, binding: SecretBinding) throws -> IntegrationCredentials {
        let forms = [input.accessKeyID != nil || input.secretAccessKey != nil, input.roleARN != nil || input.externalID != nil, input.source != nil]
        guard forms.filter({ $0 }).count == 1 else {
            throw HubError.invalidField(
                "credentials", "give one of {accessKeyId, secretAccessKey}, {roleArn, externalId} or {source: \"default\"}"
            )
        }
        if input.accessKeyID != nil || input.secretAccessKey != nil {
            guard let keyID = input.accessKeyID else { throw HubError.invalidField("credentials.accessKeyId", "is required with secretAccessKey") }
            guard let secret = input.secretAccessKey else {
                throw HubError.invalidField("credentials.secretAccessKey", "is required with accessKeyId")
            }
            try FieldRules.accessKeyID.check(keyID, field: "credentials.accessKeyId")
            try FieldRules.secretAccessKey.check(secret, field: "credentials.secretAccessKey")
            return IntegrationCredentials(kind: .accessKey, accessKeyID: keyID, sealedSecretAccessKey: try secrets.seal(secret, for: binding))
        }
        if input.roleARN != nil || input.externalID != nil {
            guard let roleARN = input.roleARN else { throw HubError.invalidField("credentials.roleArn", "is required with externalId") }
            try FieldRules.roleARN.check(roleARN, field: "credentials.roleArn")
            if let externalID = input.externalID {
                try FieldRules.externalID.check(externalID, field: "credentials.externalId")
            }
            return IntegrationCredentials(kind: .role, roleARN: roleARN, externalID: input.externalID)
        }
        guard input.source == "default" else {
            throw HubError.invalidField("credentials.source", "must be \"default\" (Conduit's own AWS credentials)")
        }
        return IntegrationCredentials(kind: .default)
    }

    static func binding(_ input: IntegrationDraft.Bind) throws -> IntegrationBinding {
        let forms = [input.devices != nil, input.labels != nil, input.all != nil]
        guard forms.filter({ $0 }).count == 1 else {
            throw HubError.invalidField("bind", "give one of {devices: [ids]}, {labels: [labels]} or {all: true}")
        }
        if let devices = input.devices {
            guard devices.count <= 10_000 else { throw HubError.invalidField("bind.devices", "at most 10000 devices; bind by label instead") }
            for (index, id) in devices.enumerated() { try Validation.deviceID(id, field: "bind.devices[\(index)]") }
            return IntegrationBinding(devices: Array(Set(devices)).sorted())
        }
        if let labels = input.labels {
            guard !labels.isEmpty else { throw HubError.invalidField("bind.labels", "must name at least one label") }
            return IntegrationBinding(labels: try Validation.labels(labels, field: "bind.labels"))
        }
        guard input.all == true else { throw HubError.invalidField("bind.all", "must be true; to bind nothing, use {devices: []}") }
        return IntegrationBinding(all: true)
    }
}
