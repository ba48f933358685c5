import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/rules`: the tenant's rules with what each did, a rule's definition and where each device
/// stands in it, a dry run, and (admins) adding, enabling, disabling and deleting.
struct RulePages {
    let hub: Hub
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("rules", use: self.list)
        group.get("rules/new", use: self.newForm)
        group.post("rules/new", use: self.create)
        group.get("rules/{id}", use: self.show)
        group.get("rules/{id}/edit", use: self.editForm)
        group.post("rules/{id}/edit", use: self.edit)
        group.post("rules/{id}/test", use: self.test)
        group.post("rules/{id}/enable") { request, context in try await self.setEnabled(true, request: request, context: context) }
        group.post("rules/{id}/disable") { request, context in try await self.setEnabled(false, request: request, context: context) }
        group.post("rules/{id}/delete", use: self.delete)
    }

    static func path(_ id: String) -> String { "/rules/\(DeviceView.pathComponent(id))" }

    struct Row: Sendable {
        var id: String
        var href: String
        var name: String
        var enabled: Bool
        var value: String
        var states: String
        var evaluated: Int
        var matched: Int
        var skipped: Int
        var fired: Int
        var actionFailures: Int
        var failing: Bool
    }

    struct ListPage: Sendable {
        var chrome: Chrome
        var rows: [Row]
        var empty: Bool
    }

    static func row(_ rule: RuleView) -> Row {
        let counts = rule.counts
        return Row(
            id: rule.id, href: Self.path(rule.id), name: rule.name, enabled: rule.enabled, value: rule.definition.value,
            states: rule.definition.states.keys.sorted().joined(separator: " / "), evaluated: counts.evaluated, matched: counts.matched,
            skipped: counts.skipped, fired: counts.fired, actionFailures: counts.actionFailures, failing: counts.actionFailures > 0
        )
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let rows = try await self.hub.rules.list(by: principal).map(Self.row)
        var response = try self.renderer.page(
            "rules", ListPage(chrome: Chrome(title: "Rules", section: .rules, signedIn: context.signedIn, flash: takeFlash(request)), rows: rows, empty: rows.isEmpty)
        )
        return response.clearingFlash(request)
    }

    /// The form adds a rule, or changes one's name and definition.
    struct FormView: Sendable {
        var chrome: Chrome
        var name: String
        var definition: String
        var action = "/rules/new"
        var submit = "Add rule"
        var cancel = "/rules"
        var editing = false

        static func editing(_ id: String, chrome: Chrome, name: String, definition: String) -> FormView {
            FormView(chrome: chrome, name: name, definition: definition, action: RulePages.path(id) + "/edit", submit: "Save", cancel: RulePages.path(id), editing: true)
        }
    }

    static let example = """
        {
          "source": {"labels": ["fleet"]},
          "subtopic": "up",
          "value": "$.lightValue",
          "states": {"Above": {"above": 350}, "Below": {"below": 300}},
          "actions": [
            {"on": {"to": "Above"}, "downlink": {"payload": {"lightStatus": "off"}}},
            {"on": {"to": "Below"}, "downlink": {"payload": {"lightStatus": "on"}}}
          ]
        }
        """

    @Sendable func newForm(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        return try self.renderer.page(
            "rule-form", FormView(chrome: Chrome(title: "New rule", section: .rules, signedIn: context.signedIn, flash: nil), name: "", definition: Self.example)
        )
    }

    /// A definition typed in the form: a JSON object, read as the API reads one.
    static func definition(_ text: String) throws -> RuleDefinition {
        guard case .object(let members)? = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) else {
            throw HubError.invalidField("definition", "must be a JSON object: source, subtopic, value, states, debounce, actions")
        }
        return try RuleDefinition.decode(members)
    }

    /// The form again, with what was typed and why it was refused.
    func refused(_ error: HubError, _ view: FormView) throws -> Response {
        var view = view
        view.chrome.flash = .init(text: error.message, kind: "error", isError: true)
        return try self.renderer.page("rule-form", view, status: .badRequest)
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        let form = try await ConsoleForm(request: &request, context: context)
        let name = form.string("name") ?? ""
        let text = form.string("definition") ?? ""
        do {
            let rule = try await self.hub.rules.create(name: name, definition: try Self.definition(text), by: principal)
            return redirect(to: Self.path(rule.id), flash: .ok("Rule \(rule.name) added: it reads every message its devices send from now on."), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            return try self.refused(error, FormView(chrome: Chrome(title: "New rule", section: .rules, signedIn: context.signedIn, flash: nil), name: name, definition: text))
        }
    }

    static func pretty(_ definition: RuleDefinition) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(definition), as: UTF8.self)
    }

    @Sendable func editForm(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        let rule = try await self.hub.rules.get(try context.parameters.require("id"), by: principal)
        let chrome = Chrome(title: "Edit \(rule.name)", section: .rules, signedIn: context.signedIn, flash: nil)
        return try self.renderer.page("rule-form", FormView.editing(rule.id, chrome: chrome, name: rule.name, definition: try Self.pretty(rule.definition)))
    }

    /// Saves a name and definition. A definition that changed starts every device afresh, as
    /// through the API; one saved as it was keeps their states.
    @Sendable func edit(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing rules")
        let id = try context.parameters.require("id")
        let form = try await ConsoleForm(request: &request, context: context)
        let name = form.string("name") ?? ""
        let text = form.string("definition") ?? ""
        let before = try await self.hub.rules.get(id, by: principal)
        do {
            let definition = try Self.definition(text)
            let rule = try await self.hub.rules.update(id, name: name, definition: definition, by: principal)
            let note = definition == before.definition ? "" : " Its devices start afresh: each one's next reading sets its state and fires nothing."
            return redirect(to: Self.path(rule.id), flash: .ok("Rule \(rule.name) saved.\(note)"), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            let chrome = Chrome(title: "Edit \(before.name)", section: .rules, signedIn: context.signedIn, flash: nil)
            return try self.refused(error, FormView.editing(id, chrome: chrome, name: name, definition: text))
        }
    }

    struct StateRow: Sendable {
        var deviceID: String
        var deviceHref: String
        var state: String
        var pending: String?
        var value: String
        var updated: String
    }

    struct ActionRow: Sendable {
        var index: Int
        var kind: String
        var target: String
        var payload: String
        var coolingDown: Bool
    }

    struct DryRunView: Sendable {
        var value: String
        var skipped: String?
        var from: String
        var to: String
        var crossed: Bool
        var actions: [ActionRow]
        var none: Bool
    }

    struct ShowPage: Sendable {
        var chrome: Chrome
        var rule: Row
        var definition: String
        var states: [StateRow]
        var noStates: Bool
        var stateNames: [String]
        var message: String
        var deviceID: String
        var dryRun: DryRunView?
        var canChange: Bool
    }

    func showPage(_ id: String, request: Request, context: ConduitRequestContext, message: String = #"{"lightValue": 400}"#, deviceID: String = "", dryRun: DryRunView? = nil) async throws -> ShowPage {
        let principal = try context.requirePrincipal()
        let rule = try await self.hub.rules.get(id, by: principal)
        let page = try await self.hub.rules.states(id, page: try PageRequest(limit: 100), by: principal)
        let states = page.items.map { item in
            StateRow(
                deviceID: item.deviceID, deviceHref: "/devices/\(DeviceView.pathComponent(item.deviceID))", state: item.state.state ?? "none yet",
                pending: item.state.candidate.map { "on its way to \($0) (\(item.state.candidateSamples ?? 0) readings)" },
                value: item.state.value.map { RuleEngine.format($0) } ?? "", updated: item.state.updatedAt.map(Formatting.time) ?? ""
            )
        }
        return ShowPage(
            chrome: Chrome(title: rule.name, section: .rules, signedIn: context.signedIn, flash: takeFlash(request)), rule: Self.row(rule),
            definition: try Self.pretty(rule.definition), states: states, noStates: states.isEmpty,
            stateNames: rule.definition.states.keys.sorted(), message: message, deviceID: deviceID, dryRun: dryRun, canChange: principal.role == .admin
        )
    }

    @Sendable func show(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var response = try self.renderer.page("rule", try await self.showPage(try context.parameters.require("id"), request: request, context: context))
        return response.clearingFlash(request)
    }

    /// The dry run: the page again, with what the message would do. Changes nothing.
    @Sendable func test(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let form = try await ConsoleForm(request: &request, context: context)
        let message = form.string("message") ?? ""
        let deviceID = (form.string("deviceId") ?? "").trimmingCharacters(in: .whitespaces)
        let state = (form.string("state") ?? "").isEmpty ? nil : form.string("state")
        do {
            let name = deviceID.isEmpty ? nil : try await self.hub.devices.get(deviceID, by: principal).name
            let result = try await self.hub.rules.test(
                id, payload: Array(message.utf8), deviceID: deviceID.isEmpty ? "{deviceId}" : deviceID, deviceName: name ?? "{deviceName}",
                currentState: state, by: principal
            )
            let actions = result.actions.map {
                ActionRow(index: $0.index, kind: $0.kind, target: $0.target, payload: $0.payload.map { String(decoding: $0.encoded, as: UTF8.self) } ?? "", coolingDown: $0.coolingDown)
            }
            let view = DryRunView(
                value: result.value.map { RuleEngine.format($0) } ?? "—", skipped: result.skipped.map(\.rawValue), from: result.previousState ?? "none",
                to: result.state ?? "none", crossed: result.crossed, actions: actions, none: actions.isEmpty
            )
            return try self.renderer.page("rule", try await self.showPage(id, request: request, context: context, message: message, deviceID: deviceID, dryRun: view))
        } catch let error as HubError where error.kind == .invalid || error.kind == .notFound {
            var page = try await self.showPage(id, request: request, context: context, message: message, deviceID: deviceID)
            page.chrome.flash = .init(text: error.message, kind: "error", isError: true)
            return try self.renderer.page("rule", page, status: .badRequest)
        }
    }

    func setEnabled(_ enabled: Bool, request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: Self.path(id)) {
            _ = try await self.hub.rules.update(id, enabled: enabled, by: principal)
            return enabled ? "Enabled: it reads its devices' messages again." : "Disabled: it reads no message until enabled; devices keep their states."
        }
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let rule = try await self.hub.rules.get(id, by: principal)
        try await self.hub.rules.delete(id, by: principal)
        return redirect(to: "/rules", flash: .ok("Rule \(rule.name) deleted, with its devices' states."), request: request)
    }
}
