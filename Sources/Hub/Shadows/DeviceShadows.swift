import AWS
import AWSIoT
import Foundation
import Logging
import MQTT
import MQTTBroker
import Metrics
import NIOCore
import Store
import Synchronization

/// A device's own shadow topics, served as AWS IoT's shadow service serves them: firmware written
/// for AWS IoT publishes on `$aws/things/{id}/shadow/…/update`, `get` or `delete`, Conduit applies
/// the request to the shadow in AWS through the device's shadow integration, and the answer comes
/// back on `…/accepted` or `…/rejected` with AWS's body. Changes of desired state, made through
/// Conduit or seen from AWS through the integration's gateway, reach the device on
/// `update/documents` and `update/delta`.
public struct DeviceShadows: Sendable {
    let hub: Hub

    public enum Limits {
        /// How long a request waits for AWS: past it, the device gets a 503 on `…/rejected`, as
        /// AWS's own broker reports a failure, instead of waiting for ever.
        public static let answerWithin: Duration = .seconds(10)
        /// A device's requests waiting or in progress; more are rejected with 429, as AWS rejects
        /// more than 10 in flight on one connection.
        public static let inFlight = 10
        /// Named shadows looked at when a device subscribes to their deltas with a wildcard.
        public static let namedShadowsOnSubscribe = 10
    }

    // MARK: Requests

    /// Answers a device's request on its shadow topic, after its earlier ones, and returns once
    /// the answer is on its way: the broker acknowledges the request only then.
    public func answer(deviceID: String, request topic: ShadowTopic, payload: [UInt8]) async {
        let queued = self.hub.shadowRequests.enqueue(deviceID, limit: Limits.inFlight) {
            await self.serve(deviceID: deviceID, topic: topic, payload: payload)
        }
        guard let queued else {
            let (request, _) = ShadowMessages.request(topic.operation, payload: payload)
            self.reject(
                topic, ShadowMessages.Rejection(429, "Too Many Requests: more than \(Limits.inFlight) shadow requests of this device are in flight"),
                clientToken: request.clientToken, deviceID: deviceID
            )
            return
        }
        await queued.value
    }

    private func serve(deviceID: String, topic: ShadowTopic, payload: [UInt8]) async {
        let (request, refusal) = ShadowMessages.request(topic.operation, payload: payload)
        if let refusal { return self.reject(topic, refusal, clientToken: request.clientToken, deviceID: deviceID) }
        do {
            guard let device = try await self.hub.store.session.devices.get(id: deviceID),
                let integration = try await self.hub.shadows.shadowIntegration(tenantID: device.tenantID, deviceID: deviceID)
            else {
                throw ShadowMessages.Rejection(
                    404, "Thing not found: device '\(deviceID)' has no thing in AWS IoT; a device accepted into an integration has a shadow there"
                )
            }
            let client = try self.hub.connections.dataClient(for: integration)
            try await Self.within(Limits.answerWithin) {
                switch topic.operation {
                case .get: try await self.get(topic, request, client: client, deviceID: deviceID)
                case .update: try await self.update(topic, request, client: client, deviceID: deviceID)
                case .delete: try await self.delete(topic, request, client: client, deviceID: deviceID)
                }
            }
            Counter(label: "conduit_shadow_requests_total", dimensions: [("operation", topic.operation.rawValue), ("outcome", "accepted")]).increment()
        } catch {
            self.reject(topic, Self.rejection(for: error), clientToken: request.clientToken, deviceID: deviceID)
        }
    }

    private func get(_ topic: ShadowTopic, _ request: ShadowMessages.Request, client: AWSIoTDataClient, deviceID: String) async throws {
        guard let bytes = try await client.getThingShadow(thing: deviceID, name: topic.name) else { throw Self.noShadow(topic) }
        var answer = try Self.object(bytes)
        if let token = request.clientToken { answer["clientToken"] = .string(token) }
        self.send(topic.answering(.accepted), .object(answer))
    }

