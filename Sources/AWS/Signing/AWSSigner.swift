import Crypto
import Foundation
import Synchronization

/// AWS Signature Version 4, in its two forms: an `Authorization` header, or a presigned URL
/// (the signature in the query string). The steps are named as AWS's documentation names them:
/// ``canonicalRequest(_:form:date:)``, ``stringToSign(canonicalRequest:date:)``, ``signingKey(date:)``.
///
/// Learned from Soto's `SotoSignerV4`; checked byte for byte against the AWS signing test suite.
public struct AWSSigner: Sendable {
    /// A request to sign: the method, the path and query as they will be sent, the headers, the body.
    public struct Request: Sendable {
        public var method: String
        /// The path as sent (before any percent-encoding of its own, e.g. `/things/my thing`).
        public var path: String
        /// The raw query string without `?` (percent-encoded as sent); empty for none.
        public var query: String
        /// In order; a name may repeat.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]

        public init(method: String, path: String, query: String = "", headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.body = body
        }
    }

    /// Header or presigned query.
    public enum Form: Sendable {
        case header
        /// A presigned URL valid for this many seconds.
        case query(expires: Int)
    }

    /// How the body's hash enters the signature.
    public enum Payload: Sendable, Equatable {
        /// Hash the body; with `header: true` also send it as `x-amz-content-sha256` (S3 and others want it).
        case signed(header: Bool)
        /// `UNSIGNED-PAYLOAD`.
        case unsigned
    }

    public var credentials: AWSCredentials
    public var region: String
    /// The signing name: `iot` for the control plane, `iotdata` for the data plane, `sts`...
    public var service: String
    /// Remove `.`/`..` segments and repeated slashes from the path (every service but S3).
    public var normalizePath: Bool
    public var payload: Payload
    /// Add the session token after signing instead of signing it (some services, e.g. IoT
    /// WebSocket presigning, want it so).
    public var omitSessionTokenFromSignature: Bool
    /// Keeps each day's signing key, which otherwise costs four HMACs per request.
    public var signingKeys: AWSSigningKeyCache?

    public init(
        credentials: AWSCredentials, region: String, service: String, normalizePath: Bool = true,
        payload: Payload = .signed(header: false), omitSessionTokenFromSignature: Bool = false, signingKeys: AWSSigningKeyCache? = nil
    ) {
        self.credentials = credentials
        self.region = region
        self.service = service
        self.normalizePath = normalizePath
        self.payload = payload
        self.omitSessionTokenFromSignature = omitSessionTokenFromSignature
        self.signingKeys = signingKeys
    }

    static let algorithm = "AWS4-HMAC-SHA256"

    // MARK: Signing

    /// The headers to add to the request: `X-Amz-Date`, the session token, the content hash
    /// when asked for, and `Authorization`.
    public func signHeaders(_ request: Request, date: Date) -> [(name: String, value: String)] {
        let stamp = AWSDate(date)
        var added = self.headersToSign(request, stamp: stamp)
        var signed = request
        signed.headers += added
        let canonical = self.canonicalRequest(signed, form: .header, date: date)
        let signature = self.signature(canonicalRequest: canonical.text, stamp: stamp)
        if self.omitSessionTokenFromSignature, let token = self.credentials.sessionToken {
            added.insert(("X-Amz-Security-Token", token), at: 0)
        }
        added.append(
            (
                "Authorization",
                "\(Self.algorithm) Credential=\(self.credentials.accessKeyID)/\(self.scope(stamp)), SignedHeaders=\(canonical.signedHeaders), Signature=\(signature)"
            )
        )
        return added
    }

    /// The query string of a presigned URL for the request, signature included.
    public func presignedQuery(_ request: Request, date: Date, expires: Int) -> String {
        let stamp = AWSDate(date)
        let canonical = self.canonicalRequest(request, form: .query(expires: expires), date: date)
        let signature = self.signature(canonicalRequest: canonical.text, stamp: stamp)
        var query = canonical.query
        if self.omitSessionTokenFromSignature, let token = self.credentials.sessionToken {
            query += "&X-Amz-Security-Token=" + Self.uriEncode(token)
        }
        return query + "&X-Amz-Signature=" + signature
    }

    // MARK: The steps

    /// A canonical request, with the signed header list and canonical query it was built from.
    public struct CanonicalRequest: Sendable {
        public var text: String
        public var signedHeaders: String
        public var query: String
    }

