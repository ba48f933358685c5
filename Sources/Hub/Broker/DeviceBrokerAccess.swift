import Foundation
import Logging
import MQTT
import MQTTBroker
import Metrics
import NIOCore
import Store

/// The broker's view of the registry: devices connect with client id = username = device id and
/// password = device secret, only while accepted, and use only their own topics; what they
/// publish under `devices/{id}/` is stored in their message history before it is acknowledged.
public struct DeviceBrokerAccess: MQTTAuthenticator, MQTTAuthorizer, MQTTPublishObserver, MQTTDeliveryObserver {
    let hub: Hub

    public init(hub: Hub) {
        self.hub = hub
    }

    /// The refusals say why (in 5.0's reason string, and in the log), but a client that has not
    /// shown a valid secret or certificate learns nothing about which device ids exist: an
    /// unknown device and a wrong secret read alike.
    public func authenticate(_ request: MQTTConnectRequest) async -> MQTTAuthenticationResult {
        let deviceID = request.clientIdentifier
        guard Validation.isDeviceID(deviceID) else {
            return self.refuse(
                .badUserNameOrPassword, "the client id must be a device id: [a-zA-Z0-9:_-]{1,128}", deviceID: deviceID, counted: "client_id"
            )
        }
        if let der = request.certificateDER {
            // Mutual TLS: the certificate enrolled for this device is the credential; any other,
            // whatever CA signed it and whatever its CN (an earlier device's of the same id, in
            // another tenant, say), is not.
            let fingerprint = DeviceRegistry.fingerprint(ofDER: der)
            do {
                guard let device = try await self.hub.store.session.devices.get(id: deviceID),
                    let enrolled = device.certificate, enrolled.fingerprint == fingerprint
                else {
                    // An unknown device and a certificate not enrolled read alike.
                    return self.refuse(
                        .notAuthorized, "this certificate is not the one enrolled for the client id's device", deviceID: deviceID,
                        counted: "certificate"
                    )
                }
                // The certificate vouches for the id: its holder may hear how the device stands.
                guard device.status == .accepted else {
                    return self.refuse(.notAuthorized, Self.notAccepted(device.status), deviceID: deviceID, counted: device.status.rawValue)
                }
                if let password = request.password, !Secrets.verify(secret: String(buffer: password), against: device.secretHash) {
                    return self.refuse(
                        .badUserNameOrPassword, "the password is not the device's secret (leave it out to log in by certificate alone)",
                        deviceID: deviceID, counted: "credentials"
                    )
                }
                try await self.hub.clusterRouting.deviceConnected(deviceID)
                return .accept(principal: deviceID)
            } catch {
                self.hub.logger.error("MQTT authentication failed", metadata: ["error": "\(error)"])
                return .reject(.serverUnavailable, explanation: "the hub cannot check credentials now; try again later")
            }
        }
        guard let username = request.username, username == deviceID, let password = request.password else {
            return self.refuse(
                .badUserNameOrPassword,
                request.username == nil || request.username == deviceID
                    ? "a device logs in with user name = client id = its id and password = its secret (or a TLS certificate)"
                    : "the user name must be the client id (the device's id)",
                deviceID: deviceID, counted: "credentials"
            )
        }
        do {
            guard let device = try await self.hub.devices.verifySecret(deviceID: deviceID, secret: String(buffer: password)) else {
                // An unknown device and a wrong secret read alike: the client learns no device id.
                return self.refuse(.badUserNameOrPassword, "unknown device or wrong secret", deviceID: deviceID, counted: "credentials")
            }
            guard device.status == .accepted else {
                return self.refuse(.notAuthorized, Self.notAccepted(device.status), deviceID: deviceID, counted: device.status.rawValue)
            }
            try await self.hub.clusterRouting.deviceConnected(deviceID)
            return .accept(principal: deviceID)
        } catch {
            self.hub.logger.error("MQTT authentication failed", metadata: ["error": "\(error)"])
            return .reject(.serverUnavailable, explanation: "the hub cannot check credentials now; try again later")
        }
    }

    /// Why a device that proved who it is may not connect.
    static func notAccepted(_ status: DeviceStatus) -> String {
        switch status {
        case .pending: "the device is pending: it may connect once it is accepted"
        case .rejected: "the device is rejected: it may connect if it is accepted again"
        case .decommissioned: "the device is decommissioned: it may not connect again"
        case .accepted: "the device is accepted"
        }
    }

    private func refuse(_ code: MQTTReasonCode, _ explanation: String, deviceID: String, counted reason: String) -> MQTTAuthenticationResult {
        Counter(label: "conduit_mqtt_connect_refused_total", dimensions: [("reason", reason)]).increment()
        self.hub.logger.info("MQTT connect refused: \(explanation)", metadata: [LogKey.deviceID: "\(deviceID)"])
        return .reject(code, explanation: explanation)
    }

