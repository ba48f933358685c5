import Foundation
import Hub
import Hummingbird

/// The request context of every route: Hummingbird's core storage and the authenticated caller.
public struct ConduitRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthenticationMiddleware`` on `/v1` routes.
    public var principal: Principal?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.principal = nil
    }

    /// Request bodies larger than this are refused with 413.
    public var maxUploadSize: Int { APIJSON.maxBodySize }

    public var responseEncoder: JSONEncoder { APIJSON.encoder() }

    /// The authenticated caller; routes behind ``AuthenticationMiddleware`` always have one.
    func requirePrincipal() throws -> Principal {
        guard let principal else { throw HubError.unauthenticated("missing bearer token") }
        return principal
    }
}
