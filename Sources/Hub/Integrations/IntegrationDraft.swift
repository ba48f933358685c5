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

    /// `{"name": existing}` or `{"perThing": true}`.
    public struct Policy: Sendable {
        public var name: String?
        public var perThing: Bool?

        public init(name: String? = nil, perThing: Bool? = nil) {
            self.name = name
            self.perThing = perThing
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

    public init() {}

    /// True when the draft changes the credentials and nothing else.
    var changesOnlyCredentials: Bool {
        self.credentials != nil && self.name == nil && self.type == nil && self.region == nil && self.endpointURL == nil
            && self.policy == nil && self.thingGroup == nil && self.thingAttributes == nil && self.uplinkTopic == nil
            && self.payloadFormat == nil && self.downlinkPrefix == nil && self.active == nil && self.bind == nil
            && self.mqttEndpoint == nil && self.mqttTrustRoots == nil && self.gateway == nil
    }
}

/// The rules of an integration's fields, each naming the field and the rule it broke.
enum IntegrationRules {
    static let type = "aws-iot-core"
    static let defaultUplinkTopic = "conduit/{deviceId}/up"
    static let defaultDownlinkPrefix = "conduit/devices"
    static let payloadFormats = ["raw", "envelope"]
    static let placeholders = ["deviceId", "deviceName", "subtopic"]

    static func region(_ value: String) throws {
        // us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-4...
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 3, value.utf8.count <= 32, let last = parts.last, Int(last) != nil,
            parts.dropLast().allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isLowercase } })
        else {
            throw HubError.invalidField("region", "must be an AWS region such as eu-west-1")
        }
    }

    static func thingGroup(_ value: String) throws {
        guard !value.isEmpty, value.utf8.count <= 128,
            value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else {
            throw HubError.invalidField("thingGroup", "must match [a-zA-Z0-9_-]{1,128}")
        }
    }

    static func policyName(_ value: String) throws {
        guard !value.isEmpty, value.utf8.count <= 128,
            value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_+=,.@-".contains($0)) })
        else {
            throw HubError.invalidField("policy.name", "must match [\\w+=,.@-]{1,128} (an AWS IoT policy name)")
        }
    }

    static func thingAttributes(_ values: [String]) throws {
        guard values.count <= 2 else {
            throw HubError.invalidField("thingAttributes", "at most 2: a thing without a thing type has 3 attributes, and name is one")
        }
        for (index, key) in values.enumerated() {
            try Validation.attributeKey(key, field: "thingAttributes[\(index)]")
            if key == "name" { throw HubError.invalidField("thingAttributes[\(index)]", "name is always set; list other attributes") }
        }
    }

    /// A topic template: an MQTT topic for AWS IoT (no wildcards, not under `$`, at most 7
    /// slashes and 256 bytes) whose `{...}` are placeholders Conduit knows.
    static func uplinkTopic(_ value: String) throws {
        let field = "uplinkTopic"
        guard !value.isEmpty else { throw HubError.invalidField(field, "must not be empty") }
        var literal = ""
        var rest = Substring(value)
        while let open = rest.firstIndex(of: "{") {
            literal += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw HubError.invalidField(field, "has a '{' without its '}'")
            }
            let name = String(rest[rest.index(after: open)..<close])
            guard self.placeholders.contains(name) else {
                throw HubError.invalidField(
                    field, "unknown placeholder {\(name)}; known: \(self.placeholders.map { "{\($0)}" }.joined(separator: ", "))"
                )
            }
            rest = rest[rest.index(after: close)...]
        }
        literal += rest
        if literal.contains("}") { throw HubError.invalidField(field, "has a '}' without its '{'") }
        try self.topic(literal, field: field, template: value)
    }

    static func downlinkPrefix(_ value: String) throws {
        let field = "downlinkPrefix"
        guard !value.isEmpty else { throw HubError.invalidField(field, "must not be empty") }
        guard !value.contains("{"), !value.contains("}") else { throw HubError.invalidField(field, "takes no placeholders") }
        guard !value.hasSuffix("/") else { throw HubError.invalidField(field, "must not end with '/'") }
        guard value.filter({ $0 == "/" }).count <= 5 else {
            throw HubError.invalidField(field, "must have at most 5 slashes ({downlinkPrefix}/{id}/down may have 7)")
        }
        try self.topic(value, field: field, template: value)
    }

    private static func topic(_ literal: String, field: String, template: String) throws {
        guard !literal.contains("+"), !literal.contains("#") else {
            throw HubError.invalidField(field, "must not contain the MQTT wildcards + or #")
        }
        guard !template.hasPrefix("$") else { throw HubError.invalidField(field, "must not start with $ (reserved by AWS IoT)") }
        guard !literal.unicodeScalars.contains(where: { $0.value == 0 || $0.properties.generalCategory == .control }) else {
            throw HubError.invalidField(field, "must not contain control characters")
        }
        guard literal.utf8.count <= 256 else { throw HubError.invalidField(field, "must be at most 256 bytes") }
        guard template.filter({ $0 == "/" }).count <= 7 else {
            throw HubError.invalidField(field, "must have at most 7 slashes (AWS IoT allows 8 topic levels)")
        }
    }

    /// `host:port`: a DNS name or an IPv4 address (or an IPv6 one in brackets), and a port.
    static func mqttEndpoint(_ value: String) throws {
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
        guard value.utf8.count <= 256 * 1024 else { throw HubError.invalidField("mqttTrustRoots", "must be at most 256 KB of PEM") }
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
            guard (16...128).contains(keyID.utf8.count), keyID.allSatisfy({ $0.isASCII && ($0.isUppercase || $0.isNumber) }) else {
                throw HubError.invalidField("credentials.accessKeyId", "must be an AWS access key id: 16 to 128 of [A-Z0-9]")
            }
            guard !secret.isEmpty, secret.utf8.count <= 128, !secret.contains(where: { $0.isWhitespace }) else {
                throw HubError.invalidField("credentials.secretAccessKey", "must be 1 to 128 characters without spaces")
            }
            return IntegrationCredentials(kind: .accessKey, accessKeyID: keyID, sealedSecretAccessKey: try secrets.seal(secret, for: binding))
        }
        if input.roleARN != nil || input.externalID != nil {
            guard let roleARN = input.roleARN else { throw HubError.invalidField("credentials.roleArn", "is required with externalId") }
            let parts = roleARN.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
            guard parts.count == 6, parts[0] == "arn", parts[1].hasPrefix("aws"), parts[2] == "iam", parts[3].isEmpty,
                parts[4].count == 12, parts[4].allSatisfy(\.isNumber), parts[5].hasPrefix("role/"), parts[5].count > 5,
                roleARN.utf8.count <= 2048
            else {
                throw HubError.invalidField("credentials.roleArn", "must be an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME")
            }
            if let externalID = input.externalID {
                guard (2...1224).contains(externalID.utf8.count),
                    externalID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+=,.@:/-_".contains($0)) })
                else {
                    throw HubError.invalidField("credentials.externalId", "must be 2 to 1224 of [\\w+=,.@:/-]")
                }
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
