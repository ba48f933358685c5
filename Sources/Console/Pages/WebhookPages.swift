import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/webhooks` (admins): the tenant's webhooks, a webhook's settings and delivery log with every
/// try, sending a delivery again, pausing and resuming, rotating the secret.
struct WebhookPages {
    let hub: Hub
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("webhooks", use: self.list)
        group.post("webhooks/new", use: self.create)
        group.get("webhooks/{id}", use: self.show)
        group.post("webhooks/{id}/pause") { request, context in try await self.setPaused(true, request: request, context: context) }
        group.post("webhooks/{id}/resume") { request, context in try await self.setPaused(false, request: request, context: context) }
        group.post("webhooks/{id}/secret", use: self.rotate)
        group.post("webhooks/{id}/deliveries/{delivery}/resend", use: self.resend)
        group.post("webhooks/{id}/delete", use: self.delete)
    }

    static func path(_ id: String) -> String { "/webhooks/\(DeviceView.pathComponent(id))" }

    struct Row: Sendable {
        var id: String
        var href: String
        var name: String
        var url: String
        var events: String
        var paused: Bool
        var pausedReason: String?
        var pending: Int
    }

    struct EventOption: Sendable {
        var value: String
        var checked: Bool
    }

    struct ListPage: Sendable {
        var chrome: Chrome
        var rows: [Row]
        var empty: Bool
        var events: [EventOption]
        var name: String
        var url: String
    }

    static func row(_ view: Webhooks.View) -> Row {
        Row(
            id: view.webhook.id, href: Self.path(view.webhook.id), name: view.webhook.name, url: view.webhook.url, events: view.webhook.events.joined(separator: ", "),
            paused: view.webhook.pausedReason != nil, pausedReason: view.webhook.pausedReason, pending: view.pending
        )
    }

    /// The event types offered when none is chosen: what Helium's and Mender's integrations send.
    static let suggested: Set<String> = ["device.accepted", "device.rejected", "device.decommissioned", "aws.provisioned", "aws.failed", "rule.fired"]

    func listPage(_ request: Request, context: ConduitRequestContext, chosen: Set<String> = suggested, name: String = "", url: String = "") async throws -> ListPage {
        let principal = try context.requirePrincipal()
        let rows = try await self.hub.webhooks.list(by: principal).map(Self.row)
        return ListPage(
            chrome: Chrome(title: "Webhooks", section: .webhooks, signedIn: context.signedIn, flash: takeFlash(request)), rows: rows, empty: rows.isEmpty,
            events: Webhooks.eventTypes.map { EventOption(value: $0, checked: chosen.contains($0)) }, name: name, url: url
        )
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        try context.requirePrincipal().require(.admin, to: "reading webhooks")
        var response = try self.renderer.page("webhooks", try await self.listPage(request, context: context))
        return response.clearingFlash(request)
    }

    struct SecretPage: Sendable {
        var chrome: Chrome
        var webhook: Row
        var secret: String
        var rotated: Bool
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing webhooks")
        let form = try await ConsoleForm(request: &request, context: context)
        let events = form.fields.filter { $0.name == "events" }.map(\.value)
        let name = form.string("name") ?? ""
        let url = form.string("url") ?? ""
        do {
            let created = try await self.hub.webhooks.create(name: name, url: url, events: events, by: principal)
            // The secret, this once.
            return try self.renderer.page(
                "webhook-secret",
                SecretPage(
                    chrome: Chrome(title: created.view.webhook.name, section: .webhooks, signedIn: context.signedIn, flash: nil), webhook: Self.row(created.view),
                    secret: created.secret, rotated: false
                ),
                noStore: true
            )
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            var page = try await self.listPage(request, context: context, chosen: Set(events), name: name, url: url)
            page.chrome.flash = .init(text: error.message, kind: "error", isError: true)
            return try self.renderer.page("webhooks", page, status: .badRequest)
        }
    }

    struct TryRow: Sendable {
        var attempt: Int
        var at: String
        var status: String
        var latency: String
        var error: String?
    }

    struct DeliveryRow: Sendable {
        var id: Int
        var eventType: String
        var deviceID: String?
        var state: String
        var created: String
        var tries: [TryRow]
        var attempts: Int
        var canResend: Bool
        var resendHref: String
        var next: String?
    }

    struct ShowPage: Sendable {
        var chrome: Chrome
        var webhook: Row
        var previousSecretUntil: String?
        var deliveries: [DeliveryRow]
        var empty: Bool
        var nextPage: String?
    }

    @Sendable func show(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let view = try await self.hub.webhooks.get(id, by: principal)
        let cursor = request.uri.queryParameters["cursor"].map(String.init)
        let page = try await self.hub.webhooks.deliveries(id, page: try PageRequest(limit: 25, cursor: cursor), by: principal)
        let rows = page.items.map { entry in
            let delivery = entry.delivery
            return DeliveryRow(
                id: delivery.sequence, eventType: delivery.eventType, deviceID: delivery.deviceID.isEmpty ? nil : delivery.deviceID, state: delivery.state.rawValue,
                created: Formatting.time(delivery.createdAt),
                tries: entry.attempts.map {
                    TryRow(
                        attempt: $0.attempt, at: Formatting.time($0.at), status: $0.status.map(String.init) ?? "no answer", latency: "\($0.latencyMilliseconds) ms",
                        error: $0.error
                    )
                },
                attempts: delivery.attempts, canResend: delivery.state != .pending, resendHref: "\(Self.path(id))/deliveries/\(delivery.sequence)/resend",
                next: delivery.state == .pending ? Formatting.time(delivery.nextAttemptAt) : nil
            )
        }
        var response = try self.renderer.page(
            "webhook",
            ShowPage(
                chrome: Chrome(title: view.webhook.name, section: .webhooks, signedIn: context.signedIn, flash: takeFlash(request)), webhook: Self.row(view),
                previousSecretUntil: view.webhook.previousSecretUntil.flatMap { $0 > Date() ? Formatting.time($0) : nil }, deliveries: rows, empty: rows.isEmpty,
                nextPage: page.nextCursor.map { pageLink(Self.path(id), [("cursor", $0)]) }
            )
        )
        return response.clearingFlash(request)
    }

    func setPaused(_ paused: Bool, request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: Self.path(id)) {
            _ = try await self.hub.webhooks.update(id, paused: paused, by: principal)
            return paused ? "Paused: deliveries wait until you resume." : "Resumed: waiting deliveries go now."
        }
    }

    @Sendable func rotate(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let rotated = try await self.hub.webhooks.rotateSecret(try context.parameters.require("id"), by: principal)
        return try self.renderer.page(
            "webhook-secret",
            SecretPage(
                chrome: Chrome(title: rotated.view.webhook.name, section: .webhooks, signedIn: context.signedIn, flash: nil), webhook: Self.row(rotated.view),
                secret: rotated.secret, rotated: true
            ),
            noStore: true
        )
    }

    @Sendable func resend(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let text = try context.parameters.require("delivery")
        return try await act(request, back: Self.path(id)) {
            guard let sequence = Int(text) else { throw HubError.notFound("delivery", text) }
            let resent = try await self.hub.webhooks.resend(id, delivery: sequence, by: principal)
            return "Sent again as delivery \(resent.delivery.sequence), with the same webhook-id."
        }
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let view = try await self.hub.webhooks.get(id, by: principal)
        try await self.hub.webhooks.delete(id, by: principal)
        return redirect(to: "/webhooks", flash: .ok("Webhook \(view.webhook.name) deleted, with its deliveries."), request: request)
    }
}
