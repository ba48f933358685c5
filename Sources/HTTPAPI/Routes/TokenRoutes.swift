import Hub
import Hummingbird

/// `/v1/tokens`: the tenant's API tokens (admin only).
struct TokenRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.post("tokens", use: self.create)
        group.get("tokens", use: self.list)
        group.delete("tokens/{id}", use: self.revoke)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> EditedResponse<TokenRepresentation> {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "creating tokens")
        let body = try await JSONBody(request: request, context: context, allowed: ["role", "name"])
        let roleName = try body.requiredString("role")
        guard let role = Role(rawValue: roleName) else {
            throw HubError.invalidField("role", "must be one of \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let issued = try await self.hub.access.createToken(by: principal, role: role, name: try body.string("name"))
        var response = EditedResponse(status: .created, response: TokenRepresentation(issued.record, secret: issued.token))
        response.headers[.cacheControl] = "no-store"
        return response
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<TokenRepresentation> {
        let tokens = try await self.hub.access.tokens(by: try context.requirePrincipal())
        return ListRepresentation(items: tokens.map { TokenRepresentation($0) }, nextCursor: nil)
    }

    @Sendable func revoke(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        try await self.hub.access.revokeToken(by: try context.requirePrincipal(), id: try context.parameters.require("id"))
        return Response(status: .noContent)
    }
}
