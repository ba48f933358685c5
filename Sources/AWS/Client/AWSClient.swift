import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// An HTTP response from AWS that was not an error.
public struct AWSResponse: Sendable {
    public var statusCode: Int
    public var headers: [(String, String)]
    public var body: [UInt8]
}

/// Where one AWS service is reached and how it signs.
public struct AWSEndpoint: Sendable, Equatable {
    /// `https://iot.eu-west-1.amazonaws.com`, or an override (a VPC or FIPS endpoint, moto in tests).
    public var url: URL
    public var region: String
    /// The SigV4 signing name: `iot`, `iotdata`, `sts`.
    public var signingName: String

    public init(url: URL, region: String, signingName: String) {
        self.url = url
        self.region = region
        self.signingName = signingName
    }
}

/// Sends signed requests to AWS with the SDKs' manners: credentials from a provider, refreshed
/// before they expire; each operation held to its quota; throttling, server faults and lost
/// connections retried with backoff and jitter; a 4xx about the request itself never retried.
public final class AWSClient: Sendable {
    let httpClient: HTTPClient
    let credentials: AWSCredentialCache
    public let retryPolicy: AWSRetryPolicy
    public let rateLimiter: AWSRateLimiter
    /// How long one attempt may take, connecting included (the HTTP client keeps trying to
    /// connect until then, so this also bounds how long an unreachable endpoint takes to fail).
    public let requestTimeout: TimeAmount
    let logger: Logger
    let signingKeys = AWSSigningKeyCache()

    public init(
        credentialProvider: any AWSCredentialProvider, httpClient: HTTPClient = AWSClient.sharedHTTPClient,
        retryPolicy: AWSRetryPolicy = .init(), rateLimiter: AWSRateLimiter = .init(), requestTimeout: TimeAmount = .seconds(30),
        logger: Logger = Logger(label: "conduit.aws")
    ) {
        self.requestTimeout = requestTimeout
        self.httpClient = httpClient
        self.credentials = AWSCredentialCache(provider: credentialProvider)
        self.retryPolicy = retryPolicy
        self.rateLimiter = rateLimiter
        self.logger = logger
    }

    /// The process's client for AWS calls, made once and never shut down (as `HTTPClient.shared`,
    /// but it follows no redirect: a 3xx is an answer, never a way to send a signed request, or
    /// a tenant's payload, to another host).
    public static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// The credentials in use and where they came from.
    public func resolvedCredentials() async throws -> AWSResolvedCredentials {
        try await self.credentials.current()
    }

    /// Sends one operation and returns its response, or throws the decoded ``AWSError``.
    ///
    /// - Parameters:
    ///   - operation: the API name, for the rate limiter and the logs (`CreateThing`).
    ///   - path: the path, already percent-encoded as it goes on the wire.
    ///   - query: name/value pairs, not yet encoded.
    ///   - idempotent: false for a call that makes something anew each time it lands (a
    ///     certificate): it is then tried again only after an answer that proves it did not land
    ///     (throttling), never after a lost connection or a server fault, which the caller must
    ///     resolve by looking.
    public func send(
        operation: String, endpoint: AWSEndpoint, method: HTTPMethod, path: String, query: [(String, String)] = [],
        headers: [(String, String)] = [], body: [UInt8] = [], idempotent: Bool = true
    ) async throws -> AWSResponse {
        var attempt = 0
        var random = SystemRandomNumberGenerator()
        while true {
            attempt += 1
            try await self.rateLimiter.acquire(operation)
            do {
                let response = try await self.sendOnce(
                    endpoint: endpoint, method: method, path: path, query: query, headers: headers, body: body
                )
                await self.rateLimiter.succeeded(operation)
                return response
            } catch let error as AWSError {
                if error.isThrottling { await self.rateLimiter.throttled(operation) }
                guard idempotent ? error.isRetryable : error.isThrottling, attempt < self.retryPolicy.maximumAttempts else { throw error }
                let delay = self.retryPolicy.delay(afterAttempt: attempt, using: &random)
                self.logger.debug(
                    "AWS call failed; retrying",
                    metadata: ["conduit.aws_operation": "\(operation)", "error": "\(error)", "conduit.attempt": "\(attempt)"]
                )
                try await Task.sleep(for: .seconds(delay))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // The request may never have reached AWS: connection refused, reset, timed out.
                guard idempotent, attempt < self.retryPolicy.maximumAttempts else { throw error }
                let delay = self.retryPolicy.delay(afterAttempt: attempt, using: &random)
                self.logger.debug(
                    "AWS connection failed; retrying",
                    metadata: ["conduit.aws_operation": "\(operation)", "error": "\(error)", "conduit.attempt": "\(attempt)"]
                )
                try await Task.sleep(for: .seconds(delay))
            }
        }
    }

    private func sendOnce(
        endpoint: AWSEndpoint, method: HTTPMethod, path: String, query: [(String, String)], headers: [(String, String)],
        body: [UInt8]
    ) async throws -> AWSResponse {
        let resolved = try await self.credentials.current()
        let signer = AWSSigner(
            credentials: resolved.credentials, region: endpoint.region, service: endpoint.signingName, signingKeys: self.signingKeys
        )
        let rawQuery = query.map { "\(AWSSigner.uriEncode($0.0))=\(AWSSigner.uriEncode($0.1))" }.joined(separator: "&")
        var host = endpoint.url.host ?? ""
        if let port = endpoint.url.port { host += ":\(port)" }
        let basePath = endpoint.url.path == "/" ? "" : endpoint.url.path
        var signable = AWSSigner.Request(
            method: method.rawValue, path: basePath + path, query: rawQuery,
            headers: [("host", host)] + headers + (body.isEmpty ? [] : [("content-length", String(body.count))]), body: body
        )
        signable.headers += signer.signHeaders(signable, date: Date())
        var url = (endpoint.url.scheme ?? "https") + "://" + host + basePath + path
        if !rawQuery.isEmpty { url += "?" + rawQuery }
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in signable.headers where name.lowercased() != "content-length" {
            request.headers.add(name: name, value: value)
        }
        if !body.isEmpty {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await self.httpClient.execute(request, timeout: self.requestTimeout, logger: self.logger)
        let bytes = Array((try await response.body.collect(upTo: 16 << 20)).readableBytesView)
        let headers = response.headers.map { ($0.name, $0.value) }
        guard (200..<300).contains(Int(response.status.code)) else {
            let error = AWSError.decode(statusCode: Int(response.status.code), headers: headers, body: bytes)
            // A host that is not AWS (one the operator allowed: a proxy, a local stack) could be
            // anything; what it answers is not repeated to whoever configured the endpoint.
            throw AWSEndpointRules.isAWSHost(endpoint.url.host ?? "") ? error : error.withheld(from: endpoint.url.host ?? "")
        }
        return AWSResponse(statusCode: Int(response.status.code), headers: headers, body: bytes)
    }
}

/// Keeps resolved credentials and fetches them again a few minutes before they expire.
actor AWSCredentialCache {
    private let provider: any AWSCredentialProvider
    private var cached: AWSResolvedCredentials?
    /// Temporary credentials are refreshed this long before their expiry.
    static let refreshMargin: TimeInterval = 5 * 60

    init(provider: any AWSCredentialProvider) {
        self.provider = provider
    }

    func current(now: Date = Date()) async throws -> AWSResolvedCredentials {
        if let cached, cached.expiration.map({ $0.timeIntervalSince(now) > Self.refreshMargin }) ?? true {
            return cached
        }
        let fresh = try await self.provider.resolve()
        self.cached = fresh
        return fresh
    }
}
