import AWS
import ConduitTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing

/// A local endpoint that fails a set number of times, then answers: the retry behaviour of the
/// sender, against a real socket.
final class FlakyEndpoint: Sendable {
    let hits = Mutex<[String: Int]>([:])
    let authorizations = Mutex<[String]>([])

    func hit(_ route: String) -> Int {
        self.hits.withLock { hits in
            hits[route, default: 0] += 1
            return hits[route]!
        }
    }

    func count(_ route: String) -> Int { self.hits.withLock { $0[route] ?? 0 } }

    var router: Router<BasicRequestContext> {
        let router = Router()
        router.get("unavailable") { request, _ -> Response in
            self.authorizations.withLock { $0.append(request.headers[.authorization] ?? "") }
            return self.hit("unavailable") <= 3
                ? Response(status: .serviceUnavailable)
                : Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: #"{"endpointAddress":"x"}"#)))
        }
        router.post("throttled") { _, _ -> Response in
            guard self.hit("throttled") > 2 else {
                return Response(
                    status: .tooManyRequests, headers: [.contentType: "application/json"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#))
                )
            }
            return Response(status: .ok)
        }
        router.post("invalid") { _, _ -> Response in
            _ = self.hit("invalid")
            return Response(
                status: .badRequest, headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: #"{"message":"thingName: must match [a-zA-Z0-9:_-]+","__type":"InvalidRequestException"}"#))
            )
        }
        router.get("forever") { _, _ -> Response in
            _ = self.hit("forever")
            return Response(status: .internalServerError)
        }
        return router
    }
}

@Suite("AWS sender: retries, throttling, errors")
struct SenderTests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret")

    static func withEndpoint(_ body: @Sendable (FlakyEndpoint, AWSClient, AWSEndpoint) async throws -> Void) async throws {
        let flaky = FlakyEndpoint()
        let logger = Logger.quiet
        let app = Application(router: flaky.router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let aws = AWSClient(
                credentialProvider: AWSStaticCredentialProvider(Self.credentials),
                retryPolicy: AWSRetryPolicy(maximumAttempts: 6, baseDelay: 0.001, maximumDelay: 0.01), logger: logger
            )
            let endpoint = AWSEndpoint(url: URL(string: "http://127.0.0.1:\(port)")!, region: "us-east-1", signingName: "iot")
            try await body(flaky, aws, endpoint)
        }
    }

    @Test("a 503 three times, then success: the call succeeds, signed each time")
    func retriesServerErrors() async throws {
        try await Self.withEndpoint { flaky, aws, endpoint in
            let response = try await aws.send(operation: "DescribeEndpoint", endpoint: endpoint, method: .GET, path: "/unavailable")
            #expect(response.statusCode == 200)
            #expect(flaky.count("unavailable") == 4)
            let authorizations = flaky.authorizations.withLock { $0 }
            #expect(authorizations.count == 4)
            #expect(authorizations.allSatisfy { $0.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDTEST/") && $0.contains("/us-east-1/iot/aws4_request") })
        }
    }

    @Test("throttling is retried and slows the operation down")
    func retriesThrottling() async throws {
        try await Self.withEndpoint { flaky, aws, endpoint in
            let before = await aws.rateLimiter.rate(of: "CreateThing")
            _ = try await aws.send(operation: "CreateThing", endpoint: endpoint, method: .POST, path: "/throttled", body: Array("{}".utf8))
            #expect(flaky.count("throttled") == 3)
            #expect(await aws.rateLimiter.rate(of: "CreateThing") < before)
        }
    }

