import Foundation
import Logging
import MQTT
import MQTTBroker
import Metrics
import Store

/// The broker's view of the registry: devices connect with client id = username = device id and
/// password = device secret, only while accepted, and use only their own topics; what they
/// publish under `devices/{id}/` is stored in their message history before it is acknowledged.
public struct DeviceBrokerAccess: MQTTAuthenticator, MQTTAuthorizer, MQTTPublishObserver, MQTTDeliveryObserver {
    let hub: Hub

    public init(hub: Hub) {
        self.hub = hub
    }

    public func authenticate(_ request: MQTTConnectRequest) async -> MQTTAuthenticationResult {
        let deviceID = request.clientIdentifier
        guard Validation.isDeviceID(deviceID) else { return .reject(.badUserNameOrPassword) }
        if let commonName = request.certificateCommonName {
            // Mutual TLS: a certificate our CA signed, whose CN is the device id, is the credential.
            guard commonName == deviceID else {
                self.hub.logger.info(
                    "MQTT connect refused: certificate CN is not the client id",
                    metadata: [LogKey.deviceID: "\(deviceID)", "conduit.certificate_cn": "\(commonName)"]
                )
                return .reject(.notAuthorized)
            }
            do {
                guard let device = try await self.hub.store.session.devices.get(id: deviceID) else {
                    return .reject(.notAuthorized)
                }
                guard device.status == .accepted else { return .reject(.notAuthorized) }
                if let password = request.password, !Secrets.verify(secret: String(buffer: password), against: device.secretHash) {
                    return .reject(.badUserNameOrPassword)
                }
                return .accept(principal: deviceID)
            } catch {
                self.hub.logger.error("MQTT authentication failed", metadata: ["error": "\(error)"])
                return .reject(.serverUnavailable)
            }
        }
        guard let username = request.username, username == deviceID, let password = request.password else {
            self.hub.logger.info("MQTT connect refused: user name must be the client id", metadata: [LogKey.deviceID: "\(deviceID)"])
            return .reject(.badUserNameOrPassword)
        }
        do {
            guard let device = try await self.hub.devices.verifySecret(deviceID: deviceID, secret: String(buffer: password)) else {
                Counter(label: "conduit_mqtt_connect_refused_total", dimensions: [("reason", "credentials")]).increment()
                return .reject(.badUserNameOrPassword)
            }
            guard device.status == .accepted else {
                Counter(label: "conduit_mqtt_connect_refused_total", dimensions: [("reason", device.status.rawValue)]).increment()
                self.hub.logger.info(
                    "MQTT connect refused: device is \(device.status.rawValue)", metadata: [LogKey.deviceID: "\(deviceID)"]
                )
                return .reject(.notAuthorized)
            }
            return .accept(principal: deviceID)
        } catch {
            self.hub.logger.error("MQTT authentication failed", metadata: ["error": "\(error)"])
            return .reject(.serverUnavailable)
        }
    }

    /// `devices/{id}` and below, and the device's shadow topics.
    public func mayPublish(principal: String, topic: String) -> Bool {
        Self.isOwn(topic, device: principal)
    }

    /// The same space, with no wildcard standing for the device id.
    public func maySubscribe(principal: String, filter: String) -> Bool {
        Self.isOwn(filter, device: principal)
    }

    static func isOwn(_ topic: String, device: String) -> Bool {
        let own = "devices/\(device)"
        let shadow = "$aws/things/\(device)/shadow"
        for prefix in [own, shadow] where topic == prefix || topic.hasPrefix(prefix + "/") {
            return true
        }
        return false
    }

    public func messagePublished(principal: String, clientIdentifier: String, message: MQTTBrokerMessage) async throws -> MQTTPublishVerdict {
        guard message.topic == "devices/\(principal)" || message.topic.hasPrefix("devices/\(principal)/") else { return .accepted }
        return try await self.hub.messages.ingest(deviceID: principal, message: message)
    }
}

extension DeviceBrokerAccess {
    /// A device subscribed to its downlink topic: what waits in its queue goes out now.
    public func clientSubscribed(clientIdentifier: String, principal: String, filters: [String]) {
        let topic = Downlinks.topic(principal)
        guard filters.contains(where: { MQTTTopic.matches(filter: $0, topic: topic) }) else { return }
        let hub = self.hub
        Task { await hub.downlinks.sendPending(to: principal) }
    }

    /// The device acknowledged a downlink: it leaves the queue.
    public func messageDelivered(clientIdentifier: String, deliveryID: Int) {
        let hub = self.hub
        // Noted now, as the broker lets go of it, so that a pass running before the removal
        // below does not send it again.
        hub.acknowledgedDownlinks.withLock { _ = $0.insert(deliveryID) }
        Task { await hub.downlinks.delivered(deviceID: clientIdentifier, sequence: deliveryID) }
    }
}

extension MQTTBroker: DeviceConnectionControl {
    public func disconnectDevice(_ deviceID: String) {
        self.disconnect(clientIdentifier: deviceID, reason: .notAuthorized)
    }

    public func send(_ message: MQTTBrokerMessage) {
        self.publish(message)
    }

    public func pendingDeliveryIDs(_ deviceID: String) -> Set<Int> {
        self.pendingDeliveryIDs(clientIdentifier: deviceID)
    }
}
