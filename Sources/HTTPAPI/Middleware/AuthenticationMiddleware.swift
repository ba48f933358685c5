import Hub
import Hummingbird

/// Turns `Authorization: Bearer <token>` into the context's principal; anything else is a 401.
struct AuthenticationMiddleware: RouterMiddleware {
    let hub: Hub

    func handle(
        _ request: Request, context: ConduitRequestContext,
        next: (Request, ConduitRequestContext) async throws -> Response
    ) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            throw HubError.unauthenticated("missing Authorization: Bearer <token> header")
        }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else {
            throw HubError.unauthenticated("Authorization header must be 'Bearer <token>'")
        }
        var context = context
        context.principal = try await self.hub.access.authenticate(bearer: parts[1].trimmingCharacters(in: .whitespaces))
        return try await next(request, context)
    }
}
