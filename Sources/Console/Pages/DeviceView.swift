import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// The page of one device: what it is, its lifecycle, its AWS state per integration, its
/// messages (live), its downlink queue, its shadow and its events. Built here, so that a form
/// that failed re-renders the same page with its error beside it.
struct DeviceView: Sendable {
    struct CertificateRow: Sendable {
        var fingerprint: String
        var subject: String
        var notAfter: String
        var source: String
    }

    var chrome: Chrome
    var id: String
    var name: String
    var status: String
    var labels: [String]
    var editName: String
    var labelsText: String
    var attributes: [Attribute]
    var attributesText: String
    var created: String
    /// The enrolled TLS certificate: its fingerprint and validity; nil when none is.
    var certificate: CertificateRow?
    var actions: [Action]
    var aws: [AWSRow]
    var hasAWS: Bool
    var payloadViews: [PayloadLink]
    var payloadView: String
    var messages: [MessageRow]
    /// The live stream's address, on the newest page of messages only.
    var liveURL: String?
    var moreMessages: String?
    var downlinks: [DownlinkRow]
    var canSendDownlinks: Bool
    var shadow: ShadowView?
    var shadowUnavailable: String?
    var events: [EventPages.Row]
    var forms: Forms

    struct Attribute: Sendable {
        var key: String
        var value: String
    }

    struct Action: Sendable {
        var name: String
        var label: String
        var destructive: Bool
        var confirm: String?
    }

    struct AWSRow: Sendable {
        var integrationID: String
        var integrationName: String
        var state: String
        var failing: Bool
        var thingArn: String
        var certificateID: String
        var endpoint: String
        var lastError: String
        var attempts: Int
        var canIssue: Bool
        var issued: String?
    }

    struct PayloadLink: Sendable {
        var name: String
        var href: String
        var current: Bool
    }

    /// A message as the page shows it, and as the live stream sends it (JSON).
    struct MessageRow: Sendable, Encodable {
        var sequence: Int
        var topic: String
        var time: String
        var timeISO: String
        var payload: String
        var shownAs: String
        var qos: Int
    }

    struct DownlinkRow: Sendable {
        var sequence: Int
        var payload: String
        var port: String
        var confirmed: Bool
        var source: String
        var queued: String
    }

    struct ShadowView: Sendable {
        var integrationID: String
        var integrationName: String
        /// The device's own shadow topics use this integration's shadow.
        var servesDevice: Bool
        /// The device's other integrations with a thing, each a link to its shadow.
        var otherIntegrations: [NamedShadow]
        var alsoIn: Bool
        var shadowName: String?
        var names: [NamedShadow]
        var desired: String
        var reported: String
        var delta: String?
        var version: Int
        var time: String?
        var exists: Bool
        var desiredInput: String
        var conflict: String?
        var error: String?
    }

    struct NamedShadow: Sendable {
        var name: String
        var href: String
        var current: Bool
    }

    /// What the page's forms hold when one is shown again after an error.
    struct Forms: Sendable {
        var editError: String?
        var edit: (name: String, labels: String, attributes: String)?
        var downlinkError: String?
        var downlink = DownlinkForm()
        var shadowInput: String?
        /// The shadow the failed form wrote to: shown again, so that a second try goes to the same one.
        var shadowIntegration: String?
        var shadowName: String?
        var shadowConflict: String?
        var shadowError: String?
    }

    struct DownlinkForm: Sendable {
        var payload = ""
        var isText = true
        var isBase64 = false
        var isHex = false
        var port = ""
        var confirmed = false
    }

