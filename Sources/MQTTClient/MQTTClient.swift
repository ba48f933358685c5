import Backoff
import Logging
import MQTT
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Where and how an ``MQTTClient`` connects.
public struct MQTTClientConfiguration: Sendable {
    /// Mutual TLS: the client's certificate and key, and whom it trusts.
    public struct TLS: Sendable {
        public var certificateChainPEM: String
        public var privateKeyPEM: String
        /// CA certificates (PEM) the server's certificate must chain to; nil for the system's.
        public var trustRootsPEM: String?
        /// The name sent in SNI and checked against the server's certificate; the host by default.
        public var serverName: String?

        public init(certificateChainPEM: String, privateKeyPEM: String, trustRootsPEM: String? = nil, serverName: String? = nil) {
            self.certificateChainPEM = certificateChainPEM
            self.privateKeyPEM = privateKeyPEM
            self.trustRootsPEM = trustRootsPEM
            self.serverName = serverName
        }
    }

    public var host: String
    public var port: Int
    public var clientIdentifier: String
    public var tls: TLS?
    /// Topic filters to subscribe to on every connection, at QoS 1.
    public var subscriptions: [String]
    public var keepAlive: UInt16
    /// The pace of tries after a lost connection.
    public var reconnectBackoff: Backoff
    /// False for a persistent session: the server keeps the subscriptions and the QoS 1 messages
    /// that arrive while the client is away, and sends again those it did not acknowledge.
    public var cleanSession: Bool
    /// The largest packet the client takes from the server; a bigger one closes the connection.
    /// AWS IoT's messages are at most 128 KB, and the topic and header add little.
    public var maximumPacketSize: Int = 132 * 1024

    public init(
        host: String, port: Int = 8883, clientIdentifier: String, tls: TLS?, subscriptions: [String], keepAlive: UInt16 = 30,
        reconnectBackoff: Backoff = Backoff(first: 0.5, maximum: 30), cleanSession: Bool = true
    ) {
        self.cleanSession = cleanSession
        self.host = host
        self.port = port
        self.clientIdentifier = clientIdentifier
        self.tls = tls
        self.subscriptions = subscriptions
        self.keepAlive = keepAlive
        self.reconnectBackoff = reconnectBackoff
    }
}

/// A message the client received.
public struct MQTTClientMessage: Sendable {
    public var topic: String
    public var payload: ByteBuffer
    public var qos: MQTTQoS
    /// The server sent it before (MQTT's DUP flag), with this packet identifier.
    public var duplicate: Bool = false
    public var packetIdentifier: UInt16?

    public init(topic: String, payload: ByteBuffer, qos: MQTTQoS, duplicate: Bool = false, packetIdentifier: UInt16? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.duplicate = duplicate
        self.packetIdentifier = packetIdentifier
    }
}

/// An MQTT 3.1.1 client that stays connected: it connects (over mutual TLS with SNI, as AWS IoT
/// wants), subscribes, hands every message to its handler, and acknowledges a QoS 1 message only
/// after the handler returned, so a message the handler could not keep comes again. It reconnects
/// with backoff and subscribes again after every loss, until it is cancelled.
public final class MQTTClient: Sendable {
    public let configuration: MQTTClientConfiguration
    let logger: Logger
    let eventLoopGroup: any EventLoopGroup
    private struct State {
        /// When the current connection was subscribed; nil while there is none.
        var subscribedAt: ContinuousClock.Instant?
        var connections = 0
        var lastError: String?
    }
    private let state = Mutex(State())

    public init(
        configuration: MQTTClientConfiguration, logger: Logger = Logger(label: "conduit.mqtt.client"),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }

    /// True while connected and subscribed.
    public var isConnected: Bool { self.state.withLock { $0.subscribedAt != nil } }

    /// How many times it has connected and subscribed so far.
    public var connectionCount: Int { self.state.withLock { $0.connections } }

    /// Why the last connection failed or ended; nil once connected and subscribed again.
    public var lastError: String? { self.state.withLock { $0.lastError } }

    /// Stays connected until cancelled, handing each message to `handler`.
    public func run(_ handler: @escaping @Sendable (MQTTClientMessage) async throws -> Void) async {
        var failures = 0
        while !Task.isCancelled {
            let before = self.connectionCount
            do {
                try await self.connectOnce(handler)
            } catch is CancellationError {
                break
            } catch {
                if Task.isCancelled { break }
                self.state.withLock { $0.lastError = String(describing: error) }
                self.logger.notice(
                    "MQTT connection lost", metadata: ["conduit.host": "\(self.configuration.host):\(self.configuration.port)", "error": "\(error)"]
                )
            }
            // A connection that stayed up a while starts the backoff over; one dropped soon after
            // its subscription (another client taking the same client id, a policy that refuses
            // the subscription) backs off further.
            let subscribedAt = self.state.withLock { state in
                defer { state.subscribedAt = nil }
                return state.subscribedAt
            }
            let stayed = subscribedAt.map { ContinuousClock.now - $0 >= .seconds(10) } ?? false
            failures = self.connectionCount > before && stayed ? 1 : failures + 1
            guard (try? await Task.sleep(for: self.configuration.reconnectBackoff.delay(afterFailures: failures))) != nil else { break }
        }
        self.state.withLock { $0.subscribedAt = nil }
    }

