import Foundation
import Hub
import Hummingbird
import HTTPAPI

/// What the device page's forms do: each reads the form, calls the hub as the API does, and
/// redirects back (or shows the page again with the error beside the form).
struct DeviceActions {
    let hub: Hub
    let renderer: ConsoleRenderer

    func register(on group: RouterGroup<ConduitRequestContext>) {
        for action in LifecycleAction.allCases {
            group.post("devices/{id}/\(action.rawValue)") { request, context in
                try await self.lifecycle(action, request: request, context: context)
            }
        }
        group.post("devices/{id}/edit", use: self.edit)
        group.post("devices/{id}/delete", use: self.delete)
        group.post("devices/{id}/secret", use: self.rotateSecret)
        group.post("devices/{id}/downlinks", use: self.queueDownlink)
        group.post("devices/{id}/downlinks/clear", use: self.clearDownlinks)
        group.post("devices/{id}/shadow", use: self.updateShadow)
        group.post("devices/{id}/aws/{integrationId}/credentials", use: self.credentials)
        group.post("devices/{id}/aws/{integrationId}/rotate", use: self.rotateCredentials)
    }

    static func devicePath(_ id: String) -> String { "/devices/\(DeviceView.pathComponent(id))" }

    func lifecycle(_ action: LifecycleAction, request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "\(action.rawValue)ing devices")
        return try await act(request, back: Self.devicePath(id)) {
            let device = try await self.hub.devices.perform(action, on: id, by: principal)
            return "Device \(id) is \(device.status.rawValue)."
        }
    }

    @Sendable func edit(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "changing devices")
        let form = try await ConsoleForm(request: &request, context: context)
        do {
            let device = try await self.hub.devices.get(id, by: principal)
            let wanted = try form.keyValues("attributes", field: "attributes")
            // The form holds every attribute: one left out is removed.
            var attributes: [String: String?] = wanted.mapValues { $0 }
            for key in device.attributes.keys where wanted[key] == nil { attributes[key] = .some(nil) }
            _ = try await self.hub.devices.update(
                id, with: .init(name: form.raw("name") ?? "", labels: form.list("labels"), attributes: attributes), by: principal
            )
            return redirect(to: Self.devicePath(id), flash: .ok("Saved."), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            return try await self.again(request, context: context, id: id, message: error.message) { forms in
                forms.editError = error.message
                forms.edit = (form.raw("name") ?? "", form.raw("labels") ?? "", form.raw("attributes") ?? "")
            }
        }
    }

    /// The device page again, with what a form holds and its error.
    func again(
        _ request: Request, context: ConduitRequestContext, id: String, message: String, status: HTTPResponse.Status = .badRequest,
        _ fill: (inout DeviceView.Forms) -> Void
    ) async throws -> Response {
        var forms = DeviceView.Forms()
        fill(&forms)
        return try await DeviceView.render(
            hub: self.hub, renderer: self.renderer, request: request, context: context, id: id, forms: forms, flash: .error(message), status: status
        )
    }

    @Sendable func delete(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "deleting devices")
        do {
            try await self.hub.devices.delete(id, by: principal)
            return redirect(to: "/devices", flash: .ok("Device \(id) deleted; its things in AWS are being removed."), request: request)
        } catch let error as HubError where error.kind == .conflict || error.kind == .notFound {
            return redirect(to: Self.devicePath(id), flash: .error(error.message), request: request)
        }
    }

    @Sendable func rotateSecret(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "rotating device secrets")
        let rotated = try await self.hub.devices.rotateSecret(of: id, by: principal)
        let view = DevicePages.CreatedPage(
            chrome: Chrome(title: "New device secret", section: .devices, signedIn: context.signedIn, flash: .ok("The old secret no longer works.")),
            id: rotated.device.id, name: rotated.device.name, secret: rotated.secret, title: "New device secret",
            explanation: "This is the device's new MQTT password, shown only this once. The device was disconnected and must use it from now on."
        )
        return try self.renderer.page("device-secret", view, noStore: true)
    }

    // MARK: Downlinks

    @Sendable func queueDownlink(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "queueing downlinks")
        let form = try await ConsoleForm(request: &request, context: context)
        let encoding = form.string("encoding") ?? "text"
        let text = form.raw("payload") ?? ""
        var filled = DeviceView.DownlinkForm(
            payload: text, isText: encoding == "text", isBase64: encoding == "base64", isHex: encoding == "hex",
            port: form.string("port") ?? "", confirmed: form.checked("confirmed")
        )
        do {
            let payload = try Self.decodePayload(text, encoding: encoding)
            var port: Int?
            if let value = form.string("port") {
                guard let parsed = Int(value) else { throw HubError.invalidField("port", "must be 0 to 255") }
                port = parsed
            }
            let queued = try await self.hub.downlinks.queue(.init(payload: payload, confirmed: form.checked("confirmed"), port: port), to: id, by: principal)
            return redirect(to: Self.devicePath(id) + "#downlinks", flash: .ok("Downlink \(queued.sequence) queued (\(payload.count) bytes)."), request: request)
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict {
            filled.isText = filled.isText || !(filled.isBase64 || filled.isHex)
            return try await self.again(request, context: context, id: id, message: error.message) { forms in
                forms.downlinkError = error.message
                forms.downlink = filled
            }
        }
    }

    /// The bytes of a downlink as typed: text (UTF-8), base64 or hex (spaces allowed).
    static func decodePayload(_ text: String, encoding: String) throws -> Data {
        switch encoding {
        case "text":
            return Data(text.utf8)
        case "base64":
            guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                throw HubError.invalidField("payload", "must be base64")
            }
            return data
        case "hex":
            let digits = text.filter { !$0.isWhitespace }
            guard digits.count % 2 == 0, digits.allSatisfy(\.isHexDigit) else {
                throw HubError.invalidField("payload", "must be hex: pairs of 0-9 a-f")
            }
            var data = Data(capacity: digits.count / 2)
            var index = digits.startIndex
            while index < digits.endIndex {
                let next = digits.index(index, offsetBy: 2)
                data.append(UInt8(digits[index..<next], radix: 16)!)
                index = next
            }
            return data
        default:
            throw HubError.invalidField("encoding", "must be text, base64 or hex")
        }
    }

    @Sendable func clearDownlinks(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.operator, to: "clearing downlinks")
        return try await act(request, back: Self.devicePath(id) + "#downlinks") {
            let removed = try await self.hub.downlinks.clear(deviceID: id, by: principal)
            return "\(removed) downlink\(removed == 1 ? "" : "s") removed from the queue."
        }
    }

    // MARK: The shadow

    /// Writes desired state as edited: keys given are set, keys taken out are removed, and only if
    /// the shadow is still at the version the page showed; otherwise the page comes back with the
    /// shadow as it now is, the text as typed, and nothing written.
    @Sendable func updateShadow(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        var request = request
        let id = try context.parameters.require("id")
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "changing a device's desired state")
        let form = try await ConsoleForm(request: &request, context: context)
        let input = form.raw("desired") ?? ""
        let integrationID = form.string("integration")
        let name = form.string("shadow")
        var back = Self.devicePath(id) + "?integration=\(integrationID ?? "")"
        if let name { back += "&shadow=\(DeviceView.pathComponent(name))" }
        back += "#shadow"
        do {
            guard let data = input.data(using: .utf8), case .object(let wanted)? = try? JSONDecoder().decode(JSONValue.self, from: data) else {
                throw HubError.invalidField("desired", "must be a JSON object, like {\"led\": \"on\"}")
            }
            guard let versionText = form.string("version"), let version = Int(versionText) else {
                throw HubError.invalidField("version", "is missing: reload the page")
            }
            guard let updated = try await self.hub.shadows.replaceDesired(
                deviceID: id, integrationID: integrationID, name: name, desired: wanted, version: version, by: principal
            ) else {
                return redirect(to: back, flash: .ok("Nothing to change."), request: request)
            }
            return redirect(to: back, flash: .ok("Desired state saved: the shadow is at version \(updated.version ?? 0)."), request: request)
        } catch let error as HubError where error.code == "version_conflict" {
            return try await self.shadowChanged(
                request, context: context, id: id, input: input, target: (integrationID, name), now: error.details["currentVersion"] ?? 0
            )
        } catch let error as HubError where error.kind == .invalid || error.kind == .conflict || error.kind == .upstream {
            return try await self.again(request, context: context, id: id, message: error.message) { forms in
                forms.shadowInput = input
                forms.shadowError = error.message
                forms.shadowIntegration = integrationID
                forms.shadowName = name
            }
        }
    }

    private func shadowChanged(
        _ request: Request, context: ConduitRequestContext, id: String, input: String, target: (integration: String?, name: String?), now: Int
    ) async throws -> Response {
        let message = "The shadow changed since you opened it: it is now at version \(now). Your edit was not saved; it is below, beside the current state."
        return try await self.again(request, context: context, id: id, message: message, status: .conflict) { forms in
            forms.shadowInput = input
            forms.shadowConflict = message
            forms.shadowIntegration = target.integration
            forms.shadowName = target.name
        }
    }

    // MARK: AWS credentials

    struct CredentialsPage: Sendable {
        var chrome: Chrome
        var deviceID: String
        var certificate: String
        var privateKey: String
        var rootCA: String
        var endpoint: String
        var clientID: String
        var port: Int
        var connection: String
    }

    @Sendable func credentials(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let integrationID = try context.parameters.require("integrationId")
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "fetching device credentials")
        do {
            let bundle = try await self.hub.integrations.issueCredentials(deviceID: id, integrationID: integrationID, by: principal)
            let connection: [String: Any] = [
                "endpoint": bundle.endpoint ?? "", "port": bundle.port, "clientId": bundle.clientID, "thingName": bundle.thingName,
                "region": bundle.region, "certificateId": bundle.certificateID,
            ]
            let json = (try? JSONSerialization.data(withJSONObject: connection, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
                .map { String(decoding: $0, as: UTF8.self) } ?? "{}"
            let view = CredentialsPage(
                chrome: Chrome(title: "Credentials for \(id)", section: .devices, signedIn: context.signedIn, flash: nil),
                deviceID: id, certificate: bundle.certificatePem, privateKey: bundle.privateKey,
                rootCA: bundle.rootCA ?? "", endpoint: bundle.endpoint ?? "", clientID: bundle.clientID, port: bundle.port, connection: json
            )
            return try self.renderer.page("credentials", view, noStore: true)
        } catch let error as HubError where error.kind == .conflict || error.kind == .notFound {
            return redirect(to: Self.devicePath(id), flash: .error(error.message), request: request)
        }
    }

    @Sendable func rotateCredentials(_ request: Request, context: ConduitRequestContext) async throws -> Response {
        let id = try context.parameters.require("id")
        let integrationID = try context.parameters.require("integrationId")
        let principal = try context.requirePrincipal()
        try principal.require(.admin, to: "rotating device credentials")
        return try await act(request, back: Self.devicePath(id)) {
            _ = try await self.hub.integrations.rotateCredentials(deviceID: id, integrationID: integrationID, by: principal)
            return "A new key and certificate are being made; the old certificate is retired once they are in place. Fetch the new credentials when the state is provisioned."
        }
    }
}
