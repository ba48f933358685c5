import Logging
import Synchronization

/// What a hub logged, kept for a test to read: an operator's view of a run (a warning is
/// something they would be asked to look at).
public final class CapturedLogs: Sendable {
    public struct Entry: Sendable, CustomStringConvertible {
        public let level: Logger.Level
        public let message: String
        public let metadata: String

        public var description: String { "\(self.level) \(self.message) \(self.metadata)" }
    }

    private let entries = Mutex<[Entry]>([])

    public init() {}

    /// A logger that keeps every entry from `level` up.
    public func logger(level: Logger.Level = .debug) -> Logger {
        var logger = Logger(label: "conduit.test") { _ in Handler(logs: self) }
        logger.logLevel = level
        return logger
    }

    /// The entries kept so far, of `level` or worse.
    public func entries(atLeast level: Logger.Level = .trace) -> [Entry] {
        self.entries.withLock { $0.filter { $0.level >= level } }
    }

    struct Handler: LogHandler {
        let logs: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
            let entry = Entry(
                level: event.level, message: "\(event.message)", metadata: merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            )
            self.logs.entries.withLock { $0.append(entry) }
        }
    }
}
