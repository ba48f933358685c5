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
        let downlink = try await self.hub.store.session.downlinks.append(
            Downlink(
                tenantID: device.tenantID, deviceID: deviceID, payload: request.payload, confirmed: request.confirmed, port: request.port,
                source: principal.actor, createdAt: self.hub.now()
            )
        )
        Counter(label: "conduit_downlinks_queued_total").increment()
        await self.sendPending(to: deviceID)
        return downlink
    }

    /// The device's queue, oldest first.
    public func list(deviceID: String, by principal: Principal) async throws -> [Downlink] {
        _ = try await self.hub.devices.get(deviceID, by: principal)
        return try await self.hub.store.session.downlinks.list(deviceID: deviceID, limit: 1000)
    }

    /// Empties the device's queue (operator); returns how many downlinks went.
    public func clear(deviceID: String, by principal: Principal) async throws -> Int {
        try principal.require(.operator, to: "clearing downlinks")
        _ = try await self.hub.devices.get(deviceID, by: principal)
        return try await self.hub.store.session.downlinks.deleteAll(deviceID: deviceID)
    }

    /// Hands the broker what waits for the device and its session does not hold already; the
    /// broker delivers it if the device is subscribed.
    func sendPending(to deviceID: String) async {
        guard let broker = self.hub.broker else { return }
        do {
            let pending = broker.pendingDeliveryIDs(deviceID)
            for downlink in try await self.hub.store.session.downlinks.list(deviceID: deviceID, limit: 1000)
            where !pending.contains(downlink.sequence) {
                broker.send(Self.message(downlink))
            }
        } catch {
            self.hub.logger.warning("cannot read a downlink queue", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
        }
    }

    /// The device acknowledged a downlink: it leaves the queue.
    func delivered(deviceID: String, sequence: Int) async {
        do {
            if try await self.hub.store.session.downlinks.delete(deviceID: deviceID, sequence: sequence) {
                Counter(label: "conduit_downlinks_delivered_total").increment()
            }
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