    private func update(_ topic: ShadowTopic, _ request: ShadowMessages.Request, client: AWSIoTDataClient, deviceID: String) async throws {
        // The shadow before: for `update/documents`, and for a version given to a shadow that
        // does not exist (AWS's REST call has no version to compare it with).
        let previous = try await client.getThingShadow(thing: deviceID, name: topic.name).flatMap { try? Self.object($0) }.flatMap {
            ShadowMessages.Snapshot($0)
        }
        var body: [String: JSONValue] = ["state": request.state ?? .null]
        if let version = request.version {
            if previous != nil {
                body["version"] = .integer(Int64(version))
            } else if version != 0 {
                throw ShadowMessages.Rejection(409, "Version conflict")
            }
        }
        if let token = request.clientToken { body["clientToken"] = .string(token) }
        var answer = try Self.object(try await client.updateThingShadow(thing: deviceID, name: topic.name, document: JSONValue.object(body).encoded))
        if let token = request.clientToken { answer["clientToken"] = .string(token) }
        self.send(topic.answering(.accepted), .object(answer))
        // What AWS sends after an accepted update; only when nothing else changed the shadow in between.
        let before = previous ?? ShadowMessages.Snapshot(version: 0, timestamp: 0)
        guard let current = before.applying(state: request.state, answer: answer), previous == nil || before.version + 1 == current.version else {
            return
        }
        let desiredChanged: Bool
        switch request.state {
        case .object(let sections)?: desiredChanged = sections["desired"] != nil
        case .null?: desiredChanged = true
        default: desiredChanged = false
        }
        self.changed(deviceID: deviceID, name: topic.name, previous: previous, current: current, clientToken: request.clientToken, desiredChanged: desiredChanged)
    }

    private func delete(_ topic: ShadowTopic, _ request: ShadowMessages.Request, client: AWSIoTDataClient, deviceID: String) async throws {
        let bytes: [UInt8]
        do {
            bytes = try await client.deleteThingShadow(thing: deviceID, name: topic.name)
        } catch let error as AWSError where error.isNotFound {
            throw Self.noShadow(topic)
        }
        var answer = (try? Self.object(bytes)) ?? [:]
        if answer["timestamp"] == nil { answer["timestamp"] = .integer(Int64(self.hub.now().timeIntervalSince1970)) }
        if let token = request.clientToken { answer["clientToken"] = .string(token) }
        self.send(topic.answering(.accepted), .object(answer))
    }

    // MARK: Changes

    /// The shadow changed (by the device, through Conduit, or in AWS): the device hears
    /// `update/documents`, and `update/delta` when desired changed and differs from reported,
    /// each change once (by version).
    func changed(
        deviceID: String, name: String?, previous: ShadowMessages.Snapshot?, current: ShadowMessages.Snapshot, clientToken: String?, desiredChanged: Bool,
        documents: [UInt8]? = nil
    ) {
        guard self.hub.shadowVersions.markSent(deviceID: deviceID, name: name, version: current.version) else { return }
        let topic = ShadowTopic(thing: deviceID, name: name, operation: .update)
        var messages = [
            RelayedMessage(
                topic: topic.answering(.documents).topic,
                payload: Data(documents ?? ShadowMessages.documents(previous: previous, current: current, clientToken: clientToken).encoded)
            )
        ]
        if desiredChanged, let delta = ShadowMessages.deltaMessage(current, clientToken: clientToken) {
            messages.append(RelayedMessage(topic: topic.answering(.delta).topic, payload: Data(delta.encoded)))
        }
        self.relay(messages, name: name, version: current.version, to: deviceID)
    }

    /// One message of a shadow's change.
    struct RelayedMessage: Codable {
        var topic: String
        /// base64 in the mail's JSON.
        var payload: Data
    }

    /// A shadow's change as a node's mail carries it to the node holding the device: its version,
    /// so that one overtaken by a newer on the way is dropped there, as here.
    struct RelayedChange: Codable {
        var name: String?
        var version: Int
        var messages: [RelayedMessage]
    }

    /// Sends a change's messages to the device: here when it is connected here, or no other node
    /// holds it (an offline session here keeps them); else as mail to the node that holds it.
    private func relay(_ messages: [RelayedMessage], name: String?, version: Int, to deviceID: String) {
        guard let broker = self.hub.broker else { return }
        if broker.isConnected(deviceID) || self.hub.clusterNode.withLock({ $0 }) == nil {
            for message in messages { self.send(message, to: deviceID) }
            return
        }
        guard let encoded = try? JSONEncoder().encode(RelayedChange(name: name, version: version, messages: messages)) else { return }
        let body = String(decoding: encoded, as: UTF8.self)
        Task { [hub = self.hub] in
            switch await hub.clusterRouting.tell(deviceID, .shadow, body: body) {
            case .elsewhere, .failed:
                // Failed: logged; the device hears the current delta when it next subscribes.
                break
            case .notElsewhere:
                for message in messages { DeviceShadows(hub: hub).send(message, to: deviceID) }
            }
        }
    }

    /// Sends what another node's `shadow` mail carries for a device held here, unless a newer
    /// version of that shadow went to the device already.
    func deliver(mailBody body: String?, to deviceID: String) {
        guard let body, let change = try? JSONDecoder().decode(RelayedChange.self, from: Data(body.utf8)) else {
            self.hub.logger.notice("shadow mail unreadable", metadata: [LogKey.deviceID: "\(deviceID)"])
            return
        }
        guard self.hub.shadowVersions.markSent(deviceID: deviceID, name: change.name, version: change.version) else { return }
        for message in change.messages { self.send(message, to: deviceID) }
    }

