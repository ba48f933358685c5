import Foundation
import Logging
import MQTT
import MQTTBroker
import Metrics
import NIOCore
import Store

/// Each device's durable downlink queue: what an operator (or, next, AWS) sends a device waits
/// here until the device acknowledges it on `devices/{id}/down` (QoS 1): sent at once when the
/// device is subscribed, else when it next subscribes; a crash or a restart loses none.
public struct Downlinks: Sendable {
    let hub: Hub

    /// AWS IoT's message size, the most a downlink may carry.
    public static let maximumPayload = 128 * 1024

    /// The topic a device receives its downlinks on.
    public static func topic(_ deviceID: String) -> String { "devices/\(deviceID)/down" }

    /// A downlink as a caller sends it.
    public struct Request: Sendable {
        public var payload: Data
        public var confirmed: Bool
        public var port: Int?

        public init(payload: Data, confirmed: Bool = false, port: Int? = nil) {
            self.payload = payload
            self.confirmed = confirmed
            self.port = port
        }
    }

    /// Checks a downlink's fields.
    static func validate(_ request: Request) throws {
        guard request.payload.count <= Self.maximumPayload else {
            throw HubError.invalidField("payload_raw", "must decode to at most \(Self.maximumPayload) bytes (AWS IoT's message size)")
        }
        if let port = request.port, !(0...255).contains(port) {
            throw HubError.invalidField("port", "must be 0 to 255")
        }
    }

    /// Queues a downlink for an accepted device of the principal's tenant (operator), and sends
    /// it now if the device is there to take it.
    public func queue(_ request: Request, to deviceID: String, by principal: Principal) async throws -> Downlink {
        try principal.require(.operator, to: "queueing downlinks")
        let device = try await self.hub.devices.get(deviceID, by: principal)
        try Self.validate(request)
        guard device.status == .accepted else {
            throw HubError.conflict(
                "device_not_accepted", "device '\(deviceID)' is \(device.status.rawValue); downlinks are for accepted devices"
            )
        }
        return try await self.enqueue(request, for: device, source: principal.actor)
    }

    /// Writes the downlink to the device's queue and hands the queue to the broker.
    private func enqueue(_ request: Request, for device: Device, source: String) async throws -> Downlink {
        let downlink = try await self.hub.store.session.downlinks.append(
            Downlink(
                tenantID: device.tenantID, deviceID: device.id, payload: request.payload, confirmed: request.confirmed, port: request.port,
                source: source, createdAt: self.hub.now()
            )
        )
        Counter(label: "conduit_downlinks_queued_total").increment()
        await self.sendPending(to: device.id)
        await self.hub.clusterRouting.tell(device.id, .downlink)
        return downlink
    }

    /// What became of a downlink that came from AWS.
    public enum Outcome: Sendable, Equatable {
        /// Queued for the device.
        case queued(Downlink)
        /// `{"clear_queue": true}`: the device's queue was emptied of this many.
        case cleared(Int)
        /// Recorded as an event (`downlink.skipped`) and let go: the subscription goes on.
        case skipped(reason: String)
    }