    struct ProtocolFailure: Error, CustomStringConvertible {
        let description: String
    }

    private func makeSSLContext(_ tls: MQTTClientConfiguration.TLS) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(tls.certificateChainPEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(tls.privateKeyPEM.utf8), format: .pem)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateChain = chain
        configuration.privateKey = .privateKey(key)
        configuration.minimumTLSVersion = .tlsv12
        if let roots = tls.trustRootsPEM {
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(roots.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// When the server was last heard from.
    private final class LastHeard: Sendable {
        let time = Mutex(ContinuousClock.now)
    }

    private func connectOnce(_ handler: @escaping @Sendable (MQTTClientMessage) async throws -> Void) async throws {
        let configuration = self.configuration
        let sslContext = try configuration.tls.map(self.makeSSLContext)
        let serverName = configuration.tls?.serverName ?? configuration.host
        let channel = try await ClientBootstrap(group: self.eventLoopGroup)
            .connectTimeout(.seconds(10))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: configuration.host, port: configuration.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        // SNI only for names: an IP address may not be sent as one.
                        let name = serverName.first?.isLetter == true ? serverName : nil
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: sslContext, serverHostname: name))
                    }
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(MQTTPacketDecoder(version: .v3_1_1, maximumPacketSize: configuration.maximumPacketSize)))
                    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(MQTTPacketEncoder(version: .v3_1_1)))
                    return try NIOAsyncChannel<MQTTPacket, MQTTPacket>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            @Sendable func send(_ packet: MQTTPacket) async throws {
                try await outbound.write(packet)
            }
            try await send(
                .connect(
                    MQTTConnectPacket(
                        version: .v3_1_1, clientIdentifier: configuration.clientIdentifier, cleanStart: configuration.cleanSession,
                        keepAlive: configuration.keepAlive
                    )
                )
            )
            var packets = inbound.makeAsyncIterator()
            guard case .connack(let connack)? = try await packets.next() else { throw ProtocolFailure(description: "no CONNACK") }
            guard !connack.reasonCode.isFailure else { throw ProtocolFailure(description: "connection refused: \(connack.reasonCode)") }
            try await send(
                .subscribe(MQTTSubscribePacket(packetIdentifier: 1, subscriptions: configuration.subscriptions.map { .init(topicFilter: $0, qos: .atLeastOnce) }))
            )
            let lastHeard = LastHeard()
            let underlying = channel.channel
            try await withThrowingTaskGroup(of: Void.self) { group in
                // Keep-alive: a PINGREQ at half the interval; silence for 1.5 intervals closes the
                // connection, which ends the loop below.
                group.addTask {
                    let interval = Double(max(1, configuration.keepAlive))
                    while true {
                        try await Task.sleep(for: .seconds(interval / 2))
                        if ContinuousClock.now - lastHeard.time.withLock({ $0 }) > .seconds(interval * 1.5) {
                            underlying.close(promise: nil)
                            return
                        }
                        try await send(.pingreq)
                    }
                }
                defer { group.cancelAll() }
                while let packet = try await packets.next() {
                    lastHeard.time.withLock { $0 = ContinuousClock.now }
                    switch packet {
                    case .suback(let suback):
                        guard !suback.reasonCodes.contains(where: \.isFailure) else {
                            throw ProtocolFailure(description: "subscription refused: \(suback.reasonCodes)")
                        }
                        self.state.withLock { state in
                            state.subscribedAt = ContinuousClock.now
                            state.lastError = nil
                            state.connections += 1
                        }
                    case .publish(let publish):
                        try await handler(
                            MQTTClientMessage(
                                topic: publish.topic, payload: publish.payload, qos: publish.qos, duplicate: publish.duplicate,
                                packetIdentifier: publish.packetIdentifier
                            )
                        )
                        if let identifier = publish.packetIdentifier {
                            let ack = MQTTAckPacket(packetIdentifier: identifier)
                            try await send(publish.qos == .exactlyOnce ? .pubrec(ack) : .puback(ack))
                        }
                    case .pubrel(let release):
                        try await send(.pubcomp(MQTTAckPacket(packetIdentifier: release.packetIdentifier)))
                    case .disconnect:
                        throw ProtocolFailure(description: "the server disconnected")
                    default:
                        break
                    }
                }
                throw ProtocolFailure(description: "the connection closed")
            }
        }
    }
}
