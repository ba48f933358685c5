import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/settings/users` and `/settings/tokens` (admins).
struct SettingsPages {
    let hub: Hub
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("settings/users", use: self.users)
        group.post("settings/users", use: self.createUser)
        group.post("settings/users/{id}/delete", use: self.deleteUser)
        group.post("settings/users/{id}/role", use: self.setRole)
        group.get("settings/tokens", use: self.tokens)
        group.post("settings/tokens", use: self.createToken)
        group.post("settings/tokens/{id}/revoke", use: self.revokeToken)
    }

    struct RoleOption: Sendable {
        var value: String
        var selected: Bool
    }

    static func roles(selected: Role) -> [RoleOption] {
        Role.allCases.reversed().map { RoleOption(value: $0.rawValue, selected: $0 == selected) }
    }

    // MARK: Users

    struct UserRow: Sendable {
        var id: String
        var email: String
        var role: String
        var roles: [RoleOption]
        var created: String
        var lastSignIn: String
        var isYou: Bool
    }

    struct UsersPage: Sendable {
        var chrome: Chrome
        var rows: [UserRow]
        var email: String
        var roles: [RoleOption]
        var emailError: String?
        var passwordError: String?
    }

    @Sendable func users(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var response = try await self.renderUsers(context, flash: takeFlash(request), email: "", role: .operator, error: nil, status: .ok)
        return response.clearingFlash(request)
    }

    func renderUsers(_ context: ConduitRequestContext, flash: Flash?, email: String, role: Role, error: HubError?, status: HTTPResponse.Status) async throws -> Response {
        let principal = try context.requirePrincipal()
        let users = try await self.hub.consoleAccounts.users(by: principal)
        let field = error?.field
        let view = UsersPage(
            chrome: Chrome(title: "Users", section: .users, signedIn: context.signedIn, flash: flash),
            rows: users.map {
                UserRow(
                    id: $0.id, email: $0.email, role: $0.role.rawValue, roles: Self.roles(selected: $0.role), created: Formatting.time($0.createdAt),
                    lastSignIn: Formatting.time($0.lastSignInAt), isYou: $0.id == context.signedIn?.user.id
                )
            },
            email: email, roles: Self.roles(selected: role),
            emailError: field == "email" || error?.code == "user_exists" ? error?.message : nil, passwordError: field == "password" ? error?.message : nil
        )
        return try self.renderer.page("users", view, status: status)
    }

    @Sendable func createUser(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "creating users")
        let form = try await ConsoleForm(request: &request, context: context)
        let email = form.string("email") ?? ""
        let role = form.string("role").flatMap(Role.init(rawValue:)) ?? .reader
        do {
            let user = try await self.hub.consoleAccounts.createUser(email: email, password: form.raw("password") ?? "", role: role, by: principal)
            return redirect(to: "/settings/users", flash: .ok("\(user.email) can now sign in as \(user.role.rawValue)."), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            return try await self.renderUsers(context, flash: .error(error.message), email: email, role: role, error: error, status: .badRequest)
        }
    }

    @Sendable func deleteUser(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: "/settings/users") {
            try await self.hub.consoleAccounts.deleteUser(id: id, by: principal)
            return "User removed; their sessions have ended."
        }
    }

    @Sendable func setRole(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let form = try await ConsoleForm(request: &request, context: context)
        guard let role = form.string("role").flatMap(Role.init(rawValue:)) else {
            return redirect(to: "/settings/users", flash: .error("role: must be admin, operator or reader"), request: request)
        }
        return try await act(request, back: "/settings/users") {
            let user = try await self.hub.consoleAccounts.setRole(of: id, to: role, by: principal)
            return "\(user.email) is now \(user.role.rawValue)."
        }
    }

    // MARK: API tokens

    struct TokenRow: Sendable {
        var id: String
        var name: String
        var role: String
        var hint: String
        var created: String
        var lastUsed: String
    }

    struct TokensPage: Sendable {
        var chrome: Chrome
        var rows: [TokenRow]
        var roles: [RoleOption]
        var name: String
        var nameError: String?
    }

    struct NewTokenPage: Sendable {
        var chrome: Chrome
        var token: String
        var name: String
        var role: String
    }

    @Sendable func tokens(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var response = try await self.renderTokens(context, flash: takeFlash(request), name: "", error: nil, status: .ok)
        return response.clearingFlash(request)
    }

    func renderTokens(_ context: ConduitRequestContext, flash: Flash?, name: String, error: String?, status: HTTPResponse.Status) async throws -> Response {
        let principal = try context.requirePrincipal()
        let tokens = try await self.hub.access.tokens(by: principal)
        let view = TokensPage(
            chrome: Chrome(title: "API tokens", section: .tokens, signedIn: context.signedIn, flash: flash),
            rows: tokens.map {
                TokenRow(id: $0.id, name: $0.name, role: $0.role.rawValue, hint: $0.hint + "…", created: Formatting.time($0.createdAt), lastUsed: Formatting.time($0.lastUsedAt))
            },
            roles: Self.roles(selected: .reader), name: name, nameError: error
        )
        return try self.renderer.page("tokens", view, status: status)
    }

    @Sendable func createToken(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "creating tokens")
        let form = try await ConsoleForm(request: &request, context: context)
        let role = form.string("role").flatMap(Role.init(rawValue:)) ?? .reader
        do {
            let issued = try await self.hub.access.createToken(by: principal, role: role, name: form.string("name"))
            let view = NewTokenPage(
                chrome: Chrome(title: "New API token", section: .tokens, signedIn: context.signedIn, flash: .ok("Token created.")),
                token: issued.token, name: issued.record.name, role: issued.record.role.rawValue
            )
            return try self.renderer.page("token-created", view, noStore: true)
        } catch let error as HubError where error.kind == .invalid {
            return try await self.renderTokens(context, flash: .error(error.message), name: form.raw("name") ?? "", error: error.message, status: .badRequest)
        }
    }

    @Sendable func revokeToken(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: "/settings/tokens") {
            try await self.hub.access.revokeToken(by: principal, id: id)
            return "Token revoked: it stops working at once."
        }
    }
}
