import Foundation
import Hub
import Hummingbird
import HTTPAPI
import NIOCore

/// `/devices/{id}/live`: a device's new messages as server-sent events, for its page to show
/// without a reload. Each event is `message` with JSON data (sequence, topic, time, payload as
/// the page shows it, as ``DeviceView/MessageRow``); the browser's `EventSource` reconnects by itself with `Last-Event-ID`.
struct LiveMessages {
    let hub: Hub

    /// A comment this often keeps proxies from closing an idle stream.
    static let heartbeat: Duration = .seconds(15)
    /// A stream ends after this long; the browser reconnects (and is signed in again) by itself.
    static let lifetime: Duration = .seconds(30 * 60)

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("devices/{id}/live", use: self.stream)
    }

    @Sendable func stream(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        _ = try await self.hub.devices.get(id, by: principal)
        let view = request.uri.queryParameters["payload"].flatMap { Formatting.PayloadView(rawValue: String($0)) } ?? .json
        let start = request.headers[.init("Last-Event-ID")!].flatMap { Int($0) }
            ?? request.uri.queryParameters["after"].flatMap { Int(String($0)) } ?? 0
        let hub = self.hub
        let session = context.signedIn?.sessionToken ?? ""
        let body = ResponseBody { writer in
            var after = start
            let ends = ContinuousClock.now + Self.lifetime
            // retry: how long the browser waits before it reconnects after a drop.
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            var checked = ContinuousClock.now
            while !Task.isCancelled, ContinuousClock.now < ends {
                // A session signed out or ended elsewhere stops receiving within a heartbeat.
                if ContinuousClock.now - checked >= Self.heartbeat {
                    guard try await hub.consoleAccounts.authenticate(sessionToken: session, recordingUse: false) != nil else { break }
                    checked = ContinuousClock.now
                }
                let messages = try await hub.messages.next(deviceID: id, after: after, timeout: Self.heartbeat, by: principal)
                if messages.isEmpty {
                    try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    continue
                }
                var chunk = ""
                for message in messages {
                    let data = String(decoding: try JSONEncoder().encode(DeviceView.messageRow(message, view: view)), as: UTF8.self)
                    chunk += "id: \(message.sequence)\nevent: message\ndata: \(data)\n\n"
                    after = message.sequence
                }
                try await writer.write(ByteBuffer(string: chunk))
            }
            try await writer.finish(nil)
        }
        return Response(
            status: .ok,
            headers: [.contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"],
            body: body
        )
    }
}
