import Foundation
import SQLKit

/// Console sessions and the one-time setup links that make the first admin. Kept in the store,
/// so that a restart, or another node on the same database, keeps a person signed in.
public struct ConsoleSessionRepository: Sendable {
    let session: StoreSession

    public func insert(_ consoleSession: ConsoleSession) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO console_sessions (id_hash, user_id, created_at, last_seen_at, expires_at)
            VALUES (\(bind: consoleSession.idHash), \(bind: consoleSession.userID), \(bind: consoleSession.createdAt.storeMilliseconds),
                    \(bind: consoleSession.lastSeenAt.storeMilliseconds), \(bind: consoleSession.expiresAt.storeMilliseconds))
            """
        ).run()
    }

    /// The session whose secret hashes to `idHash`, with its user.
    public func get(idHash: String) async throws -> (session: ConsoleSession, user: ConsoleUser)? {
        guard
            let row = try await self.session.sql.raw(
                """
                SELECT s.id_hash, s.user_id, s.created_at AS s_created_at, s.last_seen_at, s.expires_at, u.*
                FROM console_sessions s JOIN users u ON u.id = s.user_id WHERE s.id_hash = \(bind: idHash)
                """
            ).first()
        else { return nil }
        let consoleSession = ConsoleSession(
            idHash: try row.decode(column: "id_hash", as: String.self),
            userID: try row.decode(column: "user_id", as: String.self),
            createdAt: Date(storeMilliseconds: try row.decode(column: "s_created_at", as: Int.self)),
            lastSeenAt: Date(storeMilliseconds: try row.decode(column: "last_seen_at", as: Int.self)),
            expiresAt: Date(storeMilliseconds: try row.decode(column: "expires_at", as: Int.self))
        )
        return (consoleSession, try UserRepository.user(row))
    }

    /// Records activity, at most once a minute per session so that page views do not all write.
    public func touch(idHash: String, at date: Date) async throws {
        let now = date.storeMilliseconds
        try await self.session.sql.raw(
            "UPDATE console_sessions SET last_seen_at = \(bind: now) WHERE id_hash = \(bind: idHash) AND last_seen_at < \(bind: now - 60_000)"
        ).run()
    }

    public func delete(idHash: String) async throws {
        try await self.session.sql.raw("DELETE FROM console_sessions WHERE id_hash = \(bind: idHash)").run()
    }

    /// Ends every session of a user (a new password, a new role).
    public func deleteAll(userID: String) async throws {
        try await self.session.sql.raw("DELETE FROM console_sessions WHERE user_id = \(bind: userID)").run()
    }

    /// Removes sessions past their absolute end or idle since before `idleSince`.
    public func deleteExpired(now: Date, idleSince: Date) async throws {
        try await self.session.sql.raw(
            """
            DELETE FROM console_sessions
            WHERE expires_at <= \(bind: now.storeMilliseconds) OR last_seen_at < \(bind: idleSince.storeMilliseconds)
            """
        ).run()
    }

    // MARK: Setup links

    public func insertSetupLink(tokenHash: String, createdAt: Date, expiresAt: Date) async throws {
        try await self.session.sql.raw(
            """
            INSERT INTO console_setup_links (token_hash, created_at, expires_at)
            VALUES (\(bind: tokenHash), \(bind: createdAt.storeMilliseconds), \(bind: expiresAt.storeMilliseconds))
            """
        ).run()
    }

    /// True when a setup link of this hash exists and has not expired.
    public func setupLinkIsValid(tokenHash: String, now: Date) async throws -> Bool {
        try await self.session.sql.raw(
            "SELECT token_hash FROM console_setup_links WHERE token_hash = \(bind: tokenHash) AND expires_at > \(bind: now.storeMilliseconds)"
        ).first() != nil
    }

    /// Uses up a valid setup link: true when this call removed it (so two uses at once make one admin).
    public func useSetupLink(tokenHash: String, now: Date) async throws -> Bool {
        try await self.session.sql.raw(
            """
            DELETE FROM console_setup_links WHERE token_hash = \(bind: tokenHash) AND expires_at > \(bind: now.storeMilliseconds)
            RETURNING token_hash
            """
        ).first() != nil
    }

    /// Removes every setup link: one has been used, and the first admin exists.
    public func deleteSetupLinks() async throws {
        try await self.session.sql.raw("DELETE FROM console_setup_links").run()
    }
}
