import Foundation
import Logging
import Store

/// The domain: the registry, access control and the event log over one store.
///
/// It knows nothing of HTTP or sockets; the API, the CLI and (later) the broker call it.
public final class Hub: Sendable {
    public let store: SQLStore
    public let logger: Logger
    let clock: @Sendable () -> Date

    public init(store: SQLStore, logger: Logger = Logger(label: "conduit.hub"), clock: @escaping @Sendable () -> Date = Date.init) {
        self.store = store
        self.logger = logger
        self.clock = clock
    }

    public var access: AccessControl { AccessControl(hub: self) }
    public var devices: DeviceRegistry { DeviceRegistry(hub: self) }
    public var events: EventLog { EventLog(hub: self) }

    /// The time now, at the precision the store keeps.
    func now() -> Date { self.clock().truncatedToStorePrecision }
}

/// Metadata keys for Conduit's logs.
public enum LogKey {
    public static let deviceID = "conduit.device_id"
    public static let tenantID = "conduit.tenant_id"
    public static let tokenID = "conduit.token_id"
    public static let event = "conduit.event"
}