    /// `devices/{id}` and below. The broker asks this of a will: one on a shadow's topic would be
    /// published by the broker, not served, so it is refused at CONNECT rather than lost silently.
    /// PUBLISH packets are decided by ``publishRefusal(principal:topic:)``, which also takes the
    /// requests of the device's shadows (`update`, `get`, `delete`).
    public func mayPublish(principal: String, topic: String) -> Bool {
        !topic.hasPrefix("$aws/") && self.publishRefusal(principal: principal, topic: topic) == nil
    }

    /// What a device may publish: `devices/{id}/…`, and its own shadows' requests. A refusal on
    /// one of AWS IoT's reserved topics says why and, where the device cannot hear a reason (3.1.1,
    /// QoS 0), disconnects it as AWS IoT does: firmware waiting for a shadow's answer must not
    /// wait for one that never comes.
    public func publishRefusal(principal: String, topic: String) -> MQTTPublishRefusal? {
        guard topic.hasPrefix("$aws/") else {
            guard topic == "devices/\(principal)" || topic.hasPrefix("devices/\(principal)/") else {
                return MQTTPublishRefusal(code: .notAuthorized, reason: "a device publishes under devices/\(principal)/ and on its own shadow's topics")
            }
            return nil
        }
        guard let shadow = ShadowTopic(topic) else {
            return MQTTPublishRefusal(
                code: .topicNameInvalid,
                reason: "\(topic) is not a topic Conduit serves: of AWS IoT's reserved topics, a device publishes on its shadow's update, get and delete",
                disconnectsWhenUntold: true
            )
        }
        guard shadow.thing == principal else {
            return MQTTPublishRefusal(
                code: .notAuthorized, reason: "a device uses its own shadow only: $aws/things/\(principal)/shadow/...", disconnectsWhenUntold: true
            )
        }
        guard shadow.answer == nil else {
            return MQTTPublishRefusal(
                code: .topicNameInvalid, reason: "\(topic) is where the shadow service answers; a device publishes on update, get or delete",
                disconnectsWhenUntold: true
            )
        }
        return nil
    }

    /// The same space, with no wildcard standing for the device id.
    public func maySubscribe(principal: String, filter: String) -> Bool {
        Self.isOwn(filter, device: principal)
    }

    /// A downlink leaves its queue only when the device acknowledges it, which a QoS 0
    /// subscription never does: one that would receive the device's downlinks
    /// (`devices/{id}/down`, `devices/{id}/#`, `devices/{id}/+`) is refused, saying why, rather
    /// than have downlinks written once and forgotten.
    public func subscriptionRefusal(principal: String, filter: String, qos: MQTTQoS) -> (code: MQTTReasonCode, reason: String)? {
        let downlinks = Downlinks.topic(principal)
        guard qos == .atMostOnce, MQTTTopic.matches(filter: filter, topic: downlinks) else { return nil }
        return (
            .implementationSpecificError,
            "\(filter) at QoS 0 would receive downlinks, which need acknowledging: subscribe to \(downlinks) at QoS 1 or 2"
        )
    }

    static func isOwn(_ topic: String, device: String) -> Bool {
        let own = "devices/\(device)"
        let shadow = "$aws/things/\(device)/shadow"
        for prefix in [own, shadow] where topic == prefix || topic.hasPrefix(prefix + "/") {
            return true
        }
        return false
    }

    public func messagePublished(
        principal: String, clientIdentifier: String, message: MQTTBrokerMessage, on eventLoop: any EventLoop
    ) -> EventLoopFuture<MQTTPublishVerdict> {
        guard message.topic == "devices/\(principal)" || message.topic.hasPrefix("devices/\(principal)/") else {
            guard let shadow = ShadowTopic(message.topic), shadow.thing == principal, shadow.answer == nil else {
                return eventLoop.makeSucceededFuture(.accepted)
            }
            // Acknowledged once AWS has accepted or rejected it, and the answer is on its way.
            let promise = eventLoop.makePromise(of: MQTTPublishVerdict.self)
            promise.completeWithTask { [hub = self.hub] in
                await hub.deviceShadows.answer(deviceID: principal, request: shadow, payload: Array(message.payload.readableBytesView))
                return .accepted
            }
            return promise.futureResult
        }
        let promise = eventLoop.makePromise(of: MQTTPublishVerdict.self)
        self.hub.messages.submit(deviceID: principal, message: message) { promise.completeWith($0) }
        return promise.futureResult
    }
}

extension DeviceBrokerAccess {
    /// A device subscribed to its downlink topic: what waits in its queue goes out now.
    public func clientSubscribed(clientIdentifier: String, principal: String, filters: [String]) {
        if filters.contains(where: { $0.hasPrefix("$aws/") }) {
            let hub = self.hub
            Task { await hub.deviceShadows.deviceSubscribed(deviceID: principal, filters: filters) }
        }
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

    public func handOver(_ deviceID: String) -> Bool {
        self.handOver(clientIdentifier: deviceID)
    }

    public func isConnected(_ deviceID: String) -> Bool {
        self.isConnected(clientIdentifier: deviceID)
    }

    public func forgetRetainedMessages(ofDevice deviceID: String) {
        self.removeRetained(under: ["devices/\(deviceID)", "$aws/things/\(deviceID)/shadow"])
    }
}
