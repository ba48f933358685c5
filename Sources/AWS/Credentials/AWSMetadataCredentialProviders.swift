import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// The JSON both the container endpoint and instance metadata answer with.
struct AWSMetadataCredentials: Decodable {
    let AccessKeyId: String
    let SecretAccessKey: String
    let Token: String?
    let Expiration: String?

    func resolved(source: String) -> AWSResolvedCredentials {
        AWSResolvedCredentials(
            credentials: AWSCredentials(accessKeyID: self.AccessKeyId, secretAccessKey: self.SecretAccessKey, sessionToken: self.Token),
            source: source, expiration: self.Expiration.flatMap { try? Date($0, strategy: .iso8601) }
        )
    }
}

/// Fetches `url` and decodes the credentials JSON; a refused connection or 404 means "not here".
///
/// - Parameters:
///   - timeout, attempts: how long each try may take, and how many are made before the endpoint
///     counts as unreachable (a busy host can miss one short deadline).
func fetchMetadataCredentials(
    _ url: String, headers: [(String, String)], source: String, httpClient: HTTPClient, timeout: TimeAmount = .seconds(2),
    attempts: Int = 1
) async throws -> AWSResolvedCredentials {
    var request = HTTPClientRequest(url: url)
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    var reply: HTTPClientResponse?
    for _ in 0..<max(1, attempts) where reply == nil {
        reply = try? await httpClient.execute(request, timeout: timeout)
    }
    guard let response = reply else {
        throw AWSCredentialError.notFound("\(source) not reachable at \(url)")
    }
    let body = try await response.body.collect(upTo: 1 << 20)
    guard response.status == .ok else {
        throw AWSCredentialError.notFound("\(source) answered \(response.status.code)")
    }
    do {
        return try JSONDecoder().decode(AWSMetadataCredentials.self, from: Data(body.readableBytesView)).resolved(source: source)
    } catch {
        throw AWSCredentialError.invalidConfiguration("\(source) answered something other than credentials")
    }
}

/// ECS and EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (on 169.254.170.2) or
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `AWS_CONTAINER_AUTHORIZATION_TOKEN`(`_FILE`).
public struct AWSContainerCredentialProvider: AWSCredentialProvider {
    let environment: [String: String]
    let httpClient: HTTPClient

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, httpClient: HTTPClient = .shared) {
        self.environment = environment
        self.httpClient = httpClient
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        let url: String
        if let relative = self.environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
            url = "http://169.254.170.2" + relative
        } else if let full = self.environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty {
            url = full
        } else {
            throw AWSCredentialError.notFound("no container credentials endpoint (AWS_CONTAINER_CREDENTIALS_*_URI)")
        }
        var token = self.environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
        if let file = self.environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
            token = try? String(contentsOfFile: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // The endpoint was named, so it is expected to be there: more patience than for the
        // instance metadata the default chain merely probes.
        return try await fetchMetadataCredentials(
            url, headers: token.map { [("Authorization", $0)] } ?? [], source: "container credentials", httpClient: self.httpClient,
            timeout: .seconds(5), attempts: 2
        )
    }
}

/// EC2 instance metadata, IMDSv2 only (a session token first): the role attached to the
/// instance. Off with `AWS_EC2_METADATA_DISABLED=true`; `AWS_EC2_METADATA_SERVICE_ENDPOINT` moves it;
/// `AWS_METADATA_SERVICE_TIMEOUT` (seconds, default 2) and `AWS_METADATA_SERVICE_NUM_ATTEMPTS`
/// (default 2) bound each request and the tries for the token, as in the AWS SDKs.
public struct AWSInstanceMetadataCredentialProvider: AWSCredentialProvider {
    let environment: [String: String]
    let httpClient: HTTPClient

    public init(environment: [String: String] = ProcessInfo.processInfo.environment, httpClient: HTTPClient = .shared) {
        self.environment = environment
        self.httpClient = httpClient
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        if self.environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" {
            throw AWSCredentialError.notFound("instance metadata disabled (AWS_EC2_METADATA_DISABLED)")
        }
        var base = self.environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "http://169.254.169.254"
        if base.hasSuffix("/") { base.removeLast() }
        var tokenRequest = HTTPClientRequest(url: base + "/latest/api/token")
        tokenRequest.method = .PUT
        tokenRequest.headers.add(name: "X-aws-ec2-metadata-token-ttl-seconds", value: "21600")
        // Two tries of two seconds by default: off EC2 nothing answers and the chain moves on.
        let timeout = TimeAmount.milliseconds(Int64(1000 * (self.environment["AWS_METADATA_SERVICE_TIMEOUT"].flatMap(Double.init).map { max(0.1, $0) } ?? 2)))
        let attempts = self.environment["AWS_METADATA_SERVICE_NUM_ATTEMPTS"].flatMap(Int.init).map { max(1, $0) } ?? 2
        var token: String?
        for _ in 0..<attempts where token == nil {
            guard let response = try? await self.httpClient.execute(tokenRequest, timeout: timeout) else { continue }
            let body = try await response.body.collect(upTo: 4096)
            guard response.status == .ok else { throw AWSCredentialError.notFound("instance metadata refused a token") }
            token = String(buffer: body)
        }
        guard let token else { throw AWSCredentialError.notFound("no instance metadata at \(base)") }
        let header = [("X-aws-ec2-metadata-token", token)]
        var roleRequest = HTTPClientRequest(url: base + "/latest/meta-data/iam/security-credentials/")
        roleRequest.headers.add(name: header[0].0, value: header[0].1)
        let roleResponse = try await self.httpClient.execute(roleRequest, timeout: timeout)
        let roles = String(buffer: try await roleResponse.body.collect(upTo: 4096))
        guard roleResponse.status == .ok, let role = roles.split(whereSeparator: \.isNewline).first.map(String.init), !role.isEmpty else {
            throw AWSCredentialError.notFound("the instance has no IAM role")
        }
        return try await fetchMetadataCredentials(
            base + "/latest/meta-data/iam/security-credentials/" + role, headers: header, source: "instance role \(role)",
            httpClient: self.httpClient, timeout: timeout
        )
    }
}
