import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// HTTP to a server a test started on loopback, through AsyncHTTPClient (SwiftNIO).
///
/// Not URLSession: on Linux, FoundationNetworking watches libcurl's sockets with dispatch sources
/// whose teardown races their sockets' (swift-corelibs-foundation#4791 and its kin). One such race
/// crashed a whole test run in libdispatch's `_dispatch_event_loop_drain`, and the servers the
/// crashed process had started kept `swift test` waiting.
public enum LoopbackHTTP {
    /// The answer's status and body; a body over 64 MiB is an error.
    public static func request(
        _ method: String, port: Int, path: String, headers: [(String, String)] = [], body: Data? = nil, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = HTTPMethod(rawValue: method)
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 64 << 20)
        return (Int(response.status.code), Data(buffer.readableBytesView))
    }

    /// A GET's body as text, whatever its status (`/metrics`, say).
    public static func text(port: Int, path: String) async throws -> String {
        String(decoding: try await self.request("GET", port: port, path: path).body, as: UTF8.self)
    }
}