    static func render(
        hub: Hub, renderer: ConsoleRenderer, request: Request, context: ConduitRequestContext, id: String, forms: Forms, flash: Flash?,
        status: HTTPResponse.Status
    ) async throws -> Response {
        let principal = try context.requirePrincipal()
        let device = try await hub.devices.get(id, by: principal)
        let query = request.uri.queryParameters
        let payloadView = query["payload"].flatMap { Formatting.PayloadView(rawValue: String($0)) } ?? .json
        let statuses = try await hub.integrations.awsStatus(of: id, by: principal)
        let messages = try await hub.messages.list(deviceID: id, page: try PageRequest(limit: 20, cursor: query["before"].map(String.init)), by: principal)
        let downlinks = try await hub.downlinks.list(deviceID: id, by: principal)
        let events = try await hub.events.list(filter: .init(deviceID: id), page: try PageRequest(limit: 10), by: principal)
        let isAdmin = principal.role.includes(.admin)
        let canOperate = principal.role.includes(.operator)

        var view = DeviceView(
            chrome: Chrome(title: device.name, section: .devices, signedIn: context.signedIn, flash: flash),
            id: device.id, name: device.name, status: device.status.rawValue, labels: device.labels,
            editName: forms.edit?.name ?? device.name,
            labelsText: forms.edit?.labels ?? device.labels.joined(separator: ", "),
            attributes: device.attributes.sorted { $0.key < $1.key }.map { Attribute(key: $0.key, value: $0.value) },
            attributesText: forms.edit?.attributes ?? device.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n"),
            created: Formatting.time(device.createdAt),
            certificate: device.certificate.map {
                CertificateRow(fingerprint: $0.fingerprint, subject: $0.subject, notAfter: Formatting.time($0.notAfter), source: $0.source == "csr" ? "signed by Conduit" : "enrolled")
            },
            actions: canOperate ? Self.actions(for: device.status) : [],
            aws: statuses.map { status in
                let record = status.record
                return AWSRow(
                    integrationID: record.integrationID, integrationName: status.integration.name, state: record.state.rawValue,
                    failing: record.state == .failed || record.lastError != nil,
                    thingArn: record.progress.thingArn ?? "", certificateID: record.progress.certificateID ?? "",
                    endpoint: status.integration.dataEndpoint ?? "", lastError: record.lastError ?? "", attempts: record.attempts,
                    canIssue: isAdmin && record.state == .provisioned && record.progress.credentialsIssuedAt == nil && record.bound,
                    issued: record.progress.credentialsIssuedAt.map { Formatting.time($0) }
                )
            },
            hasAWS: !statuses.isEmpty,
            payloadViews: Formatting.PayloadView.allCases.map {
                PayloadLink(name: $0.rawValue, href: "/devices/\(Self.pathComponent(id))?payload=\($0.rawValue)#messages", current: $0 == payloadView)
            },
            payloadView: payloadView.rawValue,
            messages: messages.items.map { Self.messageRow($0, view: payloadView) },
            liveURL: query["before"] == nil
                ? "/devices/\(Self.pathComponent(id))/live?payload=\(payloadView.rawValue)&after=\(messages.items.first?.sequence ?? 0)" : nil,
            moreMessages: messages.nextCursor.map { "/devices/\(Self.pathComponent(id))?payload=\(payloadView.rawValue)&before=\($0)#messages" },
            downlinks: downlinks.map { downlink in
                DownlinkRow(
                    sequence: downlink.sequence, payload: Formatting.payload(downlink.payload, as: .text).text,
                    port: downlink.port.map(String.init) ?? "", confirmed: downlink.confirmed, source: downlink.source,
                    queued: Formatting.time(downlink.createdAt)
                )
            },
            canSendDownlinks: canOperate && device.status == .accepted,
            shadow: nil, shadowUnavailable: nil,
            events: events.items.map(EventPages.row),
            forms: forms
        )
        // The shadow lives in AWS: read it now, for the integration asked for, else the one the
        // device's own shadow topics use.
        let withThing = statuses.filter { $0.record.progress.thingArn != nil && ($0.record.wanted == .active || $0.record.wanted == .inactive) }
        let home = try? await hub.shadows.shadowIntegration(tenantID: principal.tenantID, deviceID: id)
        let wantedIntegration = forms.shadowIntegration ?? query["integration"].map(String.init)
        let chosen =
            wantedIntegration.flatMap { wanted in withThing.first { $0.record.integrationID == wanted } }
            ?? withThing.first { $0.record.integrationID == home?.id } ?? withThing.first
        if let chosen {
            let name = (forms.shadowName ?? query["shadow"].map(String.init)).flatMap { $0.isEmpty ? nil : $0 }
            var shadow = await Self.shadow(
                hub: hub, deviceID: id, integrationID: chosen.record.integrationID, name: name, principal: principal, forms: forms
            )
            shadow.integrationName = chosen.integration.name
            shadow.servesDevice = chosen.record.integrationID == home?.id
            shadow.otherIntegrations = withThing.filter { $0.record.integrationID != chosen.record.integrationID }.map {
                NamedShadow(name: $0.integration.name, href: "/devices/\(Self.pathComponent(id))?integration=\($0.record.integrationID)#shadow", current: false)
            }
            shadow.alsoIn = !shadow.otherIntegrations.isEmpty
            view.shadow = shadow
        } else {
            view.shadowUnavailable = statuses.isEmpty
                ? "No integration holds this device, so it has no shadow in AWS."
                : "The device's thing is not in AWS yet, so it has no shadow."
        }
        return try renderer.page("device", view, status: status)
    }

