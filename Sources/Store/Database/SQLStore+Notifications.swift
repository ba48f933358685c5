import Logging
import NIOPosix
import PostgresKit
import PostgresNIO
import SQLKit

extension SQLStore {
    /// Sends a notification on `channel` to the nodes listening (PostgreSQL's NOTIFY); nothing on
    /// SQLite, where no other node can be. It is a wake-up only: what it tells of is in the store.
    public func notify(_ channel: String, payload: String) async throws {
        guard self.dialect == .postgres else { return }
        try await self.session.sql.raw("SELECT pg_notify(\(bind: channel), \(bind: payload))").run()
    }

    /// Calls `notified` with the payload of each notification on `channel` (PostgreSQL's LISTEN,
    /// on a connection of its own), until cancelled; a lost connection is made again a second
    /// later. On SQLite it returns at once: nothing is ever notified.
    public func listen(_ channel: String, notified: @escaping @Sendable (String) -> Void) async {
        guard case .postgres(let url, _) = self.location, let configuration = try? SQLPostgresConfiguration(url: url) else { return }
        var logger = self.logger
        logger[metadataKey: "conduit.channel"] = "\(channel)"
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    on: MultiThreadedEventLoopGroup.singleton.any(), configuration: configuration.coreConfiguration, id: 0, logger: logger
                ).get()
                await withTaskCancellationHandler {
                    do {
                        try await connection.listen(on: channel) { notifications in
                            for try await notification in notifications { notified(notification.payload) }
                        }
                    } catch {
                        if !Task.isCancelled { logger.notice("listening stopped", metadata: ["error": "\(error)"]) }
                    }
                } onCancel: {
                    connection.close().whenComplete { _ in }
                }
                try? await connection.close()
            } catch {
                logger.notice("cannot listen for notifications", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