    /// Sends one of the device's shadow messages; only ever on that device's own shadow topics.
    private func send(_ message: RelayedMessage, to deviceID: String) {
        guard message.topic.hasPrefix(ShadowTopic.prefix(thing: deviceID, name: nil) + "/") else { return }
        self.publish(message.topic, ByteBuffer(bytes: message.payload))
    }

    /// `update/documents` that AWS published, as the integration's gateway received it: relayed to
    /// the device when the integration serves its shadow and Conduit has not sent that version yet.
    func documentsFromAWS(topic: ShadowTopic, payload: [UInt8], integration: Integration) async throws {
        guard topic.answer == .documents,
            let device = try await self.hub.store.session.devices.get(tenantID: integration.tenantID, id: topic.thing), device.status == .accepted,
            try await self.hub.shadows.shadowIntegration(tenantID: device.tenantID, deviceID: device.id)?.id == integration.id
        else { return }
        guard let body = try? Self.object(payload), let current = body["current"]?.object.flatMap({ ShadowMessages.Snapshot($0, timestamp: body["timestamp"].flatMap(ShadowDocument.integer)) }) else {
            self.hub.logger.notice("shadow documents from AWS unreadable", metadata: [LogKey.deviceID: "\(topic.thing)", LogKey.integrationID: "\(integration.id)"])
            return
        }
        let previous = body["previous"]?.object.flatMap { ShadowMessages.Snapshot($0) }
        var clientToken: String?
        if case .string(let token)? = body["clientToken"] { clientToken = token }
        self.changed(
            deviceID: device.id, name: topic.name, previous: previous, current: current, clientToken: clientToken,
            desiredChanged: previous?.desired != current.desired, documents: payload
        )
    }

    /// A device subscribed: for each of its shadows whose `update/delta` the filters take, the
    /// current delta now, as a fresh `get` shows it, so that a device that was away learns what
    /// changed while it was.
    func deviceSubscribed(deviceID: String, filters: [String]) async {
        let classic = ShadowTopic(thing: deviceID, name: nil, operation: .update, answer: .delta).topic
        var names: [String?] = []
        if filters.contains(where: { MQTTTopic.matches(filter: $0, topic: classic) }) { names.append(nil) }
        let namedFilters = filters.filter { $0.hasPrefix(ShadowTopic.prefix(thing: deviceID, name: nil) + "/") && !MQTTTopic.matches(filter: $0, topic: classic) }
        var wildcard = false
        for filter in namedFilters {
            if let topic = ShadowTopic(filter), topic.answer == .delta, let name = topic.name {
                names.append(name)
            } else if filter.contains("+") || filter.contains("#") {
                wildcard = true
            }
        }
        guard !names.isEmpty || wildcard else { return }
        do {
            guard let device = try await self.hub.store.session.devices.get(id: deviceID), device.status == .accepted,
                let integration = try await self.hub.shadows.shadowIntegration(tenantID: device.tenantID, deviceID: deviceID)
            else { return }
            let client = try self.hub.connections.dataClient(for: integration)
            try await Self.within(Limits.answerWithin) { [names, wildcard] in
                var names = names
                if wildcard {
                    for name in try await client.listNamedShadows(thing: deviceID).sorted().prefix(Limits.namedShadowsOnSubscribe) where !names.contains(name) {
                        let topic = ShadowTopic(thing: deviceID, name: name, operation: .update, answer: .delta).topic
                        if namedFilters.contains(where: { MQTTTopic.matches(filter: $0, topic: topic) }) { names.append(name) }
                    }
                }
                for name in names {
                    guard let bytes = try await client.getThingShadow(thing: deviceID, name: name),
                        let shadow = ShadowMessages.Snapshot(try Self.object(bytes)),
                        let delta = ShadowMessages.deltaMessage(shadow, clientToken: nil)
                    else { continue }
                    self.send(ShadowTopic(thing: deviceID, name: name, operation: .update, answer: .delta), delta)
                }
            }
        } catch {
            self.hub.logger.notice("cannot send a resubscribing device its shadow's delta", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
        }
    }

    // MARK: Plumbing

    private func reject(_ topic: ShadowTopic, _ rejection: ShadowMessages.Rejection, clientToken: String?, deviceID: String) {
        Counter(label: "conduit_shadow_requests_total", dimensions: [("operation", topic.operation.rawValue), ("outcome", "rejected")]).increment()
        self.hub.logger.info(
            "shadow request rejected", metadata: [LogKey.deviceID: "\(deviceID)", "conduit.code": "\(rejection.code)", "conduit.reason": "\(rejection.message)"]
        )
        self.send(topic.answering(.rejected), rejection.body(clientToken: clientToken, timestamp: Int(self.hub.now().timeIntervalSince1970)))
    }

    private func send(_ topic: ShadowTopic, _ body: JSONValue) {
        self.send(topic, payload: body.encoded)
    }

    private func send(_ topic: ShadowTopic, payload: [UInt8]) {
        self.publish(topic.topic, ByteBuffer(bytes: payload))
    }

    private func publish(_ topic: String, _ payload: ByteBuffer) {
        self.hub.broker?.send(MQTTBrokerMessage(topic: topic, payload: payload, qos: .atLeastOnce))
    }

    private static func noShadow(_ topic: ShadowTopic) -> ShadowMessages.Rejection {
        ShadowMessages.Rejection(404, "No shadow exists with name: '\(topic.name ?? topic.thing)'")
    }

    static func object(_ bytes: [UInt8]) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONValue.parse(bytes) else { throw HubError.upstream("AWS answered a shadow that is not a JSON object") }
        return object
    }

