import Foundation
import HummingbirdBcrypt
import Logging
import Metrics
import Store

/// Console users, their sign-in and their sessions, and the one-time link that makes the first admin.
///
/// Passwords are kept as bcrypt hashes. A session is a random secret in a cookie, stored only as
/// its SHA-256 (as API tokens are), with an idle and an absolute end.
public struct ConsoleAccounts: Sendable {
    let hub: Hub

    /// How long a session lasts without use, and at most.
    public static let idleTimeout: TimeInterval = 12 * 3600
    public static let absoluteTimeout: TimeInterval = 7 * 24 * 3600
    /// How long a setup link works.
    public static let setupLinkLifetime: TimeInterval = 24 * 3600
    /// Every failed sign-in takes at least this long, known email or not.
    static let failedSignInDuration: Duration = .seconds(1)
    /// A hash to check unknown emails against, so that they cost what a wrong password costs.
    private static let decoyHash = Bcrypt.hash("conduit-decoy-password", cost: PasswordHasher.cost)

    /// Someone signed in: the user, and the principal their requests act as.
    public struct SignedIn: Sendable {
        public var user: ConsoleUser
        public var principal: Principal
        /// The cookie's secret: shown to the browser, stored only as its hash.
        public var sessionToken: String
    }

    // MARK: Users

    /// Adds a user to the principal's tenant (admins only).
    public func createUser(email: String, password: String, role: Role, by principal: Principal) async throws -> ConsoleUser {
        try principal.require(.admin, to: "creating users")
        return try await self.insertUser(email: email, password: password, role: role, tenantID: principal.tenantID, actor: principal.actor)
    }

    /// Adds a user to the named tenant: the installation's own CLI, which needs no principal.
    public func createUser(email: String, password: String, role: Role, tenantName: String) async throws -> ConsoleUser {
        let tenant = tenantName == Tenant.defaultName
            ? try await self.hub.access.ensureDefaultTenant() : try await self.hub.access.tenant(named: tenantName)
        return try await self.insertUser(email: email, password: password, role: role, tenantID: tenant.id, actor: "cli")
    }

    /// The principal's tenant's users (admins only).
    public func users(by principal: Principal) async throws -> [ConsoleUser] {
        try principal.require(.admin, to: "listing users")
        return try await self.hub.store.session.users.list(tenantID: principal.tenantID)
    }

    /// Every user of every tenant, with their tenant's name: for the CLI.
    public func allUsers() async throws -> [(user: ConsoleUser, tenant: String)] {
        let tenants = Dictionary(uniqueKeysWithValues: try await self.hub.access.tenants().map { ($0.id, $0.name) })
        return try await self.hub.store.session.users.listAll().map { ($0, tenants[$0.tenantID] ?? $0.tenantID) }
    }

