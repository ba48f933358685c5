import AWS
import AWSIoT
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Store
import Synchronization

/// How the hub reaches AWS: Conduit's own credentials (for `{"source": "default"}` and as the
/// source of assumed roles), the STS endpoint, and the HTTP client, retry policy and quotas.
public struct AWSEnvironment: Sendable {
    /// Conduit's own credentials in a region: by default the AWS SDKs' chain.
    public var ownCredentials: @Sendable (_ region: String) -> any AWSCredentialProvider
    /// Where AssumeRole goes; by default `AWS_ENDPOINT_URL_STS`, else STS's regional endpoint.
    public var stsEndpointURL: URL?
    public var httpClient: HTTPClient
    /// The client uplinks go out on: iot-data Publish, many at once.
    public var dataHTTPClient: HTTPClient
    public var retryPolicy: AWSRetryPolicy
    /// Requests a second per operation; AWS IoT Core's published quotas by default.
    public var quotas: [String: Double]
    /// Endpoints other than AWS's own that integrations may use: the operator's
    /// `--aws-endpoint-allowlist`. Empty by default: AWS's hosts only.
    public var endpointAllowlist: AWSEndpointAllowlist

    public init(
        ownCredentials: @escaping @Sendable (_ region: String) -> any AWSCredentialProvider = { region in
            AWSDefaultCredentials.chain(region: region)
        },
        stsEndpointURL: URL? = nil, httpClient: HTTPClient = AWSClient.sharedHTTPClient, dataHTTPClient: HTTPClient = AWSEnvironment.publishHTTPClient,
        retryPolicy: AWSRetryPolicy = AWSRetryPolicy(), quotas: [String: Double] = AWSRateLimiter.awsIoTQuotas,
        endpointAllowlist: AWSEndpointAllowlist = AWSEndpointAllowlist()
    ) {
        self.endpointAllowlist = endpointAllowlist
        self.ownCredentials = ownCredentials
        self.stsEndpointURL = stsEndpointURL
        self.httpClient = httpClient
        self.dataHTTPClient = dataHTTPClient
        self.retryPolicy = retryPolicy
        self.quotas = quotas
    }
}

extension AWSEnvironment {
    /// The process's client for iot-data Publish, made once and never shut down (as
    /// `HTTPClient.shared`). AWS's data endpoint speaks HTTP/1.1 only (HTTPS publish takes "HTTP
    /// 1.0 or 1.1", says its guide), one request at a time per connection: the forwarder's
    /// publishes in flight each need a kept-alive connection of their own, so the pool is sized
    /// for them, not at AsyncHTTPClient's default of 8 per host.
    public static let publishHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 1024)
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}

/// One AWS IoT client per integration, made again when its settings change, with one rate
/// limiter per account and region so that every integration on an account shares its quotas.
final class AWSConnections: Sendable {
    let environment: AWSEnvironment
    let secrets: SecretBox
    let logger: Logger
    private let clients = Mutex<[String: (version: Date, client: AWSIoTClient, data: AWSIoTDataClient?)]>([:])
    private let limiters = Mutex<[String: AWSRateLimiter]>([:])
    private let creations = Mutex<[String: Task<Void, any Error>]>([:])
    /// The digest of the document each shared policy was last made to hold, by this process.
    private let policies = Mutex<[String: String]>([:])

    init(environment: AWSEnvironment, secrets: SecretBox, logger: Logger) {
        self.environment = environment
        self.secrets = secrets
        self.logger = logger
    }

    /// The control-plane client for the integration as it is now.
    func client(for integration: Integration) throws -> AWSIoTClient {
        try self.clients(for: integration).client
    }

    /// The data-plane client: the account's data endpoint over HTTPS, or the integration's
    /// `endpointUrl` override.
    func dataClient(for integration: Integration) throws -> AWSIoTDataClient {
        guard let data = try self.clients(for: integration).data else {
            throw HubError.conflict("no_data_endpoint", "integration '\(integration.id)' has no data endpoint; set its credentials again")
        }
        return data
    }

    private func clients(for integration: Integration) throws -> (version: Date, client: AWSIoTClient, data: AWSIoTDataClient?) {
        if let cached = self.clients.withLock({ $0[integration.id] }), cached.version == integration.updatedAt {
            return cached
        }
        let client = try self.makeClient(settings: integration.settings, credentials: integration.credentials, owner: integration)
        let dataURL = try integration.settings.endpointURL.map { try self.endpointURL($0, region: integration.settings.region) }
            ?? integration.dataEndpoint.map { try self.endpointURL("https://\($0)", region: integration.settings.region) }
        // Publishes go on their own pool of connections, and give up sooner than a job's patient calls.
        let publisher = try self.makeClient(
            settings: integration.settings, credentials: integration.credentials, owner: integration, httpClient: self.environment.dataHTTPClient,
            requestTimeout: .seconds(10)
        )
        let data = dataURL.map { AWSIoTDataClient(client: publisher.client, region: integration.settings.region, endpointURL: $0) }
        let entry = (integration.updatedAt, client, data)
        self.clients.withLock { $0[integration.id] = entry }
        return entry
    }

