import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/devices` (search, filter, page, select many, create) and `/devices/{id}`.
struct DevicePages {
    let hub: Hub
    let renderer: ConsoleRenderer

    static let pageSize = 50

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("devices", use: self.list)
        group.post("devices", use: self.create)
        group.post("devices/bulk", use: self.bulk)
        group.get("devices/{id}", use: self.show)
    }

    // MARK: The list

    struct Row: Sendable {
        var id: String
        var name: String
        var status: String
        var labels: String
        var aws: String
        var lastMessage: String
        var lastMessageISO: String?
    }

    struct Option: Sendable {
        var value: String
        var label: String
        var selected: Bool
    }

    struct ListPage: Sendable {
        var chrome: Chrome
        var q: String
        var label: String
        var statuses: [Option]
        var rows: [Row]
        var empty: Bool
        var nextPage: String?
        var firstPage: String?
        /// This page, for the bulk form to come back to.
        var here: String
        var create: CreateForm
    }

    struct CreateForm: Sendable {
        var id = ""
        var name = ""
        var labels = ""
        var attributes = ""
        var error: String?
        var open = false
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var response = try await self.renderList(request, context: context, create: CreateForm(), flash: takeFlash(request), status: .ok)
        return response.clearingFlash(request)
    }

    func renderList(
        _ request: Request, context: ConduitRequestContext, create: CreateForm, flash: Flash?, status: HTTPResponse.Status
    ) async throws -> Response {
        let principal = try context.requirePrincipal()
        let query = request.uri.queryParameters
        let q = query["q"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        let label = query["label"].map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        let statusFilter = query["status"].flatMap { DeviceStatus(rawValue: String($0)) }
        let filter = DeviceFilter(status: statusFilter, label: label.isEmpty ? nil : label, search: q.isEmpty ? nil : q)
        let cursor = query["cursor"].map(String.init)
        let page = try await self.hub.devices.list(filter: filter, page: try PageRequest(limit: Self.pageSize, cursor: cursor), by: principal)
        let summaries = try await self.hub.devices.summaries(of: page.items.map(\.id), by: principal)
        let rows = page.items.map { device in
            let summary = summaries[device.id]
            return Row(
                id: device.id, name: device.name, status: device.status.rawValue, labels: device.labels.joined(separator: ", "),
                aws: Self.awsSummary(summary?.awsStates ?? []),
                lastMessage: Formatting.time(summary?.lastMessageAt), lastMessageISO: summary?.lastMessageAt.map { Formatting.isoTime($0) }
            )
        }
        func link(cursor: String?) -> String {
            pageLink("/devices", [("q", q.isEmpty ? nil : q), ("status", statusFilter?.rawValue), ("label", label.isEmpty ? nil : label), ("cursor", cursor)])
        }
        let view = ListPage(
            chrome: Chrome(title: "Devices", section: .devices, signedIn: context.signedIn, flash: flash),
            q: q, label: label,
            statuses: [Option(value: "", label: "any status", selected: statusFilter == nil)]
                + DeviceStatus.allCases.map { Option(value: $0.rawValue, label: $0.rawValue, selected: $0 == statusFilter) },
            rows: rows, empty: rows.isEmpty, nextPage: page.nextCursor.map { link(cursor: $0) },
            firstPage: cursor == nil ? nil : link(cursor: nil), here: link(cursor: cursor), create: create
        )
        return try self.renderer.page("devices", view, status: status)
    }

    /// `provisioned`, or `2 provisioned, 1 failed` for a device in several integrations.
    static func awsSummary(_ states: [AWSProvisioningState]) -> String {
        guard !states.isEmpty else { return "" }
        if states.count == 1 { return states[0].rawValue }
        var counts: [String: Int] = [:]
        for state in states { counts[state.rawValue, default: 0] += 1 }
        return counts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    }

    // MARK: Creating

    struct CreatedPage: Sendable {
        var chrome: Chrome
        var id: String
        var name: String
        var secret: String
        var title: String
        var explanation: String
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "creating devices")
        let form = try await ConsoleForm(request: &request, context: context)
        var create = CreateForm(
            id: form.string("id") ?? "", name: form.string("name") ?? "", labels: form.raw("labels") ?? "",
            attributes: form.raw("attributes") ?? "", error: nil, open: true
        )
        do {
            let created = try await self.hub.devices.create(
                .init(id: form.string("id"), name: form.raw("name") ?? "", labels: form.list("labels"),
                      attributes: try form.keyValues("attributes", field: "attributes")),
                by: principal
            )
            let view = CreatedPage(
                chrome: Chrome(title: "Device created", section: .devices, signedIn: context.signedIn, flash: .ok("Device \(created.device.id) created: it is pending until accepted.")),
                id: created.device.id, name: created.device.name, secret: created.secret, title: "Device created",
                explanation: "This is the device's MQTT password. It is shown only this once: copy it now and give it to the device."
            )
            return try self.renderer.page("device-secret", view, noStore: true)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            create.error = error.message
            return try await self.renderList(request, context: context, create: create, flash: .error(error.message), status: .badRequest)
        }
    }

    // MARK: Many at once

    @Sendable func bulk(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        let form = try await ConsoleForm(request: &request, context: context)
        let back = SignInPages.safeNext(form.string("back")) ?? "/devices"
        guard let action = form.string("action").flatMap(LifecycleAction.init(rawValue:)) else {
            return redirect(to: back, flash: .error("action: choose accept, reject or decommission"), request: request)
        }
        try principal.require(.operator, to: "\(action.rawValue)ing devices")
        let ids = form.all("ids")
        guard !ids.isEmpty else { return redirect(to: back, flash: .error("Select at least one device first."), request: request) }
        var done = 0
        var failures: [String] = []
        for id in ids.prefix(500) {
            do {
                _ = try await self.hub.devices.perform(action, on: id, by: principal)
                done += 1
            } catch let error as HubError {
                failures.append("\(id): \(error.message)")
            }
        }
        let verb = action.target.rawValue
        if failures.isEmpty {
            return redirect(to: back, flash: .ok("\(done) device\(done == 1 ? "" : "s") \(verb)."), request: request)
        }
        return redirect(
            to: back, flash: .error("\(done) \(verb); \(failures.count) not: " + failures.prefix(5).joined(separator: "; ") + (failures.count > 5 ? "; …" : "")),
            request: request
        )
    }

    // MARK: One device

    @Sendable func show(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var response = try await DeviceView.render(
            hub: self.hub, renderer: self.renderer, request: request, context: context, id: try context.parameters.require("id"),
            forms: DeviceView.Forms(), flash: takeFlash(request), status: .ok
        )
        return response.clearingFlash(request)
    }
}
