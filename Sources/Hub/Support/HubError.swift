/// An error the domain reports to its callers; the HTTP layer turns each kind into a status code.
public struct HubError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of failure, which decides the status code.
    public enum Kind: Sendable, Equatable {
        /// 400: a field breaks a rule.
        case invalid
        /// 401: no or an unknown credential.
        case unauthenticated
        /// 403: the credential's role may not do this.
        case forbidden
        /// 404: nothing of that id in the caller's tenant.
        case notFound
        /// 409: the request conflicts with the current state.
        case conflict
        /// 502: AWS failed or is away; the request may be tried again.
        case upstream
        /// 429: too many attempts; try again later.
        case tooManyRequests
    }

    public let kind: Kind
    /// A stable machine-readable code, e.g. `invalid_field`, `invalid_transition`.
    public let code: String
    /// What went wrong, naming the field and the rule where there is one.
    public let message: String
    /// Numbers that go with the error (a shadow's current version), for callers to act on.
    public var details: [String: Int] = [:]
    /// The field that broke a rule, for forms that show the message beside it (`credentials.roleArn`).
    public var field: String?

    public var description: String { "\(self.code): \(self.message)" }

    /// A field broke a rule: the message reads "`field`: `rule`".
    public static func invalidField(_ field: String, _ rule: String) -> HubError {
        HubError(kind: .invalid, code: "invalid_field", message: "\(field): \(rule)", field: field)
    }

    public static func notFound(_ what: String, _ id: String) -> HubError {
        HubError(kind: .notFound, code: "not_found", message: "\(what) '\(id)' not found")
    }

    public static func conflict(_ code: String, _ message: String) -> HubError {
        HubError(kind: .conflict, code: code, message: message)
    }

    public static func unauthenticated(_ message: String) -> HubError {
        HubError(kind: .unauthenticated, code: "unauthenticated", message: message)
    }

    public static func forbidden(_ message: String) -> HubError {
        HubError(kind: .forbidden, code: "forbidden", message: message)
    }

    public static func upstream(_ message: String) -> HubError {
        HubError(kind: .upstream, code: "aws_error", message: message)
    }

    public static func tooManyRequests(_ message: String) -> HubError {
        HubError(kind: .tooManyRequests, code: "too_many_requests", message: message)
    }
}