    static func shadow(
        hub: Hub, deviceID: String, integrationID: String, name: String?, principal: Principal, forms: Forms
    ) async -> ShadowView {
        var view = ShadowView(
            integrationID: integrationID, integrationName: integrationID, servesDevice: false, otherIntegrations: [], alsoIn: false, shadowName: name, names: [], desired: "{}", reported: "{}", delta: nil, version: 0, time: nil,
            exists: false, desiredInput: forms.shadowInput ?? "{}", conflict: forms.shadowConflict, error: forms.shadowError
        )
        do {
            let document = try await hub.shadows.get(deviceID: deviceID, integrationID: integrationID, name: name, by: principal)
            view.desired = Formatting.json(document.desired)
            view.reported = Formatting.json(document.reported)
            view.delta = document.delta.map(Formatting.json)
            view.version = document.version ?? 0
            view.exists = document.version != nil
            view.time = document.timestamp.map { Formatting.time(Date(timeIntervalSince1970: TimeInterval($0))) }
            if forms.shadowInput == nil { view.desiredInput = view.desired }
            let names = (try? await hub.shadows.list(deviceID: deviceID, integrationID: integrationID, by: principal)) ?? []
            let base = "/devices/\(Self.pathComponent(deviceID))?integration=\(integrationID)"
            view.names = [NamedShadow(name: "classic", href: base + "#shadow", current: name == nil)]
                + names.map { NamedShadow(name: $0, href: base + "&shadow=\(Self.pathComponent($0))#shadow", current: $0 == name) }
        } catch {
            view.error = (error as? HubError)?.message ?? "AWS did not answer: \(error)"
        }
        return view
    }

    static func messageRow(_ message: DeviceMessage, view: Formatting.PayloadView) -> MessageRow {
        let payload = Formatting.payload(message.payload, as: view)
        return MessageRow(
            sequence: message.sequence, topic: message.topic, time: Formatting.time(message.receivedAt),
            timeISO: Formatting.isoTime(message.receivedAt), payload: payload.text, shownAs: payload.shownAs.rawValue, qos: message.qos
        )
    }

    /// The lifecycle buttons a device in `status` offers: only the transitions allowed from it.
    static func actions(for status: DeviceStatus) -> [Action] {
        LifecycleAction.allCases.filter { $0.allowedFrom.contains(status) }.map { action in
            switch action {
            case .accept: Action(name: "accept", label: "Accept", destructive: false, confirm: nil)
            case .reject: Action(name: "reject", label: "Reject", destructive: false, confirm: nil)
            case .decommission:
                Action(
                    name: "decommission", label: "Decommission", destructive: true,
                    confirm: "Decommission this device for good? It is disconnected and removed from AWS (thing, certificate, policy), and cannot come back."
                )
            }
        }
    }

    /// An id as one path segment (ids may hold `:`; nothing else needs escaping, but be safe).
    static func pathComponent(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(CharacterSet(charactersIn: "/?#&="))) ?? value
    }
}
