import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// `/integrations`, `/integrations/new`, `/integrations/{id}` and its edit, reconcile, pause and
/// delete. Admins only, as in the API.
struct IntegrationPages {
    let hub: Hub
    let renderer: ConsoleRenderer

    /// AWS IoT Core's commercial regions, for the region list.
    static let regions = [
        "us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "sa-east-1", "eu-central-1", "eu-central-2", "eu-west-1",
        "eu-west-2", "eu-west-3", "eu-north-1", "eu-south-1", "eu-south-2", "me-south-1", "me-central-1", "il-central-1", "af-south-1",
        "ap-east-1", "ap-south-1", "ap-south-2", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
        "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-gov-east-1",
    ]

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("integrations", use: self.list)
        group.get("integrations/new", use: self.newForm)
        group.post("integrations/new", use: self.create)
        group.get("integrations/{id}", use: self.show)
        group.get("integrations/{id}/edit", use: self.editForm)
        group.post("integrations/{id}/edit", use: self.update)
        group.post("integrations/{id}/reconcile", use: self.reconcile)
        group.post("integrations/{id}/pause") { request, context in try await self.setActive(false, request: request, context: context) }
        group.post("integrations/{id}/resume") { request, context in try await self.setActive(true, request: request, context: context) }
        group.post("integrations/{id}/delete", use: self.delete)
    }

    static func path(_ id: String) -> String { "/integrations/\(DeviceView.pathComponent(id))" }

    // MARK: The list

    struct Row: Sendable {
        var id: String
        var name: String
        var region: String
        var status: String
        var active: Bool
        var counts: String
        var failing: Bool
        var failed: Int
    }

    struct ListPage: Sendable {
        var chrome: Chrome
        var rows: [Row]
        var empty: Bool
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "listing integrations")
        let rows = try await self.hub.integrations.summaries(by: principal).map { item in
            let failed = item.stateCounts[.failed] ?? 0
            return Row(
                id: item.integration.id, name: item.integration.name, region: item.integration.settings.region,
                status: item.integration.status == .deleting ? "deleting" : (item.integration.active ? "active" : "paused"),
                active: item.integration.active, counts: Self.counts(item.stateCounts), failing: failed > 0, failed: failed
            )
        }
        var response = try self.renderer.page(
            "integrations",
            ListPage(chrome: Chrome(title: "Integrations", section: .integrations, signedIn: context.signedIn, flash: takeFlash(request)), rows: rows, empty: rows.isEmpty)
        )
        return response.clearingFlash(request)
    }

    /// `3 provisioned, 1 pending`, in the lifecycle's order.
    static func counts(_ counts: [AWSProvisioningState: Int]) -> String {
        let text = AWSProvisioningState.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }.joined(separator: ", ")
        return text.isEmpty ? "no devices" : text
    }

    // MARK: New and edit

    struct Choice: Sendable {
        var value: String
        var selected: Bool
    }

    /// The integration form as shown: what was typed (or stored), and each field's error.
    struct FormView: Sendable {
        var chrome: Chrome
        var editing: Bool
        var action: String
        var id: String
        var name = ""
        var regions: [Choice] = []
        var credKeys = true
        var credRole = false
        var credConduit = false
        var accessKeyId = ""
        var secretAccessKey = ""
        var hasSecret = false
        var roleArn = ""
        var externalId = ""
        var endpointUrl = ""
        var mqttEndpoint = ""
        var thingGroup = ""
        var policyPerThing = true
        var policyShared = false
        var policyNamed = false
        var policyName = ""
        var uplinkTopic = "conduit/{deviceId}/up"
        var rawFormat = true
        var envelopeFormat = false
        var topicPreview = ""
        var bindAll = false
        var bindLabels = true
        var bindDevices = false
        var bindValues = ""
        var check: CheckResult?
        /// The endpoints section starts open when it holds something.
        var advancedOpen = false
        // One per field, stored: templates see stored properties only.
        var nameError: String?
        var regionError: String?
        var credentialsError: String?
        var endpointUrlError: String?
        var mqttEndpointError: String?
        var thingGroupError: String?
        var policyError: String?
        var uplinkTopicError: String?
        var bindError: String?
    }

    struct CheckResult: Sendable {
        var ok: Bool
        var text: String
    }

    func blankForm(_ context: ConduitRequestContext, flash: Flash?) -> FormView {
        var view = FormView(
            chrome: Chrome(title: "New integration", section: .integrations, signedIn: context.signedIn, flash: flash), editing: false,
            action: "/integrations/new", id: ""
        )
        view.regions = Self.regions.map { Choice(value: $0, selected: $0 == "us-east-1") }
        view.topicPreview = Self.preview(view.uplinkTopic)
        return view
    }

    @Sendable func newForm(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        try context.requirePrincipal().require(.admin, to: "creating integrations")
        return try self.renderer.page("integration-form", self.blankForm(context, flash: nil))
    }

    /// The form as the person filled it in, to show again.
    func refill(_ form: ConsoleForm, into view: inout FormView) {
        view.name = form.raw("name") ?? ""
        let region = form.string("region") ?? "us-east-1"
        view.regions = (Self.regions.contains(region) ? Self.regions : [region] + Self.regions).map { Choice(value: $0, selected: $0 == region) }
        let credentials = form.string("credentials") ?? "keys"
        view.credKeys = credentials == "keys"
        view.credRole = credentials == "role"
        view.credConduit = credentials == "conduit"
        view.accessKeyId = form.raw("accessKeyId") ?? ""
        view.secretAccessKey = form.raw("secretAccessKey") ?? ""
        view.roleArn = form.raw("roleArn") ?? ""
        view.externalId = form.raw("externalId") ?? ""
        view.endpointUrl = form.raw("endpointUrl") ?? ""
        view.mqttEndpoint = form.raw("mqttEndpoint") ?? ""
        view.thingGroup = form.raw("thingGroup") ?? ""
        view.policyNamed = form.string("policy") == "named"
        view.policyShared = form.string("policy") == "shared"
        view.policyPerThing = !view.policyNamed && !view.policyShared
        view.policyName = form.raw("policyName") ?? ""
        view.uplinkTopic = form.raw("uplinkTopic") ?? ""
        view.envelopeFormat = form.string("payloadFormat") == "envelope"
        view.rawFormat = !view.envelopeFormat
        let bind = form.string("bind") ?? "labels"
        view.bindAll = bind == "all"
        view.bindLabels = bind == "labels"
        view.bindDevices = bind == "devices"
        view.bindValues = form.raw("bindValues") ?? ""
        view.topicPreview = Self.preview(view.uplinkTopic)
        view.advancedOpen = !view.endpointUrl.isEmpty || !view.mqttEndpoint.isEmpty
    }

    /// The topic a sample device's message on `devices/{id}/up` would go to.
    static func preview(_ template: String) -> String {
        Integrations.uplinkTopic(template, deviceID: "boiler-7", deviceName: "Boiler 7", subtopic: "up")
    }

    /// The draft the form describes. When editing, blank credentials keep the stored ones.
    func draft(_ form: ConsoleForm, editing: Bool) -> IntegrationDraft {
        var draft = IntegrationDraft()
        draft.name = form.raw("name") ?? ""
        draft.region = form.string("region")
        switch form.string("credentials") ?? "keys" {
        case "role":
            if !editing || form.string("roleArn") != nil {
                draft.credentials = .init(roleARN: form.string("roleArn") ?? "", externalID: form.string("externalId"))
            }
        case "conduit":
            draft.credentials = .init(source: "default")
        default:
            if !editing || form.string("secretAccessKey") != nil {
                draft.credentials = .init(accessKeyID: form.string("accessKeyId") ?? "", secretAccessKey: form.string("secretAccessKey") ?? "")
            }
        }
        draft.endpointURL = .some(form.string("endpointUrl"))
        draft.mqttEndpoint = .some(form.string("mqttEndpoint"))
        draft.thingGroup = .some(form.string("thingGroup"))
        switch form.string("policy") {
        case "named": draft.policy = .init(name: form.string("policyName") ?? "")
        case "shared": draft.policy = .init(shared: true)
        default: draft.policy = .init(perThing: true)
        }
        draft.uplinkTopic = form.string("uplinkTopic") ?? ""
        draft.payloadFormat = form.string("payloadFormat") ?? "raw"
        switch form.string("bind") ?? "labels" {
        case "all": draft.bind = .init(all: true)
        case "devices": draft.bind = .init(devices: form.list("bindValues"))
        default: draft.bind = .init(labels: form.list("bindValues"))
        }
        return draft
    }

    /// Puts the hub's refusal beside the field it names (`credentials.accessKeyId` beside the credentials).
    static func place(_ error: HubError, in view: inout FormView) {
        let key = error.field?.split(separator: ".").first.map(String.init) ?? ""
        switch key {
        case "region": view.regionError = error.message
        case "credentials": view.credentialsError = error.message
        case "endpointUrl":
            view.endpointUrlError = error.message
            view.advancedOpen = true
        case "mqttEndpoint":
            view.mqttEndpointError = error.message
            view.advancedOpen = true
        case "thingGroup": view.thingGroupError = error.message
        case "policy": view.policyError = error.message
        case "uplinkTopic": view.uplinkTopicError = error.message
        case "bind": view.bindError = error.message
        default: view.nameError = error.message
        }
    }

    @Sendable func create(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "creating integrations")
        let form = try await ConsoleForm(request: &request, context: context)
        var view = self.blankForm(context, flash: nil)
        self.refill(form, into: &view)
        let draft = self.draft(form, editing: false)
        do {
            if form.string("intent") == "check" {
                let endpoint = try await self.hub.integrations.verify(draft, by: principal)
                view.check = CheckResult(ok: true, text: "AWS accepted these credentials; the data endpoint is \(endpoint).")
                // The secret is shown again as typed, once, in this answer to the person who typed it.
                return try self.renderer.page("integration-form", view, noStore: true)
            }
            let integration = try await self.hub.integrations.create(draft, by: principal)
            return redirect(
                to: Self.path(integration.id), flash: .ok("Integration \(integration.name) created: its devices are being provisioned in AWS."),
                request: request
            )
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict || error.kind == .forbidden || error.kind == .upstream {
            Self.place(error, in: &view)
            if form.string("intent") == "check" { view.check = CheckResult(ok: false, text: error.message) }
            view.chrome.flash = .init(text: error.message, kind: "error", isError: true)
            return try self.renderer.page("integration-form", view, status: .badRequest, noStore: true)
        }
    }

    @Sendable func editForm(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing integrations")
        let integration = try await self.hub.integrations.get(try context.parameters.require("id"), by: principal)
        return try self.renderer.page("integration-form", self.editView(integration, context: context))
    }

    func editView(_ integration: Integration, context: ConduitRequestContext) -> FormView {
        let settings = integration.settings
        var view = FormView(
            chrome: Chrome(title: "Edit \(integration.name)", section: .integrations, signedIn: context.signedIn, flash: nil), editing: true,
            action: Self.path(integration.id) + "/edit", id: integration.id
        )
        view.name = integration.name
        view.regions = (Self.regions.contains(settings.region) ? Self.regions : [settings.region] + Self.regions)
            .map { Choice(value: $0, selected: $0 == settings.region) }
        view.credKeys = integration.credentials.kind == .accessKey
        view.credRole = integration.credentials.kind == .role
        view.credConduit = integration.credentials.kind == .default
        view.accessKeyId = integration.credentials.accessKeyID ?? ""
        view.hasSecret = integration.credentials.kind == .accessKey
        view.roleArn = integration.credentials.roleARN ?? ""
        view.externalId = integration.credentials.externalID ?? ""
        view.endpointUrl = settings.endpointURL ?? ""
        view.mqttEndpoint = settings.mqttEndpoint ?? ""
        view.thingGroup = settings.thingGroup ?? ""
        view.policyPerThing = settings.policyMode == .perThing
        view.policyShared = settings.policyMode == .shared
        view.policyNamed = !settings.conduitMakesPolicy
        view.policyName = settings.policyName ?? ""
        view.uplinkTopic = settings.uplinkTopic
        view.rawFormat = settings.payloadFormat == "raw"
        view.envelopeFormat = settings.payloadFormat == "envelope"
        view.bindAll = settings.binding.all
        view.bindLabels = !settings.binding.all && !settings.binding.labels.isEmpty
        view.bindDevices = !settings.binding.all && settings.binding.labels.isEmpty
        view.bindValues = (settings.binding.labels.isEmpty ? settings.binding.devices : settings.binding.labels).joined(separator: ", ")
        view.topicPreview = Self.preview(settings.uplinkTopic)
        view.advancedOpen = !view.endpointUrl.isEmpty || !view.mqttEndpoint.isEmpty
        return view
    }

    @Sendable func update(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing integrations")
        let id = try context.parameters.require("id")
        let integration = try await self.hub.integrations.get(id, by: principal)
        let form = try await ConsoleForm(request: &request, context: context)
        var draft = self.draft(form, editing: true)
        // The same credentials kind with blank secrets keeps the stored credentials.
        if form.string("credentials") == "conduit" && integration.credentials.kind == .default { draft.credentials = nil }
        do {
            // A blank secret keeps the stored one only for the same access key: anything else would be dropped unsaid.
            if (form.string("credentials") ?? "keys") == "keys", form.string("secretAccessKey") == nil,
                integration.credentials.kind != .accessKey || form.string("accessKeyId") != integration.credentials.accessKeyID
            {
                throw HubError.invalidField("credentials.secretAccessKey", "is required with a new access key id")
            }
            if form.string("credentials") == "role", form.string("roleArn") == nil {
                throw HubError.invalidField("credentials.roleArn", "is required")
            }
            _ = try await self.hub.integrations.update(id, with: draft, by: principal)
            return redirect(to: Self.path(id), flash: .ok("Saved."), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict || error.kind == .forbidden || error.kind == .upstream {
            var view = self.editView(integration, context: context)
            self.refill(form, into: &view)
            view.hasSecret = integration.credentials.kind == .accessKey
            Self.place(error, in: &view)
            view.chrome.flash = .init(text: error.message, kind: "error", isError: true)
            return try self.renderer.page("integration-form", view, status: .badRequest, noStore: true)
        }
    }

    // MARK: One integration

    struct Setting: Sendable {
        var name: String
        var value: String
    }

    struct DeviceRow: Sendable {
        var id: String
        var state: String
        var error: String
        var attempts: Int
    }

    struct Count: Sendable {
        var state: String
        var count: Int
        var failing: Bool
    }

    struct GatewayView: Sendable {
        var thingName: String
        var state: String
        var certificateID: String
        var source: String
        var endpoint: String?
        var connected: String
        var connectionError: String?
    }

    struct ShowPage: Sendable {
        var chrome: Chrome
        var id: String
        var name: String
        var status: String
        var active: Bool
        var deleting: Bool
        var settings: [Setting]
        var counts: [Count]
        var deviceCount: Int
        var devices: [DeviceRow]
        var moreDevices: Bool
        var errors: [DeviceRow]
        var gateway: GatewayView?
        var deleteWarning: String
    }

    @Sendable func show(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "reading integrations")
        let overview = try await self.hub.integrations.overview(try context.parameters.require("id"), by: principal)
        let integration = overview.integration
        let settings = integration.settings
        let credentials: String =
            switch integration.credentials.kind {
            case .accessKey: "access key \(integration.credentials.accessKeyID ?? "") (secret hidden)"
            case .role: "role \(integration.credentials.roleARN ?? "")" + (integration.credentials.externalID.map { ", ExternalId \($0)" } ?? "")
            case .default: "Conduit's own credentials"
            }
        let binding =
            settings.binding.all ? "all devices"
            : settings.binding.labels.isEmpty ? "devices: " + settings.binding.devices.joined(separator: ", ")
            : "labels: " + settings.binding.labels.joined(separator: ", ")
        var list: [Setting] = [
            Setting(name: "Region", value: settings.region),
            Setting(name: "Credentials", value: credentials),
            Setting(name: "Data endpoint", value: integration.dataEndpoint ?? "not known yet"),
            Setting(name: "Thing group", value: settings.thingGroup ?? "none"),
            Setting(name: "Policy", value: Self.policy(settings, integrationID: integration.id)),
            Setting(name: "Uplink topic", value: settings.uplinkTopic),
            Setting(name: "Payload format", value: settings.payloadFormat),
            Setting(name: "Downlink prefix", value: settings.downlinkPrefix),
            Setting(name: "Binds", value: binding),
        ]
        if let url = settings.endpointURL { list.insert(Setting(name: "AWS IoT endpoint URL", value: url), at: 1) }
        if let endpoint = settings.mqttEndpoint { list.append(Setting(name: "MQTT endpoint", value: endpoint)) }
        if !settings.thingAttributes.isEmpty { list.append(Setting(name: "Thing attributes", value: settings.thingAttributes.joined(separator: ", "))) }
        let row = { (record: ProvisioningJob) in
            DeviceRow(id: record.deviceID, state: record.state.rawValue, error: record.lastError ?? "", attempts: record.attempts)
        }
        let gateway = overview.gateway.map { record in
            GatewayView(
                thingName: Integrations.gatewayThingName(integration.id), state: record.state.rawValue,
                certificateID: record.progress.certificateID ?? "", source: settings.gatewayCertificate == nil ? "aws" : "registered",
                endpoint: overview.gatewayConnection?.endpoint,
                connected: overview.gatewayConnection.map { $0.connected ? "connected" : "not connected" } ?? "not run by this node",
                connectionError: overview.gatewayConnection?.lastError.flatMap { $0.isEmpty ? nil : $0 }
            )
        }
        let provisioned = overview.deviceCount
        let view = ShowPage(
            chrome: Chrome(title: integration.name, section: .integrations, signedIn: context.signedIn, flash: takeFlash(request)),
            id: integration.id, name: integration.name,
            status: integration.status == .deleting ? "deleting" : (integration.active ? "active" : "paused"),
            active: integration.active, deleting: integration.status == .deleting, settings: list,
            counts: AWSProvisioningState.allCases.compactMap { state in
                overview.stateCounts[state].map { Count(state: state.rawValue, count: $0, failing: state == .failed) }
            },
            deviceCount: overview.deviceCount, devices: overview.devices.map(row),
            moreDevices: overview.deviceCount > overview.devices.count, errors: overview.latestErrors.map(row), gateway: gateway,
            deleteWarning: "Delete \(integration.name)? Conduit removes from AWS what it made there: the thing, certificate and policy of each of its \(provisioned) device\(provisioned == 1 ? "" : "s"), its downlink gateway"
                + (integration.createdGroups.isEmpty ? "" : ", and the thing group \(integration.createdGroups.joined(separator: ", "))")
                + ". The devices stay in Conduit."
        )
        var response = try self.renderer.page("integration", view)
        return response.clearingFlash(request)
    }

    /// The policy line of the integration's page.
    static func policy(_ settings: IntegrationSettings, integrationID: String) -> String {
        switch settings.policyMode {
        case .perThing: "one per thing, made by Conduit"
        case .shared: "one for all things, made by Conduit (conduit-shared@\(integrationID), thing policy variables)"
        case .named(let name): "\(name) (existing)"
        }
    }

    @Sendable func reconcile(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: Self.path(id)) {
            let drift = try await self.hub.integrations.reconcile(id, by: principal)
            if drift.isEmpty { return "Reconciled: AWS matches Conduit; nothing to repair." }
            return "Reconciled: repaired " + drift.map { "\($0.deviceID) (\($0.repairs.joined(separator: ", ")))" }.joined(separator: "; ") + "."
        }
    }

    func setActive(_ active: Bool, request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        return try await act(request, back: Self.path(id)) {
            var draft = IntegrationDraft()
            draft.active = active
            _ = try await self.hub.integrations.update(id, with: draft, by: principal)
            return active ? "Resumed: uplinks and downlinks flow again." : "Paused: no uplinks are forwarded and the downlink gateway disconnects until you resume."
        }
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let principal = try context.requirePrincipal()
        let id = try context.parameters.require("id")
        let integration = try await self.hub.integrations.delete(id, by: principal)
        return redirect(
            to: "/integrations", flash: .ok("\(integration.name) is being deleted: what it made in AWS is being removed, then it disappears from this list."),
            request: request
        )
    }
}
