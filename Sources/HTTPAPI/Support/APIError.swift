import Foundation
import HTTPTypes
import Hub
import Hummingbird
import NIOCore

/// An error as the API renders it: `{"error": {"code": "...", "message": "..."}}` with its status.
public struct APIError: HTTPResponseError, Sendable {
    public let status: HTTPResponse.Status
    public let code: String
    public let message: String
    /// Numbers beside the code and message (`currentVersion`).
    public let details: [String: Int]
    /// The methods a 405's route takes, for its `Allow` header.
    public let allow: [String]

    public init(status: HTTPResponse.Status, code: String, message: String, details: [String: Int] = [:], allow: [String] = []) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.allow = allow
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let data = try APIJSON.encoder().encode(ErrorBody(error: .init(code: self.code, message: self.message, details: self.details)))
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        if self.status == .unauthorized {
            headers[.wwwAuthenticate] = "Bearer realm=\"conduit\""
        }
        if !self.allow.isEmpty {
            headers[.allow] = self.allow.joined(separator: ", ")
        }
        return Response(status: self.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static let bodyTooLarge = APIError(
        status: .contentTooLarge, code: "body_too_large", message: "body: must be at most \(APIJSON.maxBodySize) bytes"
    )

    /// The API's rendering of any error a route may throw; unknown errors become a 500 that says nothing more.
    static func from(_ error: any Error) -> APIError? {
        switch error {
        case let error as APIError:
            return error
        case let error as HubError:
            return APIError(status: error.httpStatus, code: error.code, message: error.message, details: error.details)
        case is NIOTooManyBytesError:
            return .bodyTooLarge
        case let error as HTTPError:
            switch error.status {
            case .contentTooLarge:
                return .bodyTooLarge
            case .notFound:
                return APIError(status: .notFound, code: "not_found", message: error.body ?? "no such route")
            case .methodNotAllowed:
                return APIError(status: .methodNotAllowed, code: "method_not_allowed", message: "method not allowed on this route")
            default:
                return APIError(
                    status: error.status, code: error.status.reasonPhrase.lowercased().replacingOccurrences(of: " ", with: "_"),
                    message: error.body ?? error.status.reasonPhrase
                )
            }
        default:
            return nil
        }
    }
}

/// `{"error": {"code", "message"}}`.
private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        let code: String
        let message: String
        let details: [String: Int]

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(self.code, forKey: Key(stringValue: "code"))
            try container.encode(self.message, forKey: Key(stringValue: "message"))
            for (name, value) in self.details { try container.encode(value, forKey: Key(stringValue: name)) }
        }
    }
    let error: Detail
}

extension HubError {
    /// The HTTP status of each kind of domain error, for the API and the console alike.
    public var httpStatus: HTTPResponse.Status {
        switch self.kind {
        case .invalid: .badRequest
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .upstream: .badGateway
        case .tooManyRequests: .tooManyRequests
        }
    }
}