    @Test("a 400 is not retried, and its AWS error is decoded; from a host that is not AWS, without its words")
    func noRetryOnValidation() async throws {
        try await Self.withEndpoint { flaky, aws, endpoint in
            let withheld = "Bad Request (the answer of 127.0.0.1, which is not an AWS host, is not shown)"
            await #expect(throws: AWSError(code: "InvalidRequestException", message: withheld, statusCode: 400)) {
                _ = try await aws.send(operation: "CreateThing", endpoint: endpoint, method: .POST, path: "/invalid")
            }
            #expect(flaky.count("invalid") == 1)
        }
    }

    @Test("a fault that never ends gives up after the configured attempts")
    func givesUp() async throws {
        try await Self.withEndpoint { flaky, aws, endpoint in
            await #expect(throws: AWSError.self) {
                _ = try await aws.send(operation: "DescribeThing", endpoint: endpoint, method: .GET, path: "/forever")
            }
            #expect(flaky.count("forever") == 6)
        }
    }

    @Test("error answers decode from the header, JSON and XML forms")
    func errorDecoding() {
        let header = AWSError.decode(
            statusCode: 429, headers: [("x-amzn-ErrorType", "ThrottlingException:http://internal.amazon.com/coral/com.amazon.coral.service/")],
            body: Array(#"{"message":"Rate exceeded"}"#.utf8)
        )
        #expect(header == AWSError(code: "ThrottlingException", message: "Rate exceeded", statusCode: 429))
        #expect(header.isThrottling && header.isRetryable)
        let json = AWSError.decode(
            statusCode: 404, headers: [("x-amzn-RequestId", "r-1")],
            body: Array(#"{"__type":"com.amazonaws.iot#ResourceNotFoundException","message":"Thing t not found"}"#.utf8)
        )
        #expect(json == AWSError(code: "ResourceNotFoundException", message: "Thing t not found", statusCode: 404, requestID: "r-1"))
        #expect(!json.isRetryable)
        let xml = AWSError.decode(
            statusCode: 403, headers: [],
            body: Array("<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed</Message></Error></ErrorResponse>".utf8)
        )
        #expect(xml == AWSError(code: "AccessDenied", message: "not allowed", statusCode: 403))
        #expect(AWSError.decode(statusCode: 503, headers: [], body: []).isRetryable)
        #expect(!AWSError.decode(statusCode: 409, headers: [], body: Array(#"{"__type":"ResourceAlreadyExistsException"}"#.utf8)).isRetryable)
    }
}

@Suite("Rate limiting")
struct RateLimitTests {
    @Test("a burst of 45 at 15 a second: 15 at once, then one every 1/15 s")
    func holdsRateOverBurst() {
        var bucket = TokenBucket(rate: 15, now: 0)
        let waits = (0..<45).map { _ in bucket.reserve(now: 0) }
        #expect(waits.prefix(15).allSatisfy { $0 == 0 })
        for (index, wait) in waits.enumerated().dropFirst(15) {
            #expect(abs(wait - Double(index - 14) / 15) < 1e-9, "request \(index)")
        }
        // Over any stretch the rate holds: 45 requests take 2 s beyond the burst.
        #expect(abs(waits.last! - 2.0) < 1e-9)
    }

    @Test("tokens come back with time, up to the burst")
    func refills() {
        var bucket = TokenBucket(rate: 10, burst: 5, now: 0)
        for _ in 0..<5 { #expect(bucket.reserve(now: 0) == 0) }
        #expect(bucket.reserve(now: 0) > 0)
        // 10 s later the bucket is full again, but no fuller than its burst.
        for _ in 0..<5 { #expect(bucket.reserve(now: 10) == 0) }
        #expect(bucket.reserve(now: 10) > 0)
    }

    @Test("throttling slows an operation to three quarters; success wins it back to the quota, no further")
    func adapts() async {
        let limiter = AWSRateLimiter(quotas: ["CreateThing": 15])
        await limiter.throttled("CreateThing")
        #expect(await limiter.rate(of: "CreateThing") == 11.25)
        for _ in 0..<20 { await limiter.succeeded("CreateThing") }
        #expect(await limiter.rate(of: "CreateThing") == 15)
        #expect(await limiter.rate(of: "Unknown") == 10)
    }
}
