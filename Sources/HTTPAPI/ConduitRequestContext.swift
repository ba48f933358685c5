import Foundation
import Hub
import Hummingbird

/// The request context of every route: Hummingbird's core storage and the authenticated caller.
public struct ConduitRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by ``AuthenticationMiddleware`` on `/v1` routes, and by the console's session middleware.
    public var principal: Principal?
    /// The console's signed-in user, on console pages.
    public var signedIn: ConsoleAccounts.SignedIn?
    /// The client's IP address (the TCP peer), for per-address limits.
    public let remoteAddress: String

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.principal = nil
        self.signedIn = nil
        self.remoteAddress = source.channel.remoteAddress?.ipAddress ?? "unknown"
    }

    /// Request bodies larger than this are refused with 413.
    public var maxUploadSize: Int { APIJSON.maxBodySize }

    public var responseEncoder: JSONEncoder { APIJSON.encoder() }

    /// The authenticated caller; routes behind ``AuthenticationMiddleware`` always have one.
    public func requirePrincipal() throws -> Principal {
        guard let principal else { throw HubError.unauthenticated("missing bearer token") }
        return principal
    }
}