    /// Runs `create` once for every caller that asks with the same key while it runs: many jobs
    /// that find their thing group missing at once make it once.
    func once(_ key: String, _ create: @escaping @Sendable () async throws -> Void) async throws {
        let task = self.creations.withLock { creations in
            if let running = creations[key] { return running }
            let task = Task { try await create() }
            creations[key] = task
            return task
        }
        defer { self.creations.withLock { if $0[key] == task { $0[key] = nil } } }
        try await task.value
    }

    /// Runs `make` unless this process made policy `name` hold the document of this digest
    /// already; callers asking at once wait for one run.
    func ensurePolicy(_ name: String, digest: String, _ make: @escaping @Sendable () async throws -> Void) async throws {
        if self.policies.withLock({ $0[name] }) == digest { return }
        try await self.once("policy|\(name)|\(digest)") {
            if self.policies.withLock({ $0[name] }) == digest { return }
            try await make()
            self.policies.withLock { $0[name] = digest }
        }
    }

    /// Forgets what ``ensurePolicy(_:digest:_:)`` made of `name` (found missing, or deleted).
    func forgetPolicy(_ name: String) {
        _ = self.policies.withLock { $0.removeValue(forKey: name) }
    }

    /// A client for settings not stored yet (an integration being created or changed).
    /// - Parameters:
    ///   - owner: the integration whose row holds the credentials (for opening a sealed key).
    ///   - retryPolicy, requestTimeout: for a quick check instead of a job's patient calls.
    func makeClient(
        settings: IntegrationSettings, credentials: IntegrationCredentials, owner: Integration, retryPolicy: AWSRetryPolicy? = nil,
        httpClient: HTTPClient? = nil, requestTimeout: TimeAmount = .seconds(30)
    ) throws -> AWSIoTClient {
        let region = settings.region
        let provider: any AWSCredentialProvider
        let identity: String
        switch credentials.kind {
        case .accessKey:
            guard let keyID = credentials.accessKeyID, let sealed = credentials.sealedSecretAccessKey else {
                throw HubError.invalidField("credentials", "accessKeyId and secretAccessKey are both required")
            }
            let secret: String
            do {
                secret = try self.secrets.open(sealed, for: .awsSecretKey(tenantID: owner.tenantID, integrationID: owner.id))
            } catch {
                throw HubError.conflict(
                    "unreadable_secret", "credentials: the stored secret key cannot be opened with this master key; set the credentials again"
                )
            }
            provider = AWSStaticCredentialProvider(AWSCredentials(accessKeyID: keyID, secretAccessKey: secret))
            identity = keyID
        case .role:
            guard let roleARN = credentials.roleARN else { throw HubError.invalidField("credentials.roleArn", "is required") }
            provider = AWSAssumeRoleCredentialProvider(
                roleARN: roleARN, externalID: credentials.externalID, sessionName: "conduit",
                source: self.environment.ownCredentials(region), region: region, endpointURL: self.environment.stsEndpointURL
            )
            identity = roleARN
        case .default:
            provider = self.environment.ownCredentials(region)
            identity = "default"
        }
        let limiter = self.limiters.withLock { limiters in
            let key = "\(region)|\(identity)|\(settings.endpointURL ?? "")"
            if let existing = limiters[key] { return existing }
            let limiter = AWSRateLimiter(quotas: self.environment.quotas)
            limiters[key] = limiter
            return limiter
        }
        let client = AWSClient(
            credentialProvider: provider, httpClient: httpClient ?? self.environment.httpClient, retryPolicy: retryPolicy ?? self.environment.retryPolicy,
            rateLimiter: limiter, requestTimeout: requestTimeout, logger: self.logger
        )
        return AWSIoTClient(client: client, region: region, endpointURL: try settings.endpointURL.map { try self.endpointURL($0, region: region) })
    }

    /// The endpoint URL if the rule allows it: AWS IoT's own hosts for the region, or the
    /// operator's allowlist. Checked on every use, so that a stored integration from before the
    /// rule, or from before the operator narrowed the list, reaches nothing it may not.
    func endpointURL(_ value: String, region: String) throws -> URL {
        do {
            return try AWSEndpointRules.httpEndpoint(value, region: region, allowlist: self.environment.endpointAllowlist)
        } catch {
            throw HubError.invalidField("endpointUrl", error.reason)
        }
    }

    /// Refuses an MQTT endpoint the rule does not allow (see ``endpointURL(_:region:)``).
    func checkMQTTEndpoint(host: String, port: Int, region: String) throws {
        do {
            try AWSEndpointRules.mqttEndpoint(host: host, port: port, region: region, allowlist: self.environment.endpointAllowlist)
        } catch {
            throw HubError.invalidField("mqttEndpoint", error.reason)
        }
    }

    /// Refuses settings whose endpoints the rule does not allow.
    func checkEndpoints(_ settings: IntegrationSettings) throws {
        if let url = settings.endpointURL { _ = try self.endpointURL(url, region: settings.region) }
        if let endpoint = settings.mqttEndpoint, let (host, port) = IntegrationRules.hostAndPort(endpoint) {
            try self.checkMQTTEndpoint(host: host, port: port, region: settings.region)
        }
    }
}