    /// Task 1: the canonical request. For the header form, `request.headers` must already hold
    /// the headers that ``signHeaders(_:date:)`` adds (use ``headersToSign(_:date:)``).
    public func canonicalRequest(_ request: Request, form: Form, date: Date) -> CanonicalRequest {
        let stamp = AWSDate(date)
        let headers = Self.canonicalHeaders(request.headers)
        let signedHeaders = headers.map(\.name).joined(separator: ";")
        var query = Self.queryParameters(request.query)
        if case .query(let expires) = form {
            query.append(("X-Amz-Algorithm", Self.algorithm))
            query.append(("X-Amz-Credential", "\(self.credentials.accessKeyID)/\(self.scope(stamp))"))
            query.append(("X-Amz-Date", stamp.timestamp))
            query.append(("X-Amz-Expires", String(expires)))
            if let token = self.credentials.sessionToken, !self.omitSessionTokenFromSignature {
                query.append(("X-Amz-Security-Token", token))
            }
            query.append(("X-Amz-SignedHeaders", signedHeaders))
        }
        let encoded: [(name: String, value: String)] = query.map { (Self.uriEncode($0.0), Self.uriEncode($0.1)) }
        let sorted = encoded.sorted { left, right in left.name == right.name ? left.value < right.value : left.name < right.name }
        let canonicalQuery = sorted.map { "\($0.name)=\($0.value)" }.joined(separator: "&")
        let text = [
            request.method.uppercased(),
            self.canonicalPath(request.path),
            canonicalQuery,
            headers.map { "\($0.name):\($0.value)\n" }.joined(),
            signedHeaders,
            self.payloadHash(request.body),
        ].joined(separator: "\n")
        return CanonicalRequest(text: text, signedHeaders: signedHeaders, query: canonicalQuery)
    }

    /// The headers the header form signs besides the request's own.
    public func headersToSign(_ request: Request, date: Date) -> [(name: String, value: String)] {
        self.headersToSign(request, stamp: AWSDate(date))
    }

    private func headersToSign(_ request: Request, stamp: AWSDate) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        if case .signed(header: true) = self.payload {
            headers.append(("x-amz-content-sha256", self.payloadHash(request.body)))
        }
        headers.append(("X-Amz-Date", stamp.timestamp))
        if let token = self.credentials.sessionToken, !self.omitSessionTokenFromSignature {
            headers.append(("X-Amz-Security-Token", token))
        }
        return headers
    }

    /// Task 2: the string to sign.
    public func stringToSign(canonicalRequest: String, date: Date) -> String {
        self.stringToSign(canonicalRequest: canonicalRequest, stamp: AWSDate(date))
    }

    private func stringToSign(canonicalRequest: String, stamp: AWSDate) -> String {
        [Self.algorithm, stamp.timestamp, self.scope(stamp), Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8)))]
            .joined(separator: "\n")
    }

    /// Task 3: the signing key, derived from the secret for the day, region and service.
    public func signingKey(date: Date) -> SymmetricKey {
        self.signingKey(stamp: AWSDate(date))
    }

    private func signingKey(stamp: AWSDate) -> SymmetricKey {
        guard let cache = self.signingKeys else { return self.deriveSigningKey(stamp: stamp) }
        let scope = AWSSigningKeyCache.Scope(accessKeyID: self.credentials.accessKeyID, day: stamp.day, region: self.region, service: self.service)
        return cache.key(for: scope, secret: self.credentials.secretAccessKey) { self.deriveSigningKey(stamp: stamp) }
    }

    private func deriveSigningKey(stamp: AWSDate) -> SymmetricKey {
        var key = SymmetricKey(data: Data(("AWS4" + self.credentials.secretAccessKey).utf8))
        for part in [stamp.day, self.region, self.service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        return key
    }

    /// Task 4: the signature of a canonical request.
    public func signature(canonicalRequest: String, date: Date) -> String {
        self.signature(canonicalRequest: canonicalRequest, stamp: AWSDate(date))
    }

    private func signature(canonicalRequest: String, stamp: AWSDate) -> String {
        let stringToSign = self.stringToSign(canonicalRequest: canonicalRequest, stamp: stamp)
        return Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: self.signingKey(stamp: stamp)))
    }

    private func scope(_ stamp: AWSDate) -> String {
        "\(stamp.day)/\(self.region)/\(self.service)/aws4_request"
    }

    private func payloadHash(_ body: [UInt8]) -> String {
        switch self.payload {
        case .unsigned: "UNSIGNED-PAYLOAD"
        case .signed: Self.hex(SHA256.hash(data: body))
        }
    }

    // MARK: Canonical forms

    /// Lower-case names, sorted; values trimmed with inner runs of white space collapsed to one
    /// space; the values of a repeated name joined by commas in their order.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var values: [String: [String]] = [:]
        for (name, value) in headers {
            let collapsed = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
                .joined(separator: " ")
            values[name.lowercased(), default: []].append(collapsed)
        }
        return values.keys.sorted().map { ($0, values[$0]!.joined(separator: ",")) }
    }

    /// Decoded name and value pairs of a raw query string.
    static func queryParameters(_ query: String) -> [(String, String)] {
        guard !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(parts[0])
            let value = parts.count > 1 ? String(parts[1]) : ""
            return (Self.percentDecoded(name), Self.percentDecoded(value))
        }
    }

    /// Foundation's percent-decoding is slow even for text with nothing to decode, and nearly
    /// every query string signed (`qos=1&retain=false`) has nothing.
    private static func percentDecoded(_ text: String) -> String {
        guard text.utf8.contains(UInt8(ascii: "%")) else { return text }
        return text.removingPercentEncoding ?? text
    }

    /// The path with dot segments and repeated slashes removed (when normalizing), each segment
    /// URI-encoded. A path that was already percent-encoded is encoded again, as AWS wants for
    /// every service but S3.
    func canonicalPath(_ path: String) -> String {
        let path = path.isEmpty ? "/" : path
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if self.normalizePath {
            let trailingSlash = path.hasSuffix("/") || path.hasSuffix("/.") || path.hasSuffix("/..")
            var output: [String] = []
            for segment in segments {
                switch segment {
                case "", ".": continue
                case "..": _ = output.popLast()
                default: output.append(segment)
                }
            }
            segments = [""] + output
            if trailingSlash || output.isEmpty { segments.append("") }
        }
        return segments.map { Self.uriEncode($0) }.joined(separator: "/")
    }

    /// SigV4's URI encoding: every byte but `A-Z a-z 0-9 - _ . ~` as `%XX`, upper-case hex.
    public static func uriEncode(_ string: String) -> String {
        var result = ""
        result.reserveCapacity(string.utf8.count)
        let digits = Array("0123456789ABCDEF".utf8)
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                result.append("%")
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte >> 4)]))
                result.unicodeScalars.append(Unicode.Scalar(digits[Int(byte & 0x0F)]))
            }
        }
        return result
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A signing time as SigV4 writes it: `20150830T123600Z` and `20150830`, in UTC.
struct AWSDate {
    let timestamp: String
    let day: String