    /// Takes a downlink that arrived from AWS on `{downlinkPrefix}/{deviceId}/down`: a JSON object
    /// `{"payload_raw": base64, "confirmed"?: bool, "port"?: int}`, or `{"clear_queue": true}`. One
    /// for an unknown device, a device the integration does not provision, or malformed JSON is
    /// recorded as an event and skipped; it never throws, so it never breaks the subscription
    /// (a store that is down does throw: the message is then not acknowledged to AWS, which sends
    /// it again).
    public func receive(topic: String, payload: [UInt8], from integration: Integration) async throws -> Outcome {
        // The gateway receives only what it subscribed to, `{downlinkPrefix}/+/down`, so the
        // level before `down` is the device id; a message that was waiting in its session under
        // a prefix the integration had before is delivered too.
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard levels.count >= 3, levels.last == "down" else {
            let prefix = integration.settings.downlinkPrefix
            return try await self.skip("topic \(topic) is not \(prefix)/{deviceId}/down", deviceID: nil, integration: integration)
        }
        let deviceID = String(levels[levels.count - 2])
        guard Validation.isDeviceID(deviceID),
            let device = try await self.hub.store.session.devices.get(tenantID: integration.tenantID, id: deviceID),
            device.status == .accepted,
            let record = try await self.hub.store.session.awsThings.get(integrationID: integration.id, deviceID: deviceID),
            record.wanted == .active
        else {
            return try await self.skip(
                "no device '\(deviceID.prefix(128))' provisioned in this integration", deviceID: nil, integration: integration
            )
        }
        struct Body: Decodable {
            var payload_raw: String?
            var confirmed: Bool?
            var port: Int?
            var clear_queue: Bool?
        }
        let request: Request
        do {
            let body: Body
            do {
                body = try JSONDecoder().decode(Body.self, from: Data(payload))
            } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
                throw HubError.invalidField(context.codingPath.map(\.stringValue).joined(separator: "."), "has the wrong type")
            } catch {
                throw HubError.invalidField("body", "must be a JSON object")
            }
            if let clear = body.clear_queue {
                guard clear, body.payload_raw == nil else { throw HubError.invalidField("clear_queue", "must be true, and alone") }
                return .cleared(try await self.hub.store.session.downlinks.deleteAll(tenantID: integration.tenantID, deviceID: deviceID))
            }
            guard let encoded = body.payload_raw else { throw HubError.invalidField("payload_raw", "is required") }
            guard let bytes = Data(base64Encoded: encoded) else { throw HubError.invalidField("payload_raw", "must be base64") }
            request = Request(payload: bytes, confirmed: body.confirmed ?? false, port: body.port)
            try Self.validate(request)
        } catch let error as HubError {
            return try await self.skip(error.message, deviceID: deviceID, integration: integration)
        }
        return .queued(try await self.enqueue(request, for: device, source: "aws:\(integration.id)"))
    }

    private func skip(_ reason: String, deviceID: String?, integration: Integration) async throws -> Outcome {
        Counter(label: "conduit_downlinks_skipped_total").increment()
        try await self.hub.store.session.events.append(
            tenantID: integration.tenantID, type: EventType.downlinkSkipped, deviceID: deviceID, actor: "aws:\(integration.id)",
            data: EventLog.json(["integrationId": integration.id, "reason": reason]), at: self.hub.now()
        )
        return .skipped(reason: reason)
    }

    /// The device's queue, oldest first.
    public func list(deviceID: String, by principal: Principal) async throws -> [Downlink] {
        _ = try await self.hub.devices.get(deviceID, by: principal)
        return try await self.hub.store.session.downlinks.list(tenantID: principal.tenantID, deviceID: deviceID, limit: 1000)
    }

    /// Empties the device's queue (operator); returns how many downlinks went.
    public func clear(deviceID: String, by principal: Principal) async throws -> Int {
        try principal.require(.operator, to: "clearing downlinks")
        _ = try await self.hub.devices.get(deviceID, by: principal)
        return try await self.hub.store.session.downlinks.deleteAll(tenantID: principal.tenantID, deviceID: deviceID)
    }

    /// Hands the broker what waits for the device and its session does not hold already; the
    /// broker delivers it if the device is subscribed.
    ///
    /// One pass at a time per device (a call during a pass asks for one more after it), so two
    /// triggers at once cannot send a downlink twice or out of order.
    func sendPending(to deviceID: String) async {
        guard let broker = self.hub.broker else { return }
        let first = self.hub.downlinkPasses.withLock { passes -> Bool in
            if passes[deviceID] != nil {
                passes[deviceID] = true
                return false
            }
            passes[deviceID] = false
            return true
        }
        guard first else { return }
        repeat {
            do {
                if let device = try await self.hub.store.session.devices.get(id: deviceID) {
                    // The queue first, then what is on its way or acknowledged: a downlink acked
                    // between the two reads is in the second, never sent twice.
                    let queued = try await self.hub.store.session.downlinks.list(tenantID: device.tenantID, deviceID: deviceID, limit: 1000)
                    let inFlight = broker.pendingDeliveryIDs(deviceID).union(self.hub.acknowledgedDownlinks.withLock { $0 })
                    for downlink in queued where !inFlight.contains(downlink.sequence) {
                        broker.send(Self.message(downlink))
                    }
                }
            } catch {
                self.hub.logger.warning("cannot read a downlink queue", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
            }
        } while self.hub.downlinkPasses.withLock { passes -> Bool in
            if passes[deviceID] == true {
                passes[deviceID] = false
                return true
            }
            passes[deviceID] = nil
            return false
        }
    }

    /// The device acknowledged a downlink: it leaves the queue.
    func delivered(deviceID: String, sequence: Int) async {
        // Removed or not, it is no longer under way: a failed removal leaves it to be sent again.
        defer { self.hub.acknowledgedDownlinks.withLock { _ = $0.remove(sequence) } }
        do {
            if try await self.hub.store.session.downlinks.delete(deviceID: deviceID, sequence: sequence) {
                Counter(label: "conduit_downlinks_delivered_total").increment()
            }
            // A queue longer than one pass, or messages a full session dropped, go next.
            await self.sendPending(to: deviceID)
        } catch {
            // It stays queued and goes again: at least once.
            self.hub.logger.warning("cannot remove a delivered downlink", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
        }
    }

    /// The message the broker sends: the payload's bytes at QoS 1; to MQTT 5.0 devices,
    /// `confirmed` and `port` as user properties.
    static func message(_ downlink: Downlink) -> MQTTBrokerMessage {
        var properties = MQTTProperties.none
        if downlink.confirmed { properties.items.append(.userProperty("confirmed", "true")) }
        if let port = downlink.port { properties.items.append(.userProperty("port", String(port))) }
        return MQTTBrokerMessage(
            topic: Self.topic(downlink.deviceID), payload: ByteBuffer(bytes: downlink.payload), qos: .atLeastOnce, properties: properties,
            deliveryID: downlink.sequence
        )
    }
}
