import ArgumentParser
import Foundation

/// `conduit bench mqtt --idle N`: what an idle MQTT connection costs a broker, in resident memory.
///
/// Opens N connections that each send a 3.1.1 CONNECT (keep-alive 600 s) and read the CONNACK,
/// then reads the broker's VmRSS from /proc before and after, once it has settled.
enum IdleConnections {
    static func measure(host: String, port: Int, count: Int, brokerPID: Int32) async throws {
        Listeners.raiseOpenFileLimit()
        let before = try residentKilobytes(of: brokerPID)
        var sockets: [Int32] = []
        defer { for socket in sockets { close(socket) } }
        let started = Date()
        for index in 0..<count {
            guard let socket = connect(host: host, port: port, clientIdentifier: "idle-\(getpid())-\(index)") else {
                print("connection \(index + 1) refused or not acknowledged; stopping at \(sockets.count)")
                break
            }
            sockets.append(socket)
        }
        let opened = Date().timeIntervalSince(started)
        // Let the broker settle (buffers returned, timers set) before reading its memory.
        try await Task.sleep(for: .seconds(2))
        let after = try residentKilobytes(of: brokerPID)
        let perConnection = sockets.isEmpty ? 0 : Double(after - before) * 1024 / Double(sockets.count)
        print("broker pid \(brokerPID) at \(host):\(port)  idle connections \(sockets.count)/\(count), opened in \(String(format: "%.1f", opened)) s")
        print(String(format: "resident memory %.1f MB -> %.1f MB: %.0f bytes per idle connection", Double(before) / 1024, Double(after) / 1024, perConnection))
    }

    /// VmRSS of a process, in kB.
    static func residentKilobytes(of pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw ValidationError("--broker-pid: no VmRSS in /proc/\(pid)/status") }
        return kilobytes
    }

    /// A socket that sent CONNECT and got a CONNACK that accepted it, or nil.
    static func connect(host: String, port: Int, clientIdentifier: String) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr(host)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        let id = Array(clientIdentifier.utf8)
        var packet: [UInt8] = [0x10, UInt8(12 + id.count), 0x00, 0x04, 0x4D, 0x51, 0x54, 0x54, 0x04, 0x02, 0x02, 0x58]
        packet += [UInt8(id.count >> 8), UInt8(id.count & 0xFF)] + id
        var acknowledgement = [UInt8](repeating: 0, count: 4)
        guard connected == 0, write(fd, packet, packet.count) == packet.count, read(fd, &acknowledgement, 4) == 4,
            acknowledgement[0] == 0x20, acknowledgement[3] == 0
        else {
            close(fd)
            return nil
        }
        return fd
    }
}