    init(_ date: Date) {
        // The proleptic Gregorian calendar from days since 1970 (Howard Hinnant's
        // `civil_from_days`): Calendar's dateComponents cost more than the rest of the signature.
        let seconds = Int(date.timeIntervalSince1970.rounded(.down))
        let (days, secondOfDay) = (seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400, ((seconds % 86_400) + 86_400) % 86_400)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let shiftedMonth = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * shiftedMonth + 2) / 5 + 1
        let month = shiftedMonth < 10 ? shiftedMonth + 3 : shiftedMonth - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        func append(_ value: Int, width: Int) {
            var divisor = 1
            for _ in 1..<width { divisor *= 10 }
            var value = max(0, value)
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                value %= divisor
                divisor /= 10
            }
        }
        append(year, width: 4)
        append(month, width: 2)
        append(day, width: 2)
        self.day = String(decoding: bytes, as: UTF8.self)
        bytes.append(UInt8(ascii: "T"))
        append(secondOfDay / 3600, width: 2)
        append(secondOfDay / 60 % 60, width: 2)
        append(secondOfDay % 60, width: 2)
        bytes.append(UInt8(ascii: "Z"))
        self.timestamp = String(decoding: bytes, as: UTF8.self)
    }
}

/// Signing keys by key, day, region and service. A key is derived from the secret with four
/// HMACs and serves a whole day, so a client that signs thousands of requests a second keeps it.
public final class AWSSigningKeyCache: Sendable {
    struct Scope: Hashable {
        var accessKeyID: String
        var day: String
        var region: String
        var service: String
    }

    private struct Entry {
        /// The secret it came from: a rotated secret under the same key id derives anew.
        var secret: String
        var key: SymmetricKey
    }

    private let entries = Mutex<[Scope: Entry]>([:])
    /// Enough for every region and service a client signs for in a day, and yesterday's.
    static let capacity = 64

    public init() {}

    func key(for scope: Scope, secret: String, derive: () -> SymmetricKey) -> SymmetricKey {
        if let entry = self.entries.withLock({ $0[scope] }), entry.secret == secret { return entry.key }
        let key = derive()
        self.entries.withLock { entries in
            if entries.count >= Self.capacity { entries.removeAll() }
            entries[scope] = Entry(secret: secret, key: key)
        }
        return key
    }
}
