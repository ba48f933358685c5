import Foundation
import Logging
import Metrics
import Store

/// Tenants, API tokens, and turning a presented token into a ``Principal``.
public struct AccessControl: Sendable {
    let hub: Hub

    /// A token as shown once, when it is made: the secret is in ``token`` and nowhere else.
    public struct IssuedToken: Sendable {
        public var record: APIToken
        public var token: String
    }

    /// Creates the `default` tenant when missing; returns it.
    @discardableResult
    public func ensureDefaultTenant() async throws -> Tenant {
        let now = self.hub.now()
        return try await self.hub.store.session.tenants.insertIfAbsent(
            Tenant(id: UUID().uuidString.lowercased(), name: Tenant.defaultName, createdAt: now)
        ).tenant
    }

    /// On an empty store, creates the `default` tenant and one admin token for it.
    ///
    /// Only the start that creates the default tenant makes a token: a store set up with
    /// `conduit tokens create` first, or one whose tokens were all revoked on purpose, gets none,
    /// and of several nodes starting at once on one PostgreSQL only one inserts the tenant.
    ///
    /// - Returns: the bootstrap token when one was made (the caller shows it once), else nil.
    public func bootstrap() async throws -> IssuedToken? {
        let now = self.hub.now()
        return try await self.hub.store.transaction { session in
            let (tenant, inserted) = try await session.tenants.insertIfAbsent(
                Tenant(id: UUID().uuidString.lowercased(), name: Tenant.defaultName, createdAt: now)
            )
            guard inserted, try await session.tokens.count() == 0 else { return nil }
            return try await Self.issue(
                in: session, tenantID: tenant.id, role: .admin, name: "bootstrap", actor: "system", at: now
            )
        }
    }

    /// The bootstrap admin token, when no token of the default tenant was ever used and no console
    /// user exists: `serve` then reminds the operator how to make another, in case its log line is lost.
    public func unusedBootstrapToken() async throws -> APIToken? {
        let session = self.hub.store.session
        guard try await session.users.count() == 0, let tenant = try await session.tenants.named(Tenant.defaultName) else { return nil }
        let tokens = try await session.tokens.list(tenantID: tenant.id)
        guard tokens.allSatisfy({ $0.lastUsedAt == nil }) else { return nil }
        return tokens.first { $0.name == "bootstrap" }
    }

    /// Adds a tenant; a taken name is a 409.
    public func createTenant(name: String) async throws -> Tenant {
        try Validation.tenantName(name)
        let tenant = Tenant(id: UUID().uuidString.lowercased(), name: name, createdAt: self.hub.now())
        do {
            try await self.hub.store.session.tenants.insert(tenant)
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("tenant_exists", "tenant '\(name)' exists already")
        }
        return tenant
    }

    public func tenants() async throws -> [Tenant] {
        try await self.hub.store.session.tenants.list()
    }

    /// The tenant of that name, or a 404.
    public func tenant(named name: String) async throws -> Tenant {
        guard (try? Validation.tenantName(name)) != nil, let tenant = try await self.hub.store.session.tenants.named(name) else {
            throw HubError.notFound("tenant", name)
        }
        return tenant
    }

    /// Makes a token in the principal's tenant (admin only); the secret is returned here and never again.
    public func createToken(by principal: Principal, role: Role, name: String?) async throws -> IssuedToken {
        try principal.require(.admin, to: "creating tokens")
        let name = try name.map { try Validation.displayName($0) } ?? "\(role.rawValue) token"
        let now = self.hub.now()
        let issued = try await self.hub.store.transaction { session in
            try await Self.issue(
                in: session, tenantID: principal.tenantID, role: role, name: name, actor: principal.actor, at: now
            )
        }
        self.hub.logger.info(
            "token created",
            metadata: [LogKey.tokenID: "\(issued.record.id)", LogKey.tenantID: "\(principal.tenantID)", "conduit.role": "\(role)"]
        )
        return issued
    }

    /// The principal's tenant's tokens (admin only), without their secrets.
    public func tokens(by principal: Principal) async throws -> [APIToken] {
        try principal.require(.admin, to: "listing tokens")
        return try await self.hub.store.session.tokens.list(tenantID: principal.tenantID)
    }

    /// Revokes a token of the principal's tenant (admin only); it stops working at once.
    public func revokeToken(by principal: Principal, id: String) async throws {
        try principal.require(.admin, to: "revoking tokens")
        guard Validation.isOpaqueIdentifier(id) else { throw HubError.notFound("token", id) }
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            guard try await session.tokens.delete(tenantID: principal.tenantID, id: id) else {
                throw HubError.notFound("token", id)
            }
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.tokenRevoked, deviceID: nil, actor: principal.actor,
                data: EventLog.json(["tokenId": id]), at: now
            )
        }
    }

    /// The principal a bearer token stands for; 401 for a missing or unknown one.
    public func authenticate(bearer token: String) async throws -> Principal {
        guard !token.isEmpty else { throw HubError.unauthenticated("missing bearer token") }
        guard token.utf8.count <= 512 else { throw HubError.unauthenticated("unknown or revoked token") }
        guard let record = try await self.hub.store.session.tokens.withHash(Secrets.tokenHash(token)) else {
            throw HubError.unauthenticated("unknown or revoked token")
        }
        do {
            try await self.hub.store.session.tokens.touch(id: record.id, at: self.hub.now())
        } catch {
            // Recording last use is a courtesy; a busy store must not fail the request.
            self.hub.logger.debug("could not record token use", metadata: ["error": "\(error)"])
        }
        return Principal(tenantID: record.tenantID, role: record.role, actor: "token:\(record.id)")
    }

    static func issue(
        in session: StoreSession, tenantID: String, role: Role, name: String, actor: String, at date: Date
    ) async throws -> IssuedToken {
        let secret = Secrets.generate(prefix: "cdt_")
        let record = APIToken(
            id: Secrets.identifier(prefix: "tok_"), tenantID: tenantID, name: name, role: role,
            tokenHash: Secrets.tokenHash(secret), hint: String(secret.prefix(8)), createdAt: date
        )
        try await session.tokens.insert(record)
        try await session.events.append(
            tenantID: tenantID, type: EventType.tokenCreated, deviceID: nil, actor: actor,
            data: EventLog.json(["tokenId": record.id, "role": role.rawValue, "name": name]), at: date
        )
        Counter(label: "conduit_tokens_created_total").increment()
        return IssuedToken(record: record, token: secret)
    }
}
