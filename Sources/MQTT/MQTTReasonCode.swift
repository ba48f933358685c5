/// An MQTT 5 reason code (a 3.1.1 CONNACK return code or SUBACK code is carried the same way).
public struct MQTTReasonCode: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let success = MQTTReasonCode(rawValue: 0x00)
    public static let normalDisconnection = MQTTReasonCode(rawValue: 0x00)
    public static let grantedQoS0 = MQTTReasonCode(rawValue: 0x00)
    public static let grantedQoS1 = MQTTReasonCode(rawValue: 0x01)
    public static let grantedQoS2 = MQTTReasonCode(rawValue: 0x02)
    public static let disconnectWithWillMessage = MQTTReasonCode(rawValue: 0x04)
    public static let noMatchingSubscribers = MQTTReasonCode(rawValue: 0x10)
    public static let noSubscriptionExisted = MQTTReasonCode(rawValue: 0x11)
    public static let continueAuthentication = MQTTReasonCode(rawValue: 0x18)
    public static let reAuthenticate = MQTTReasonCode(rawValue: 0x19)
    public static let unspecifiedError = MQTTReasonCode(rawValue: 0x80)
    public static let malformedPacket = MQTTReasonCode(rawValue: 0x81)
    public static let protocolError = MQTTReasonCode(rawValue: 0x82)
    public static let implementationSpecificError = MQTTReasonCode(rawValue: 0x83)
    public static let unsupportedProtocolVersion = MQTTReasonCode(rawValue: 0x84)
    public static let clientIdentifierNotValid = MQTTReasonCode(rawValue: 0x85)
    public static let badUserNameOrPassword = MQTTReasonCode(rawValue: 0x86)
    public static let notAuthorized = MQTTReasonCode(rawValue: 0x87)
    public static let serverUnavailable = MQTTReasonCode(rawValue: 0x88)
    public static let serverBusy = MQTTReasonCode(rawValue: 0x89)
    public static let banned = MQTTReasonCode(rawValue: 0x8A)
    public static let serverShuttingDown = MQTTReasonCode(rawValue: 0x8B)
    public static let badAuthenticationMethod = MQTTReasonCode(rawValue: 0x8C)
    public static let keepAliveTimeout = MQTTReasonCode(rawValue: 0x8D)
    public static let sessionTakenOver = MQTTReasonCode(rawValue: 0x8E)
    public static let topicFilterInvalid = MQTTReasonCode(rawValue: 0x8F)
    public static let topicNameInvalid = MQTTReasonCode(rawValue: 0x90)
    public static let packetIdentifierInUse = MQTTReasonCode(rawValue: 0x91)
    public static let packetIdentifierNotFound = MQTTReasonCode(rawValue: 0x92)
    public static let receiveMaximumExceeded = MQTTReasonCode(rawValue: 0x93)
    public static let topicAliasInvalid = MQTTReasonCode(rawValue: 0x94)
    public static let packetTooLarge = MQTTReasonCode(rawValue: 0x95)
    public static let messageRateTooHigh = MQTTReasonCode(rawValue: 0x96)
    public static let quotaExceeded = MQTTReasonCode(rawValue: 0x97)
    public static let administrativeAction = MQTTReasonCode(rawValue: 0x98)
    public static let payloadFormatInvalid = MQTTReasonCode(rawValue: 0x99)
    public static let retainNotSupported = MQTTReasonCode(rawValue: 0x9A)
    public static let qosNotSupported = MQTTReasonCode(rawValue: 0x9B)
    public static let useAnotherServer = MQTTReasonCode(rawValue: 0x9C)
    public static let serverMoved = MQTTReasonCode(rawValue: 0x9D)
    public static let sharedSubscriptionsNotSupported = MQTTReasonCode(rawValue: 0x9E)
    public static let connectionRateExceeded = MQTTReasonCode(rawValue: 0x9F)
    public static let maximumConnectTime = MQTTReasonCode(rawValue: 0xA0)
    public static let subscriptionIdentifiersNotSupported = MQTTReasonCode(rawValue: 0xA1)
    public static let wildcardSubscriptionsNotSupported = MQTTReasonCode(rawValue: 0xA2)

    /// True for codes of 0x80 and above, which report a failure.
    public var isFailure: Bool { self.rawValue >= 0x80 }

    /// The MQTT 3.1.1 CONNACK return code closest to this reason: 3.1.1 has only six.
    public var connectReturnCodeV3: UInt8 {
        switch self {
        case .success: 0x00
        case .unsupportedProtocolVersion: 0x01
        case .clientIdentifierNotValid: 0x02
        case .serverUnavailable, .serverBusy, .serverShuttingDown, .useAnotherServer, .serverMoved, .connectionRateExceeded, .quotaExceeded:
            0x03
        case .badUserNameOrPassword, .badAuthenticationMethod: 0x04
        default: 0x05
        }
    }

    public var description: String { "0x" + String(self.rawValue, radix: 16, uppercase: true) }
}
