import Foundation

/// An error answer from an AWS service, decoded from its headers and body.
public struct AWSError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The error code without its namespace: `ResourceNotFoundException`, `ThrottlingException`...
    public let code: String
    public let message: String
    public let statusCode: Int
    public let requestID: String?
    /// The resource the error is about, where the service says (AWS IoT's
    /// `ResourceAlreadyExistsException` names the one that exists).
    public let resourceID: String?

    public init(code: String, message: String, statusCode: Int, requestID: String? = nil, resourceID: String? = nil) {
        self.code = code
        self.message = message
        self.statusCode = statusCode
        self.requestID = requestID
        self.resourceID = resourceID
    }

    public var description: String { "\(self.code) (HTTP \(self.statusCode)): \(self.message)" }

    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
        "RequestThrottled", "RequestThrottledException", "ProvisionedThroughputExceededException", "SlowDown",
        "BandwidthLimitExceeded", "LimitExceededException",
    ]

    /// AWS asked us to slow down.
    public var isThrottling: Bool {
        self.statusCode == 429 || Self.throttlingCodes.contains(self.code)
    }

    /// The named resource does not exist (a thing, a certificate, a policy, a group).
    public var isNotFound: Bool { self.code == "ResourceNotFoundException" || self.statusCode == 404 }

    /// A resource of that name exists already.
    public var isAlreadyExists: Bool { self.code == "ResourceAlreadyExistsException" }

    /// Worth trying again: throttling, server faults, time-outs. Never a 4xx about the request itself.
    public var isRetryable: Bool {
        self.isThrottling || self.statusCode >= 500
            || ["RequestTimeout", "RequestTimeoutException", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException"]
                .contains(self.code)
    }

    /// Decodes an error answer: the code from `x-amzn-ErrorType`, a JSON `__type` or `code`, or
    /// an XML `<Code>` (query protocol services such as STS); the message likewise.
    public static func decode(statusCode: Int, headers: [(String, String)], body: [UInt8]) -> AWSError {
        func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name }?.1
        }
        var code = header("x-amzn-errortype").map(Self.stripNamespace)
        var message = header("x-amzn-errormessage")
        let requestID = header("x-amzn-requestid") ?? header("x-amz-request-id")
        var resourceID: String?
        if let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] {
            if code == nil {
                code = ((object["__type"] ?? object["code"] ?? object["Code"]) as? String).map(Self.stripNamespace)
            }
            message = message ?? (object["message"] ?? object["Message"] ?? object["errorMessage"]) as? String
            resourceID = object["resourceId"] as? String
        } else if let text = String(bytes: body, encoding: .utf8), text.contains("<Code>") {
            code = code ?? Self.xmlElement("Code", in: text)
            message = message ?? Self.xmlElement("Message", in: text)
        }
        return AWSError(
            code: code ?? "HTTP\(statusCode)", message: message ?? HTTPStatusText.text(statusCode), statusCode: statusCode,
            requestID: requestID, resourceID: resourceID
        )
    }

    /// The error as told of a host that is not AWS: its status and code (kept if it is an
    /// identifier, since the code decides retries and recovery), never its message.
    func withheld(from host: String) -> AWSError {
        func isName(_ value: String) -> Bool {
            (1...128).contains(value.utf8.count) && value.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                    || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || "_.:-".utf8.contains(byte)
            }
        }
        return AWSError(
            code: isName(self.code) ? self.code : "HTTP\(self.statusCode)",
            message: "\(HTTPStatusText.text(self.statusCode)) (the answer of \(host), which is not an AWS host, is not shown)",
            statusCode: self.statusCode, requestID: nil, resourceID: self.resourceID.flatMap { isName($0) ? $0 : nil }
        )
    }

    /// `aws.protocoltests#InvalidRequest` or `ThrottlingException:http://internal...` -> the name alone.
    static func stripNamespace(_ value: String) -> String {
        var name = Substring(value)
        if let colon = name.firstIndex(of: ":") { name = name[..<colon] }
        if let hash = name.lastIndex(of: "#") { name = name[name.index(after: hash)...] }
        return String(name)
    }

    static func xmlElement(_ name: String, in text: String) -> String? {
        guard let open = text.range(of: "<\(name)>"), let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex) else {
            return nil
        }
        return String(text[open.upperBound..<close.lowerBound])
    }
}

enum HTTPStatusText {
    static func text(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 409: "Conflict"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: "HTTP \(status)"
        }
    }
}
