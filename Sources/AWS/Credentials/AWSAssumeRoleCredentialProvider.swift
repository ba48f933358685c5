import Foundation
import NIOHTTP1

/// Temporary credentials from STS AssumeRole, signed with the `source` credentials; an
/// ExternalId when the role's trust policy asks for one (as cross-account integrations do).
/// The ``AWSClient`` that uses them refreshes them before they expire.
public struct AWSAssumeRoleCredentialProvider: AWSCredentialProvider {
    public let roleARN: String
    public let externalID: String?
    public let sessionName: String
    public let durationSeconds: Int
    let sts: AWSClient
    let endpoint: AWSEndpoint

    /// - Parameter endpointURL: STS's endpoint; by default the regional one, or `AWS_ENDPOINT_URL_STS`.
    public init(
        roleARN: String, externalID: String? = nil, sessionName: String = "conduit", durationSeconds: Int = 3600,
        source: any AWSCredentialProvider, region: String, endpointURL: URL? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.roleARN = roleARN
        self.externalID = externalID
        self.sessionName = sessionName
        self.durationSeconds = durationSeconds
        self.sts = AWSClient(credentialProvider: source, retryPolicy: AWSRetryPolicy(maximumAttempts: 4))
        let url = endpointURL ?? environment["AWS_ENDPOINT_URL_STS"].flatMap(URL.init(string:))
            ?? URL(string: "https://sts.\(region).amazonaws.com")!
        self.endpoint = AWSEndpoint(url: url, region: region, signingName: "sts")
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        var form = [
            ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", self.roleARN),
            ("RoleSessionName", self.sessionName), ("DurationSeconds", String(self.durationSeconds)),
        ]
        if let externalID = self.externalID { form.append(("ExternalId", externalID)) }
        let body = form.map { "\(AWSSigner.uriEncode($0.0))=\(AWSSigner.uriEncode($0.1))" }.joined(separator: "&")
        let response: AWSResponse
        do {
            response = try await self.sts.send(
                operation: "AssumeRole", endpoint: self.endpoint, method: .POST, path: "/",
                headers: [("content-type", "application/x-www-form-urlencoded; charset=utf-8")], body: Array(body.utf8)
            )
        } catch let error as AWSError {
            throw AWSCredentialError.invalidConfiguration("cannot assume role \(self.roleARN): \(error)")
        }
        let text = String(decoding: response.body, as: UTF8.self)
        guard let key = AWSError.xmlElement("AccessKeyId", in: text), let secret = AWSError.xmlElement("SecretAccessKey", in: text),
            let token = AWSError.xmlElement("SessionToken", in: text)
        else {
            throw AWSCredentialError.invalidConfiguration("STS answered AssumeRole without credentials")
        }
        let expiration = AWSError.xmlElement("Expiration", in: text).flatMap { try? Date($0, strategy: .iso8601) }
        return AWSResolvedCredentials(
            credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token),
            source: "assumed role \(self.roleARN)", expiration: expiration
        )
    }
}

/// The AWS SDKs' default chain: environment; the profile (static keys, or a role assumed from
/// its `source_profile` with its `external_id`); container credentials; instance metadata.
public enum AWSDefaultCredentials {
    public static func chain(
        profile: String? = nil, region: String, environment: [String: String] = ProcessInfo.processInfo.environment,
        stsEndpointURL: URL? = nil
    ) -> AWSCredentialChain {
        AWSCredentialChain([
            AWSEnvironmentCredentialProvider(environment: environment),
            AWSProfileChainProvider(profile: profile, region: region, environment: environment, stsEndpointURL: stsEndpointURL),
            AWSContainerCredentialProvider(environment: environment),
            AWSInstanceMetadataCredentialProvider(environment: environment),
        ])
    }
}

/// A profile's credentials, following `role_arn`/`source_profile` as the AWS CLI does.
struct AWSProfileChainProvider: AWSCredentialProvider {
    let profile: String?
    let region: String
    let environment: [String: String]
    let stsEndpointURL: URL?

    func resolve() async throws -> AWSResolvedCredentials {
        let configuration = try AWSSharedConfiguration.load(environment: self.environment)
        let name = AWSSharedConfiguration.profileName(self.profile, environment: self.environment)
        return try await self.resolve(name, configuration: configuration, visited: [])
    }

    private func resolve(_ name: String, configuration: AWSSharedConfiguration, visited: Set<String>) async throws -> AWSResolvedCredentials {
        guard let settings = configuration.profiles[name] else {
            throw AWSCredentialError.notFound("no profile '\(name)' in the shared AWS files")
        }
        guard let roleARN = settings["role_arn"], !roleARN.isEmpty else {
            return try AWSProfileCredentialProvider.staticCredentials(settings, profile: name)
        }
        guard let sourceName = settings["source_profile"], !sourceName.isEmpty else {
            throw AWSCredentialError.invalidConfiguration("profile '\(name)': role_arn needs a source_profile")
        }
        guard !visited.contains(sourceName) else {
            throw AWSCredentialError.invalidConfiguration("profile '\(name)': source_profile loops back to '\(sourceName)'")
        }
        let source = try await self.resolve(sourceName, configuration: configuration, visited: visited.union([name]))
        var resolved = try await AWSAssumeRoleCredentialProvider(
            roleARN: roleARN, externalID: settings["external_id"], sessionName: settings["role_session_name"] ?? "conduit",
            source: AWSStaticCredentialProvider(source.credentials), region: settings["region"] ?? self.region,
            endpointURL: self.stsEndpointURL, environment: self.environment
        ).resolve()
        resolved.source = "profile \(name): assumed role \(roleARN) from profile \(sourceName)"
        return resolved
    }
}
