import MQTT
import NIOCore

/// What a client presented in CONNECT, for the authenticator.
public struct MQTTConnectRequest: Sendable {
    public var clientIdentifier: String
    public var username: String?
    public var password: ByteBuffer?
    public var version: MQTTProtocolVersion
    /// The subject CN of the client's TLS certificate, when it presented one.
    public var certificateCommonName: String?
    /// That certificate, DER: what a device's enrolled certificate is compared with.
    public var certificateDER: [UInt8]?

    public init(
        clientIdentifier: String, username: String? = nil, password: ByteBuffer? = nil, version: MQTTProtocolVersion,
        certificateCommonName: String? = nil, certificateDER: [UInt8]? = nil
    ) {
        self.clientIdentifier = clientIdentifier
        self.username = username
        self.password = password
        self.version = version
        self.certificateCommonName = certificateCommonName
        self.certificateDER = certificateDER
    }
}

/// The authenticator's verdict on a CONNECT.
public enum MQTTAuthenticationResult: Sendable, Equatable {
    /// Let the client in as `principal` (a device id, or the client id when anonymous).
    case accept(principal: String)
    /// Refuse it with this reason (`.badUserNameOrPassword`, `.notAuthorized`, ...); a 5.0
    /// client also reads `explanation`, the CONNACK's reason string. It must tell a client
    /// nothing its credentials do not entitle it to know.
    case reject(MQTTReasonCode, explanation: String? = nil)
}

/// Decides who may connect.
public protocol MQTTAuthenticator: Sendable {
    func authenticate(_ request: MQTTConnectRequest) async -> MQTTAuthenticationResult
}

/// Decides which topics an authenticated principal may use.
public protocol MQTTAuthorizer: Sendable {
    func mayPublish(principal: String, topic: String) -> Bool
    func maySubscribe(principal: String, filter: String) -> Bool
    /// A subscription the principal may hold in general, refused at this QoS: the SUBACK's code
    /// (a 3.1.1 client reads 0x80) and, for a 5.0 client, the reason string. Nil to grant it.
    func subscriptionRefusal(principal: String, filter: String, qos: MQTTQoS) -> (code: MQTTReasonCode, reason: String)?
    /// Why a PUBLISH on `topic` is refused, or nil to take it. The default refuses what
    /// ``mayPublish(principal:topic:)`` does not allow, as not authorized.
    func publishRefusal(principal: String, topic: String) -> MQTTPublishRefusal?
}

/// A PUBLISH the broker will not take, and what the client hears.
public struct MQTTPublishRefusal: Sendable, Equatable {
    /// 5.0's reason code in the PUBACK or PUBREC (`.notAuthorized`, `.topicNameInvalid`).
    public var code: MQTTReasonCode
    /// 5.0's reason string beside it.
    public var reason: String
    /// Where the client cannot hear a refusal (3.1.1, or QoS 0), it is disconnected (5.0: with
    /// DISCONNECT and the code), as AWS IoT does, instead of having its message acknowledged and
    /// dropped: for topics whose publisher waits for an answer that will never come.
    public var disconnectsWhenUntold: Bool

    public init(code: MQTTReasonCode, reason: String, disconnectsWhenUntold: Bool = false) {
        self.code = code
        self.reason = reason
        self.disconnectsWhenUntold = disconnectsWhenUntold
    }
}

extension MQTTAuthorizer {
    public func publishRefusal(principal: String, topic: String) -> MQTTPublishRefusal? {
        self.mayPublish(principal: principal, topic: topic)
            ? nil : MQTTPublishRefusal(code: .notAuthorized, reason: "the topic '\(topic)' is not one this client may publish on")
    }

    public func subscriptionRefusal(principal: String, filter: String, qos: MQTTQoS) -> (code: MQTTReasonCode, reason: String)? { nil }
}

/// What the observer did with a published message.
public enum MQTTPublishVerdict: Sendable, Equatable {
    /// Stored: acknowledge it.
    case accepted
    /// Not taken, for a reason the client may retry later (`.quotaExceeded` when a backlog is
    /// full): a 5.0 client gets the reason code in its PUBACK or PUBREC; a 3.1.1 client, which
    /// has no way to hear a refusal, gets no acknowledgement and sends it again after reconnecting.
    case refused(MQTTReasonCode)
}

/// Hears about every message a client publishes, before the broker acknowledges it.
public protocol MQTTPublishObserver: Sendable {
    /// Called for each accepted PUBLISH, on the client's event loop, in the order the client sent
    /// them and without waiting for the verdict on the one before: the observer keeps each
    /// client's messages in the order it is called. A QoS 1 or 2 message is acknowledged only
    /// once the future succeeds, so that a message the hub stored is never one the client
    /// thinks was lost. A failure closes the client's connection unacknowledged, and the client
    /// sends it again.
    func messagePublished(
        principal: String, clientIdentifier: String, message: MQTTBrokerMessage, on eventLoop: any EventLoop
    ) -> EventLoopFuture<MQTTPublishVerdict>
}

/// Hears when a client can take messages meant for it, and when it acknowledged one the hub
/// marked with a delivery id: the two ends of a durable downlink queue.
public protocol MQTTDeliveryObserver: Sendable {
    /// The client subscribed to these filters (its SUBACK is on its way), or resumed a session
    /// read from a shared store that holds them (its CONNACK is on its way).
    func clientSubscribed(clientIdentifier: String, principal: String, filters: [String])
    /// The client acknowledged (PUBACK, or PUBCOMP for QoS 2) the message with this delivery id.
    func messageDelivered(clientIdentifier: String, deliveryID: Int)
}

/// Lets anyone connect, as its client id, and use any topic: mosquitto's `allow_anonymous true`.
public struct MQTTAllowAll: MQTTAuthenticator, MQTTAuthorizer {
    public init() {}
    public func authenticate(_ request: MQTTConnectRequest) async -> MQTTAuthenticationResult {
        .accept(principal: request.clientIdentifier)
    }
    public func mayPublish(principal: String, topic: String) -> Bool { true }
    public func maySubscribe(principal: String, filter: String) -> Bool { true }
}
