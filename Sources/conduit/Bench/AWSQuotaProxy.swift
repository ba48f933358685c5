import AWS
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A local endpoint in front of an AWS stand-in (moto) that holds each AWS IoT operation to its
/// published rate, as AWS does: a token bucket per operation (one second of burst), and a 429
/// `ThrottlingException` for a call over it. It counts calls and throttling answers.
final class AWSQuotaProxy: Sendable {
    struct Tally: Sendable {
        var calls: [String: Int] = [:]
        var throttled: [String: Int] = [:]
    }

    let upstream: URL
    let quotas: [String: Double]
    private let buckets = Mutex<[String: TokenBucket]>([:])
    private let tally = Mutex(Tally())
    private let start = ContinuousClock.now

    init(upstream: URL, quotas: [String: Double]) {
        self.upstream = upstream
        self.quotas = quotas
    }

    var counts: Tally { self.tally.withLock { $0 } }

    private var now: Double {
        let elapsed = ContinuousClock.now - self.start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// True when the operation may go now (and takes its token).
    func admit(_ operation: String) -> Bool {
        guard let quota = self.quotas[operation] else { return true }
        let now = self.now
        let admitted = self.buckets.withLock { buckets in
            var bucket = buckets[operation] ?? TokenBucket(rate: quota, now: now)
            // A bucket that would make the caller wait has no token now: AWS answers at once.
            let wait = bucket.peekWait(now: now)
            if wait > 0 { return false }
            _ = bucket.reserve(now: now)
            buckets[operation] = bucket
            return true
        }
        self.tally.withLock { tally in
            tally.calls[operation, default: 0] += 1
            if !admitted { tally.throttled[operation, default: 0] += 1 }
        }
        return admitted
    }

    /// Serves on a free loopback port until the task is cancelled; calls `onRunning` with the port.
    func run(onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        let router = Router()
        let proxy = self
        router.on("**", method: .get) { request, context in try await proxy.forward(request, context: context) }
        for method in [HTTPRequest.Method.post, .put, .patch, .delete] {
            router.on("**", method: method) { request, context in try await proxy.forward(request, context: context) }
        }
        router.on("/", method: .post) { request, context in try await proxy.forward(request, context: context) }
        try await Self.serve(router, label: "conduit.bench.proxy", onRunning: onRunning)
    }

    /// Serves a bench's local endpoint on a free loopback port until cancelled.
    static func serve(_ router: Router<BasicRequestContext>, label: String, onRunning: @escaping @Sendable (Int) async -> Void) async throws {
        var logger = Logger(label: label)
        // It stops by cancellation when the bench is done, which the server would report as an error.
        logger.logLevel = .critical
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) }, logger: logger
        )
        try await app.runService()
    }

    private func forward(_ request: Request, context: some RequestContext) async throws -> Response {
        let path = request.uri.path
        if let operation = Self.operation(method: request.method, path: path), !self.admit(operation) {
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[HTTPField.Name("x-amzn-ErrorType")!] = "ThrottlingException"
            return Response(
                status: .tooManyRequests, headers: headers,
                body: .init(byteBuffer: ByteBuffer(string: #"{"message":"Rate exceeded"}"#))
            )
        }
        var outgoing = HTTPClientRequest(url: self.upstream.absoluteString.trimmingSuffix("/") + request.uri.description)
        outgoing.method = .init(rawValue: request.method.rawValue)
        for field in request.headers where field.name != .contentLength {
            outgoing.headers.add(name: field.name.rawName, value: field.value)
        }
        var request = request
        let body = try await request.collectBody(upTo: 16 << 20)
        if body.readableBytes > 0 { outgoing.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(outgoing, timeout: .seconds(30))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        var headers = HTTPFields()
        for header in response.headers where !["content-length", "transfer-encoding", "connection"].contains(header.name.lowercased()) {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        return Response(status: .init(code: Int(response.status.code)), headers: headers, body: .init(byteBuffer: bytes))
    }

    /// The AWS IoT operation a REST call is, from its method and path.
    static func operation(method: HTTPRequest.Method, path: String) -> String? {
        let parts = path.split(separator: "/").map(String.init)
        let m = method.rawValue
        switch (m, parts.first, parts.count) {
        case ("POST", "things", 2): return "CreateThing"
        case ("GET", "things", 2): return "DescribeThing"
        case ("PATCH", "things", 2): return "UpdateThing"
        case ("DELETE", "things", 2): return "DeleteThing"
        case ("GET", "things", 1): return "ListThings"
        case ("PUT", "things", 3) where parts[2] == "principals": return "AttachThingPrincipal"
        case ("DELETE", "things", 3) where parts[2] == "principals": return "DetachThingPrincipal"
        case ("GET", "things", 3) where parts[2] == "principals": return "ListThingPrincipals"
        case ("GET", "things", 3) where parts[2] == "thing-groups": return "ListThingGroupsForThing"
        case ("PUT", "thing-groups", 2) where parts[1] == "addThingToThingGroup": return "AddThingToThingGroup"
        case ("PUT", "thing-groups", 2) where parts[1] == "removeThingFromThingGroup": return "RemoveThingFromThingGroup"
        case ("POST", "thing-groups", 2): return "CreateThingGroup"
        case ("GET", "thing-groups", 2): return "DescribeThingGroup"
        case ("DELETE", "thing-groups", 2): return "DeleteThingGroup"
        case ("GET", "thing-groups", 3): return "ListThingsInThingGroup"
        case ("POST", "certificates", 1): return "CreateCertificateFromCsr"
        case ("GET", "certificates", 1): return "ListCertificates"
        case ("GET", "certificates", 2): return "DescribeCertificate"
        case ("PUT", "certificates", 2): return "UpdateCertificate"
        case ("DELETE", "certificates", 2): return "DeleteCertificate"
        case ("POST", "keys-and-certificate", 1): return "CreateKeysAndCertificate"
        case ("POST", "policies", 2): return "CreatePolicy"
        case ("GET", "policies", 2): return "GetPolicy"
        case ("DELETE", "policies", 2): return "DeletePolicy"
        case ("GET", "policies", 1): return "ListPolicies"
        case ("POST", "policies", 3): return "CreatePolicyVersion"
        case ("GET", "policies", 3): return "ListPolicyVersions"
        case ("DELETE", "policies", 4): return "DeletePolicyVersion"
        case ("PUT", "target-policies", 2): return "AttachPolicy"
        case ("POST", "target-policies", 2): return "DetachPolicy"
        case ("POST", "attached-policies", 2): return "ListAttachedPolicies"
        case ("GET", "endpoint", 1): return "DescribeEndpoint"
        default: return nil
        }
    }
}

extension String {
    func trimmingSuffix(_ suffix: String) -> String {
        self.hasSuffix(suffix) ? String(self.dropLast(suffix.count)) : self
    }
}