    /// AWS's failures as the shadow service reports them to a device.
    static func rejection(for error: any Error) -> ShadowMessages.Rejection {
        switch error {
        case let rejection as ShadowMessages.Rejection:
            return rejection
        case let error as AWSError where error.code == "ConflictException" || error.statusCode == 409:
            return ShadowMessages.Rejection(409, "Version conflict")
        case let error as AWSError where error.statusCode == 413:
            return ShadowMessages.Rejection(413, "The payload exceeds the maximum size allowed")
        case let error as AWSError where error.isThrottling:
            return ShadowMessages.Rejection(429, "Too Many Requests: AWS IoT is throttling the integration's calls")
        case let error as AWSError where error.isNotFound:
            return ShadowMessages.Rejection(404, "Thing not found")
        case let error as AWSError where error.statusCode == 400 || error.code == "InvalidRequestException":
            return ShadowMessages.Rejection(400, error.message)
        case let error as AWSError where error.statusCode == 401 || error.statusCode == 403:
            return ShadowMessages.Rejection(503, "Service unavailable: AWS IoT refused the integration's credentials (\(error.code))")
        case let error as AWSError:
            return ShadowMessages.Rejection(503, "Service unavailable: AWS IoT answered \(error.code)")
        case let error as AWSIoTValidationError:
            return ShadowMessages.Rejection(400, "\(error.field) \(error.rule)")
        case is ShadowTimeout:
            return ShadowMessages.Rejection(503, "Service unavailable: AWS IoT did not answer within \(Limits.answerWithin.components.seconds) s")
        default:
            return ShadowMessages.Rejection(503, "Service unavailable: AWS IoT cannot be reached now")
        }
    }

    struct ShadowTimeout: Error {}

    /// Runs `work`, or throws ``ShadowTimeout`` once `limit` has passed (and cancels it).
    static func within(_ limit: Duration, _ work: @escaping @Sendable () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await work() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw ShadowTimeout()
            }
            defer { group.cancelAll() }
            try await group.next()
        }
    }
}

/// Each device's shadow requests, one at a time in the order they came, and at most a bound of
/// them waiting.
final class ShadowRequestLines: Sendable {
    private let lines = Mutex<[String: (count: Int, tail: Task<Void, Never>)]>([:])

    /// Runs `work` after the device's earlier requests; nil, and not run, when `limit` of them
    /// are waiting or in progress.
    func enqueue(_ deviceID: String, limit: Int, _ work: @escaping @Sendable () async -> Void) -> Task<Void, Never>? {
        self.lines.withLock { lines in
            let line = lines[deviceID]
            guard (line?.count ?? 0) < limit else { return nil }
            let previous = line?.tail
            let task = Task {
                await previous?.value
                await work()
                self.finished(deviceID)
            }
            lines[deviceID] = ((line?.count ?? 0) + 1, task)
            return task
        }
    }

    private func finished(_ deviceID: String) {
        self.lines.withLock { lines in
            guard let line = lines[deviceID] else { return }
            if line.count <= 1 { lines[deviceID] = nil } else { lines[deviceID] = (line.count - 1, line.tail) }
        }
    }
}

/// The newest shadow version each device has been sent, so that a change Conduit made and AWS
/// then tells of too reaches the device once.
final class ShadowVersionsSent: Sendable {
    private let versions = Mutex<[String: Int]>([:])

    /// True, and noted, when `version` is newer than any sent for the shadow.
    func markSent(deviceID: String, name: String?, version: Int) -> Bool {
        let key = ShadowTopic.prefix(thing: deviceID, name: name)
        return self.versions.withLock { versions in
            if let sent = versions[key], sent >= version { return false }
            versions[key] = version
            return true
        }
    }
}