    /// Removes a user of the principal's tenant (admins only) and ends their sessions; the
    /// tenant's last admin stays, so that someone can still manage it.
    public func deleteUser(id: String, by principal: Principal) async throws {
        try principal.require(.admin, to: "deleting users")
        guard Validation.isOpaqueIdentifier(id) else { throw HubError.notFound("user", id) }
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            guard let user = try await session.users.get(id: id), user.tenantID == principal.tenantID else {
                throw HubError.notFound("user", id)
            }
            if user.role == .admin, try await session.users.countAdmins(tenantID: principal.tenantID, lockingThem: true) <= 1 {
                throw HubError.conflict("last_admin", "\(user.email) is the tenant's last admin: make another admin first")
            }
            _ = try await session.users.delete(tenantID: principal.tenantID, id: id)
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.userDeleted, deviceID: nil, actor: principal.actor,
                data: EventLog.json(["userId": id]), at: now
            )
        }
    }

    /// Gives a user of the principal's tenant another role (admins only); the tenant keeps at
    /// least one admin. It applies from the user's next page on.
    public func setRole(of id: String, to role: Role, by principal: Principal) async throws -> ConsoleUser {
        try principal.require(.admin, to: "changing users' roles")
        guard Validation.isOpaqueIdentifier(id) else { throw HubError.notFound("user", id) }
        let now = self.hub.now()
        return try await self.hub.store.transaction { session in
            guard var user = try await session.users.get(id: id), user.tenantID == principal.tenantID else {
                throw HubError.notFound("user", id)
            }
            guard user.role != role else { return user }
            if user.role == .admin, try await session.users.countAdmins(tenantID: principal.tenantID, lockingThem: true) <= 1 {
                throw HubError.conflict("last_admin", "\(user.email) is the tenant's last admin: make another admin first")
            }
            _ = try await session.users.setRole(tenantID: principal.tenantID, id: id, role: role)
            try await session.events.append(
                tenantID: principal.tenantID, type: EventType.userRoleChanged, deviceID: nil, actor: principal.actor,
                data: EventLog.json(["userId": id, "from": user.role.rawValue, "to": role.rawValue]), at: now
            )
            user.role = role
            return user
        }
    }

    /// Sets a user's password, by email (the installation's CLI: the way back for someone who
    /// forgot theirs); every session of theirs ends.
    public func setPassword(email rawEmail: String, password: String) async throws -> ConsoleUser {
        let email = try Self.email(rawEmail)
        try Self.password(password)
        let hash = try await self.hub.passwordHasher.hash(password)
        return try await self.hub.store.transaction { session in
            guard let user = try await session.users.withEmail(email) else { throw HubError.notFound("user", email) }
            try await session.users.setPasswordHash(id: user.id, hash: hash)
            try await session.consoleSessions.deleteAll(userID: user.id)
            return user
        }
    }

    /// - Parameter setupLink: the hash of the setup link this user is made with: it is used up in
    ///   the same transaction, and only while the store has no user, so one link makes one admin.
    private func insertUser(
        email: String, password: String, role: Role, tenantID: String, actor: String, setupLink: String? = nil
    ) async throws -> ConsoleUser {
        let email = try Self.email(email)
        try Self.password(password)
        let now = self.hub.now()
        let user = ConsoleUser(
            id: Secrets.identifier(prefix: "usr_"), tenantID: tenantID, email: email,
            passwordHash: try await self.hub.passwordHasher.hash(password), role: role, createdAt: now
        )
        do {
            try await self.hub.store.transaction { session in
                if let setupLink {
                    guard try await session.consoleSessions.useSetupLink(tokenHash: setupLink, now: now),
                        try await session.users.count() == 0
                    else {
                        throw HubError.forbidden("this setup link has been used or has expired; ask whoever runs Conduit for `conduit users create`")
                    }
                }
                try await session.users.insert(user)
                // Emails stay with the admins' users page: readers read the event log.
                try await session.events.append(
                    tenantID: tenantID, type: EventType.userCreated, deviceID: nil, actor: actor,
                    data: EventLog.json(["userId": user.id, "role": role.rawValue]), at: now
                )
                // The first admin exists: no setup link may make another.
                try await session.consoleSessions.deleteSetupLinks()
            }
        } catch let error as StoreError where error.isConflict {
            throw HubError.conflict("user_exists", "email: a user with email '\(email)' exists already")
        }
        self.hub.logger.info("console user created", metadata: ["conduit.user_id": "\(user.id)", LogKey.tenantID: "\(tenantID)"])
        return user
    }

    /// An email as stored: trimmed, lower-cased, one `@` with something on each side.
    static func email(_ value: String) throws -> String {
        let email = value.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            email.utf8.count <= 254, !email.unicodeScalars.contains(where: { $0.properties.isWhitespace || $0.properties.generalCategory == .control })
        else {
            throw HubError.invalidField("email", "must be an email address, like name@example.com")
        }
        return email
    }

    /// bcrypt reads at most 72 bytes: a longer password would be cut without a word.
    static func password(_ value: String) throws {
        guard value.count >= 10 else { throw HubError.invalidField("password", "must be at least 10 characters") }
        guard value.utf8.count <= 72 else { throw HubError.invalidField("password", "must be at most 72 bytes") }
    }

    // MARK: Signing in

    /// Checks an email and password and opens a session. A wrong password and an unknown email
    /// answer alike, and no sooner than ``failedSignInDuration``; past the throttle's limits the
    /// answer is a 429 before any password is checked.
    public func signIn(email rawEmail: String, password: String, address: String) async throws -> SignedIn {
        let started = ContinuousClock.now
        let email = rawEmail.trimmingCharacters(in: .whitespaces).lowercased()
        let now = self.hub.now()
        // The attempt is counted before the password is checked: attempts sent at once cannot all pass.
        if let until = self.hub.signInThrottle.reserve(address: address, email: email, now: now) {
            let minutes = max(1, Int((until.timeIntervalSince(now) / 60).rounded(.up)))
            throw HubError.tooManyRequests("too many failed sign-ins: try again in \(minutes) minute\(minutes == 1 ? "" : "s")")
        }
        let user = email.isEmpty || email.utf8.count > 254 ? nil : try await self.hub.store.session.users.withEmail(email)
        // A password bcrypt would cut is still checked (against the decoy), so it costs the same.
        let checked = try await self.hub.passwordHasher.verify(password, hash: password.utf8.count <= 72 ? (user?.passwordHash ?? Self.decoyHash) : Self.decoyHash)
        guard let user, checked, password.utf8.count <= 72 else {
            Counter(label: "conduit_console_sign_ins_total", dimensions: [("outcome", "failed")]).increment()
            self.hub.logger.notice("console sign-in failed", metadata: ["conduit.address": "\(address)"])
            try? await Task.sleep(until: started + Self.failedSignInDuration, clock: .continuous)
            throw HubError.unauthenticated("wrong email or password")
        }
        self.hub.signInThrottle.succeeded(address: address, email: email, at: now)
        Counter(label: "conduit_console_sign_ins_total", dimensions: [("outcome", "ok")]).increment()
        return try await self.openSession(for: user, at: now)
    }

    private func openSession(for user: ConsoleUser, at now: Date) async throws -> SignedIn {
        let token = Secrets.generate(prefix: "", bytes: 32)
        let record = ConsoleSession(
            idHash: Secrets.tokenHash(token), userID: user.id, createdAt: now, lastSeenAt: now,
            expiresAt: now.addingTimeInterval(Self.absoluteTimeout)
        )
        try await self.hub.store.transaction { session in
            try await session.consoleSessions.insert(record)
            try await session.users.recordSignIn(id: user.id, at: now)
            try await session.consoleSessions.deleteExpired(now: now, idleSince: now.addingTimeInterval(-Self.idleTimeout))
        }
        return SignedIn(user: user, principal: Self.principal(user), sessionToken: token)
    }

    /// The signed-in user of a session cookie, or nil when it is unknown, idle too long or past its end.
    /// - Parameter recordingUse: false for a check that is not the person's doing (a live view's
    ///   stream asking again), which must not keep an idle session alive.
    public func authenticate(sessionToken token: String, recordingUse: Bool = true) async throws -> SignedIn? {
        guard !token.isEmpty, token.utf8.count <= 128 else { return nil }
        let hash = Secrets.tokenHash(token)
        guard let (record, user) = try await self.hub.store.session.consoleSessions.get(idHash: hash) else { return nil }
        let now = self.hub.now()
        guard record.expiresAt > now, now.timeIntervalSince(record.lastSeenAt) < Self.idleTimeout else {
            try? await self.hub.store.session.consoleSessions.delete(idHash: hash)
            return nil
        }
        do {
            // Written at most once a minute, and only then asked of the store: most pages read only.
            if recordingUse, now.timeIntervalSince(record.lastSeenAt) >= 60 {
                try await self.hub.store.session.consoleSessions.touch(idHash: hash, at: now)
            }
        } catch {
            self.hub.logger.debug("could not record session use", metadata: ["error": "\(error)"])
        }
        return SignedIn(user: user, principal: Self.principal(user), sessionToken: token)
    }

    /// Ends the session in the store: its cookie no longer works anywhere.
    public func signOut(sessionToken token: String) async throws {
        try await self.hub.store.session.consoleSessions.delete(idHash: Secrets.tokenHash(token))
    }

    static func principal(_ user: ConsoleUser) -> Principal {
        Principal(tenantID: user.tenantID, role: user.role, actor: "user:\(user.id)")
    }

    // MARK: The first admin

    /// On a store without any user, makes a one-time setup link's secret (valid for a day; it
    /// replaces any link made before); nil once a user exists.
    public func issueSetupLink() async throws -> String? {
        guard try await self.hub.store.session.users.count() == 0 else { return nil }
        let token = Secrets.generate(prefix: "cds_", bytes: 32)
        let now = self.hub.now()
        try await self.hub.store.transaction { session in
            try await session.consoleSessions.deleteSetupLinks()
            try await session.consoleSessions.insertSetupLink(
                tokenHash: Secrets.tokenHash(token), createdAt: now, expiresAt: now.addingTimeInterval(Self.setupLinkLifetime)
            )
        }
        return token
    }

    /// True while the link may still make the first admin.
    public func setupLinkIsValid(_ token: String) async throws -> Bool {
        guard !token.isEmpty, token.utf8.count <= 128 else { return false }
        return try await self.hub.store.session.consoleSessions.setupLinkIsValid(tokenHash: Secrets.tokenHash(token), now: self.hub.now())
    }

    /// Makes the first admin of the default tenant with a setup link, which then stops working,
    /// and signs them in.
    public func completeSetup(token: String, email: String, password: String) async throws -> SignedIn {
        guard try await self.setupLinkIsValid(token) else {
            throw HubError.forbidden("this setup link has been used or has expired; ask whoever runs Conduit for `conduit users create`")
        }
        let tenant = try await self.hub.access.ensureDefaultTenant()
        let user = try await self.insertUser(
            email: email, password: password, role: .admin, tenantID: tenant.id, actor: "setup", setupLink: Secrets.tokenHash(token)
        )
        return try await self.openSession(for: user, at: self.hub.now())
    }
}
