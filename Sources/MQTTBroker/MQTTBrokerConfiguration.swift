import MQTT
import NIOCore

/// How the embedded broker listens and what it allows.
public struct MQTTBrokerConfiguration: Sendable {
    /// A second listener with TLS, for devices that connect with a certificate.
    public struct TLS: Sendable {
        public var host: String
        /// 0 picks a free port.
        public var port: Int
        /// The server's certificate chain, PEM.
        public var certificateChainPath: String
        /// The server's private key, PEM.
        public var privateKeyPath: String
        /// CA certificates that sign client certificates, PEM; with them a client may (or must)
        /// present a certificate, whose subject CN is then its identity.
        public var clientCAPath: String?
        /// Refuse clients without a valid certificate (mutual TLS).
        public var requireClientCertificate: Bool

        public init(
            host: String = "127.0.0.1", port: Int = 8883, certificateChainPath: String, privateKeyPath: String,
            clientCAPath: String? = nil, requireClientCertificate: Bool = false
        ) {
            self.host = host
            self.port = port
            self.certificateChainPath = certificateChainPath
            self.privateKeyPath = privateKeyPath
            self.clientCAPath = clientCAPath
            self.requireClientCertificate = requireClientCertificate
        }
    }

    /// The TLS listener, when a certificate and key are configured.
    public var tls: TLS?
    /// Address of the plain TCP listener.
    public var host: String
    /// Port of the plain TCP listener; 0 picks a free one.
    public var port: Int
    /// False for no plain TCP listener at all: devices connect over TLS only.
    public var listensWithoutTLS = true
    /// Subscriptions one client may hold; more are refused (SUBACK 0x97). Nil: no bound.
    public var maximumSubscriptionsPerClient: Int?
    /// Retained messages one client may have left in the broker, and their payload bytes; a
    /// retained PUBLISH past either is refused (5.0 PUBACK or PUBREC 0x97, else the connection
    /// ends with 0x97). Nil: no bound.
    public var maximumRetainedPerClient: Int?
    public var maximumRetainedBytesPerClient: Int?
    /// Connections one source address may hold; a CONNECT past it is refused (CONNACK 0x97).
    public var maximumConnectionsPerAddress: Int?
    /// CONNECTs a second one source address may make (twice as many in a burst); past it,
    /// CONNACK 0x9F (connection rate exceeded).
    public var connectsPerSecondPerAddress: Double?
    /// Failed logins a minute from one source address before its CONNECTs are refused (0x9F)
    /// without asking the authenticator, for a minute, then twice as long each time, up to 15.
    public var loginFailuresPerMinutePerAddress: Int?
    /// The largest packet a client may send before its CONNACK: CONNECT, will included. A
    /// larger one ends the connection before anything is authenticated.
    public var maximumConnectPacketSize: Int?
    /// The largest packet accepted from a client, announced to 5.0 clients in CONNACK.
    public var maximumPacketSize: Int
    /// How many QoS 1 and 2 publishes a client may have unacknowledged towards the broker.
    public var receiveMaximum: UInt16
    /// How many QoS 1 and 2 messages the broker has in flight to one client at most (a 5.0
    /// client's own receive maximum lowers it).
    public var maximumInflight: Int
    /// How many messages wait for one session (offline, or beyond the in-flight window) before
    /// new ones are dropped.
    public var maximumQueuedMessages: Int
    /// Payload bytes that wait for one offline session at most (a connected one, which holds
    /// its publishers back instead, may have ten times as many); past it new messages are dropped.
    public var maximumQueuedBytes = 8 << 20
    /// Messages one client may have handed to the observer (the hub, storing them) unanswered,
    /// QoS 0 included; past it the client's socket is not read until half are answered.
    public var maximumPendingPublishes = 256
    /// Payload bytes one client may have handed to the observer unanswered, as above.
    public var maximumPendingPublishBytes = 1 << 20
    /// Topic aliases a 5.0 client may use towards the broker.
    public var topicAliasMaximum: UInt16
    /// The longest session expiry granted, in seconds.
    public var maximumSessionExpiry: UInt32
    /// How long a new connection may take to send CONNECT.
    public var connectTimeout: TimeAmount
    /// The longest keep-alive a client may ask for, in seconds; nil allows any, none included.
    /// A 5.0 client asking for more, or for none, is told this one in CONNACK (Server Keep
    /// Alive) and held to it; a 3.1.1 client, which cannot be told, is refused (identifier
    /// rejected), as mosquitto's `max_keepalive` does.
    public var maximumKeepAlive: UInt16?
    /// The highest QoS a client may publish at, and the highest granted to a subscription. A 5.0
    /// client reads it in CONNACK; a PUBLISH above it ends the connection (0x9B).
    public var maximumQoS: MQTTQoS = .exactlyOnce
    /// Whether retained messages are kept. Without, a retained PUBLISH ends the connection (0x9A).
    public var retainAvailable = true
    /// Whether filters may hold `+` and `#`. Without, such a subscription is refused (0xA2).
    public var wildcardSubscriptionAvailable = true
    /// Whether SUBSCRIBE may carry a Subscription Identifier. Without, one ends the connection (0xA1).
    public var subscriptionIdentifiersAvailable = true
    /// Whether `$share/...` subscriptions are served. Without, they are refused (0x9E).
    public var sharedSubscriptionAvailable = true

    /// The largest packet that carries a message AWS IoT takes: 128 KiB of payload, and 4 KiB
    /// for the fixed header, topic and properties.
    public static let awsMessagePacketSize = 128 * 1024 + 4096

    public init(
        host: String = "127.0.0.1", port: Int = 1883, maximumPacketSize: Int = 1 << 20, receiveMaximum: UInt16 = 100,
        maximumInflight: Int = 64, maximumQueuedMessages: Int = 1000, topicAliasMaximum: UInt16 = 16,
        maximumSessionExpiry: UInt32 = 7 * 24 * 3600, connectTimeout: TimeAmount = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.maximumPacketSize = maximumPacketSize
        self.receiveMaximum = receiveMaximum
        self.maximumInflight = maximumInflight
        self.maximumQueuedMessages = maximumQueuedMessages
        self.topicAliasMaximum = topicAliasMaximum
        self.maximumSessionExpiry = maximumSessionExpiry
        self.connectTimeout = connectTimeout
    }
}
