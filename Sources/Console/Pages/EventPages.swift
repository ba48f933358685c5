import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/events`: the tenant's event log, newest first, filtered by type and device, paged.
struct EventPages {
    let hub: Hub
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("events", use: self.list)
    }

    struct Row: Sendable {
        var time: String
        var timeISO: String
        var type: String
        var deviceID: String?
        var deviceHref: String?
        var actor: String
        var data: String
    }

    struct TypeOption: Sendable {
        var value: String
        var selected: Bool
    }

    struct ListPage: Sendable {
        var chrome: Chrome
        var types: [TypeOption]
        var anyType: Bool
        var deviceID: String
        var rows: [Row]
        var empty: Bool
        var nextPage: String?
        var firstPage: String?
    }

    static func row(_ event: Event) -> Row {
        Row(
            time: Formatting.time(event.createdAt), timeISO: Formatting.isoTime(event.createdAt), type: event.type, deviceID: event.deviceID,
            deviceHref: event.deviceID.map { "/devices/\(DeviceView.pathComponent($0))" }, actor: event.actor,
            data: event.data == "{}" ? "" : event.data
        )
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let query = request.uri.queryParameters
        let type = query["type"].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        let deviceID = query["deviceId"].map { String($0).trimmingCharacters(in: .whitespaces) }.flatMap { $0.isEmpty ? nil : $0 }
        let cursor = query["cursor"].map(String.init)
        var flash = takeFlash(request)
        var rows: [Row] = []
        var next: String?
        do {
            if let type, !EventType.all.contains(type) { throw HubError.invalidField("type", "must be one of the listed event types") }
            let page = try await self.hub.events.list(filter: .init(deviceID: deviceID, type: type), page: try PageRequest(limit: 50, cursor: cursor), by: principal)
            rows = page.items.map(Self.row)
            next = page.nextCursor
        } catch let error as HubError where error.kind == .invalid {
            flash = .error(error.message)
        }
        func link(_ cursor: String?) -> String {
            pageLink("/events", [("type", type), ("deviceId", deviceID), ("cursor", cursor)])
        }
        let view = ListPage(
            chrome: Chrome(title: "Events", section: .events, signedIn: context.signedIn, flash: flash),
            types: EventType.all.sorted().map { TypeOption(value: $0, selected: $0 == type) }, anyType: type == nil,
            deviceID: deviceID ?? "", rows: rows, empty: rows.isEmpty, nextPage: next.map { link($0) }, firstPage: cursor == nil ? nil : link(nil)
        )
        var response = try self.renderer.page("events", view)
        return response.clearingFlash(request)
    }
}
