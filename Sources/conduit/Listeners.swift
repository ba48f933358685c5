import Foundation
import NIOCore
import NIOPosix

/// A socket `serve` listens on, named as the operator knows it: the listener, its address and
/// the flags that move it.
struct ListenerAddress: Sendable {
    let name: String
    let host: String
    let port: Int
    let hostFlag: String
    let portFlag: String
    /// What port 0 does for this listener, as `--help` says it.
    var portZero = "0 picks a free port"

    var address: String { self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)" }
}

/// A command cannot start for a reason the operator can fix (a config file, a port in use);
/// printed as it is, without the usage that argument-parser adds to a `ValidationError`.
struct StartupError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }

    /// What a failed bind means, and what to do about it.
    init(listener: ListenerAddress, error: any Error) {
        let code = (error as? IOError)?.errnoCode
        switch code {
        case EADDRINUSE:
            self.init("\(listener.name) \(listener.address) is in use: pass \(listener.portFlag) (\(listener.portZero)), or stop what listens there")
        case EACCES:
            self.init("\(listener.name) \(listener.address): permission denied (ports below 1024 need privileges): pass \(listener.portFlag)")
        case EADDRNOTAVAIL:
            self.init("\(listener.name) \(listener.address): no such address on this machine: pass \(listener.hostFlag)")
        default:
            self.init("\(listener.name) \(listener.address): cannot listen (\(error)): check \(listener.hostFlag) and \(listener.portFlag)")
        }
    }
}

enum Listeners {
    /// Binds each listener's address and lets it go again, before anything is written to the
    /// store: a port in use stops `serve` with a message that names it, and leaves no store and no
    /// token behind. Port 0 (a free port, picked when the listener starts) needs no check.
    static func check(_ listeners: [ListenerAddress]) async throws {
        let fixed = listeners.filter { $0.port != 0 }
        for (index, listener) in fixed.enumerated() {
            if let other = fixed[..<index].first(where: { $0.port == listener.port && Self.overlap($0.host, listener.host) }) {
                throw StartupError(
                    "\(other.name) and \(listener.name) are both set to \(listener.address): pass another \(listener.portFlag)"
                )
            }
        }
        for listener in fixed {
            do {
                let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                    .bind(host: listener.host, port: listener.port).get()
                try await channel.close()
            } catch {
                throw StartupError(listener: listener, error: error)
            }
        }
    }

    /// Lets this process open as many files as its hard limit allows: every device connection is
    /// one, and a soft limit of 1,024 would refuse the 1,021st device.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// Whether two listen addresses can clash: the same host, or one of them every address.
    private static func overlap(_ a: String, _ b: String) -> Bool {
        let any: Set = ["0.0.0.0", "::", "*", ""]
        return a == b || any.contains(a) || any.contains(b)
    }
}
