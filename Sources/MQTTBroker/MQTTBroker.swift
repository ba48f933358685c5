import DequeModule
import Logging
import MQTT
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import X509

/// Conduit's embedded MQTT 3.1.1 and 5.0 broker.
///
/// Connections are served by ``MQTTConnectionHandler``s on NIO event loops; the sessions, the
/// subscription tree and the retained messages live here, behind one lock that is held only for
/// in-memory work (packets go out through each connection's event loop, never under a wait).
public final class MQTTBroker: @unchecked Sendable {
    public let configuration: MQTTBrokerConfiguration
    let authenticator: any MQTTAuthenticator
    let authorizer: any MQTTAuthorizer
    let observer: (any MQTTPublishObserver)?
    let deliveryObserver: (any MQTTDeliveryObserver)?
    let logger: Logger
    let eventLoopGroup: any EventLoopGroup
    let metrics: Metrics

    /// The broker's counters, made once (after the metrics system is bootstrapped).
    struct Metrics: Sendable {
        let connections = Gauge(label: "conduit_mqtt_connections")
        let received = Counter(label: "conduit_mqtt_messages_received_total")
        let delivered = Counter(label: "conduit_mqtt_messages_sent_total")
        let dropped = Counter(label: "conduit_mqtt_messages_dropped_total")
        let refused = Counter(label: "conduit_mqtt_connections_refused_total")
    }

    private let lock = NIOLock()
    // Everything below is guarded by `lock`.
    private var sessions: [String: MQTTSession] = [:]
    private var tree = SubscriptionTree()
    private var retained: [String: MQTTBrokerMessage] = [:]
    private var shareCursor: [String: Int] = [:]
    private var listeners: [any Channel] = []
    private var connections: [ObjectIdentifier: any Channel] = [:]
    private var boundTLSPort: Int?
    private var connectedCount = 0
    /// When each client's access was last revoked (`disconnect`), so that a CONNECT already being
    /// authenticated at that moment is refused too. Kept for a few minutes.
    private var revocations: [String: NIODeadline] = [:]
    private var shuttingDown = false

    public init(
        configuration: MQTTBrokerConfiguration = .init(), authenticator: any MQTTAuthenticator = MQTTAllowAll(),
        authorizer: any MQTTAuthorizer = MQTTAllowAll(), observer: (any MQTTPublishObserver)? = nil,
        deliveryObserver: (any MQTTDeliveryObserver)? = nil,
        logger: Logger = Logger(label: "conduit.mqtt"), eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.configuration = configuration
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.observer = observer
        self.deliveryObserver = deliveryObserver
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.metrics = Metrics()
    }

    // MARK: Listening

    /// Binds the TCP listener (and the TLS one, when configured) and returns the TCP port.
    @discardableResult
    public func start() async throws -> Int {
        let port = try await self.listen(host: self.configuration.host, port: self.configuration.port, tls: nil)
        if let tls = self.configuration.tls {
            let context = try Self.makeTLSContext(tls)
            let tlsPort = try await self.listen(host: tls.host, port: tls.port, tls: context)
            self.lock.withLock { self.boundTLSPort = tlsPort }
        }
        return port
    }

    /// The port of the TLS listener, once started.
    public var tlsPort: Int? { self.lock.withLock { self.boundTLSPort } }

    static func makeTLSContext(_ tls: MQTTBrokerConfiguration.TLS) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMFile(tls.certificateChainPath).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(file: tls.privateKeyPath, format: .pem)
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        if let ca = tls.clientCAPath {
            configuration.trustRoots = .file(ca)
            configuration.certificateVerification = tls.requireClientCertificate ? .noHostnameVerification : .optionalVerification
        }
        return try NIOSSLContext(configuration: configuration)
    }

    private func listen(host: String, port: Int, tls: NIOSSLContext?) async throws -> Int {
        let channel = try await ServerBootstrap(group: self.eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // NIO keeps each connection's receive buffer for its next read: start it small, as
            // most devices send little, and let it grow for those that send much.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 256, maximum: 65_536))
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try self.configure(channel, tls: tls != nil)
                }
            }
            .bind(host: host, port: port)
            .get()
        self.lock.withLock { self.listeners.append(channel) }
        let bound = channel.localAddress?.port ?? port
        self.logger.info("MQTT broker listening", metadata: ["conduit.mqtt": "\(tls == nil ? "mqtt" : "mqtts")://\(host):\(bound)"])
        return bound
    }

    func configure(_ channel: any Channel, tls: Bool) throws {
        let handler = MQTTConnectionHandler(broker: self, tls: tls)
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(MQTTPacketDecoder(maximumPacketSize: self.configuration.maximumPacketSize))
        )
        try channel.pipeline.syncOperations.addHandler(handler)
        self.lock.withLock { self.connections[ObjectIdentifier(channel)] = channel }
        channel.closeFuture.whenComplete { _ in
            _ = self.lock.withLock { self.connections.removeValue(forKey: ObjectIdentifier(channel)) }
        }
    }

    /// Stops listening, tells 5.0 clients the server is shutting down, and closes every connection.
    public func shutdown() async {
        let (listeners, connections) = self.lock.withLock {
            let result = (self.listeners, Array(self.connections.values))
            self.listeners = []
            // Connections closed from here on neither publish wills nor start expiry timers.
            self.shuttingDown = true
            for session in self.sessions.values {
                session.expiryTimer?.cancel()
                session.willTimer?.cancel()
            }
            return result
        }
        for listener in listeners { try? await listener.close() }
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(MQTTConnectionHandler.ServerShutdown())
        }
        for connection in connections { try? await connection.closeFuture.get() }
    }

    /// How many clients are connected now.
    public var connectedClientCount: Int {
        self.lock.withLock { self.connectedCount }
    }

    /// Open network connections, whether or not they completed CONNECT.
    public var openConnectionCount: Int {
        self.lock.withLock { self.connections.count }
    }

    /// True when a client with this identifier is connected.
    public func isConnected(clientIdentifier: String) -> Bool {
        self.lock.withLock { self.sessions[clientIdentifier]?.connection != nil }
    }

    /// Closes the client's connection (5.0: DISCONNECT with `reason`) and forgets its session; for
    /// a device that was rejected or decommissioned. A CONNECT of this client that is still being
    /// authenticated is refused as well.
    @discardableResult
    public func disconnect(clientIdentifier: String, reason: MQTTReasonCode = .administrativeAction) -> Bool {
        self.lock.withLock {
            let now = NIODeadline.now()
            self.revocations = self.revocations.filter { now - $0.value < .minutes(5) }
            self.revocations[clientIdentifier] = now
            guard let session = self.sessions[clientIdentifier] else { return false }
            let connection = session.connection
            // No will for an administrative disconnect: the operator, not the network, ended it.
            session.will = nil
            self.attach(nil, to: session)
            self.removeSession(session)
            connection?.close(reason: reason)
            return connection != nil
        }
    }

    /// Publishes a message from the hub itself (a downlink), as if a client had.
    public func publish(_ message: MQTTBrokerMessage) {
        self.lock.withLock { self.route(message) }
    }

    /// The delivery ids of the messages the client's session holds (queued or in flight): what
    /// the hub need not send it again.
    public func pendingDeliveryIDs(clientIdentifier: String) -> Set<Int> {
        self.lock.withLock {
            guard let session = self.sessions[clientIdentifier] else { return [] }
            return Set(session.inflight.values.compactMap(\.message.deliveryID) + session.queue.compactMap(\.message.deliveryID))
        }
    }

    /// The subject CN of a certificate, DER.
    static func commonName(ofCertificate der: [UInt8]) -> String? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        for rdn in certificate.subject.reversed() {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                return attribute.value.description
            }
        }
        return nil
    }

    // MARK: Sessions (called by connection handlers)

    struct ConnectOutcome {
        var sessionPresent: Bool
        var sessionExpiry: UInt32
    }

    /// Attaches a connection to its session, taking the session over from an older connection, and
    /// queues what the session owes the client (unacknowledged messages again, with DUP, then
    /// the queue) behind the CONNACK the caller writes next. Nil when the client's access was
    /// revoked after `authenticatedSince`.
    func connect(
        _ connect: MQTTConnectPacket, clientIdentifier: String, principal: String, handle: MQTTConnectionHandle,
        authenticatedSince: NIODeadline
    ) -> ConnectOutcome? {
        let requestedExpiry: UInt32 =
            connect.version.hasProperties
            ? (connect.properties.sessionExpiryInterval ?? 0)
            : (connect.cleanStart ? 0 : .max)
        let expiry = min(requestedExpiry, connect.version.hasProperties ? self.configuration.maximumSessionExpiry : .max)
        return self.lock.withLock {
            if let revoked = self.revocations[clientIdentifier], revoked >= authenticatedSince { return nil }
            var present = false
            if let existing = self.sessions[clientIdentifier] {
                existing.expiryTimer?.cancel()
                existing.expiryTimer = nil
                existing.willTimer?.cancel()
                existing.willTimer = nil
                if let old = existing.connection {
                    // Session takeover [MQTT-3.1.4-3]: the old connection goes, its will with it
                    // unless the will was to wait (the new connection is that wait's end).
                    if let will = existing.will, (will.properties.willDelayInterval ?? 0) == 0 {
                        self.route(Self.message(from: will, publisher: clientIdentifier))
                    }
                    self.attach(nil, to: existing)
                    self.releaseWaiters(of: existing)
                    old.close(reason: .sessionTakenOver)
                }
                if connect.cleanStart {
                    self.removeSession(existing)
                } else {
                    present = true
                }
            }
            let session = present ? self.sessions[clientIdentifier]! : MQTTSession(clientIdentifier: clientIdentifier, principal: principal)
            self.sessions[clientIdentifier] = session
            session.principal = principal
            self.attach(handle, to: session)
            self.metrics.connections.record(self.connectedCount)
            session.will = connect.will
            session.expiryInterval = expiry
            // Under the same lock, so no newer message overtakes the redelivered ones.
            self.redeliver(session, to: handle)
            return ConnectOutcome(sessionPresent: present, sessionExpiry: expiry)
        }
    }

    /// Sends what a resumed session owes its client. Lock held; the packets follow the CONNACK
    /// because they go through the connection's event loop after the current task.
    private func redeliver(_ session: MQTTSession, to handle: MQTTConnectionHandle) {
        let now = NIODeadline.now()
        var packets: [MQTTPacket] = []
        for identifier in session.inflightOrder {
            guard let inflight = session.inflight[identifier] else { continue }
            if inflight.released {
                packets.append(.pubrel(MQTTAckPacket(packetIdentifier: identifier)))
            } else {
                packets.append(
                    .publish(
                        inflight.message.publishPacket(
                            qos: inflight.qos, retain: inflight.retain, packetIdentifier: identifier,
                            subscriptionIdentifiers: inflight.subscriptionIdentifiers, duplicate: true, now: now
                        )
                    )
                )
            }
        }
        handle.write(packets)
        self.drain(session)
    }

    /// The connection ended. With `publishWill`, the will goes out (after its delay); the session
    /// stays for its expiry interval, or goes now.
    func connectionClosed(clientIdentifier: String, connection: ObjectIdentifier, publishWill: Bool) {
        self.lock.withLock {
            guard let session = self.sessions[clientIdentifier], session.connection?.identifier == connection else { return }
            self.attach(nil, to: session)
            self.metrics.connections.record(self.connectedCount)
            guard !self.shuttingDown else { return }
            // No one drains this queue now: the publishers it held back go on.
            self.releaseWaiters(of: session)
            if publishWill, let will = session.will {
                let delay = min(will.properties.willDelayInterval ?? 0, session.expiryInterval)
                if delay == 0 {
                    self.route(Self.message(from: will, publisher: clientIdentifier))
                } else {
                    session.willTimer = self.eventLoopGroup.next().scheduleTask(in: .seconds(Int64(delay))) {
                        self.lock.withLock {
                            guard session.connection == nil, self.sessions[clientIdentifier] === session, let will = session.will else {
                                return
                            }
                            session.will = nil
                            session.willTimer = nil
                            self.route(Self.message(from: will, publisher: clientIdentifier))
                        }
                    }
                }
            }
            if !publishWill { session.will = nil }
            switch session.expiryInterval {
            case 0:
                self.endSession(session)
            case .max:
                break
            default:
                session.expiryTimer = self.eventLoopGroup.next().scheduleTask(in: .seconds(Int64(session.expiryInterval))) {
                    self.lock.withLock {
                        guard session.connection == nil, self.sessions[clientIdentifier] === session else { return }
                        self.endSession(session)
                    }
                }
            }
        }
    }

    /// A 5.0 DISCONNECT may change the session expiry interval.
    func updateSessionExpiry(clientIdentifier: String, connection: ObjectIdentifier, to expiry: UInt32) {
        self.lock.withLock {
            guard let session = self.sessions[clientIdentifier], session.connection?.identifier == connection else { return }
            session.expiryInterval = min(expiry, self.configuration.maximumSessionExpiry)
        }
    }

    /// A session ends: a will still waiting for its delay goes out now [MQTT-3.1.3-9].
    private func endSession(_ session: MQTTSession) {
        if session.willTimer != nil, let will = session.will {
            session.willTimer?.cancel()
            session.will = nil
            self.route(Self.message(from: will, publisher: session.clientIdentifier))
        }
        self.removeSession(session)
    }

    /// Sets or clears a session's connection, keeping the count of connected clients. Lock held.
    private func attach(_ handle: MQTTConnectionHandle?, to session: MQTTSession) {
        self.connectedCount += (handle == nil ? 0 : 1) - (session.connection == nil ? 0 : 1)
        session.connection = handle
    }

    private func removeSession(_ session: MQTTSession) {
        for subscription in session.subscriptions.values {
            self.tree.remove(
                clientIdentifier: session.clientIdentifier, topicFilter: subscription.topicFilter,
                shareGroup: subscription.shareGroup
            )
        }
        session.subscriptions = [:]
        session.will = nil
        self.releaseWaiters(of: session)
        session.expiryTimer?.cancel()
        session.willTimer?.cancel()
        if self.sessions[session.clientIdentifier] === session {
            self.sessions[session.clientIdentifier] = nil
        }
    }

    static func message(from will: MQTTConnectPacket.Will, publisher: String) -> MQTTBrokerMessage {
        var properties = will.properties
        properties.remove(.willDelayInterval)  // not a PUBLISH property
        let expiry = properties.messageExpiryInterval
        properties.remove(.messageExpiryInterval)
        return MQTTBrokerMessage(
            topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, properties: properties,
            expiresAt: expiry.map { .now() + .seconds(Int64($0)) }, publisherClientIdentifier: publisher
        )
    }

    // MARK: Messages

    /// Routes a message to every matching subscription and keeps it when it is retained. Lock held.
    private func route(_ message: MQTTBrokerMessage, publisher: MQTTConnectionHandle? = nil) {
        if message.retain {
            if message.payload.readableBytes == 0 {
                self.retained[message.topic] = nil
            } else {
                self.retained[message.topic] = message
            }
        }
        let matches = self.tree.matches(topic: message.topic)
        if !matches.direct.isEmpty {
            // A session with several matching subscriptions gets one copy at the highest QoS,
            // carrying every matching subscription identifier.
            var perClient: [String: (qos: MQTTQoS, retainAsPublished: Bool, identifiers: [Int])] = [:]
            for (client, subscription) in matches.direct {
                if subscription.noLocal && client == message.publisherClientIdentifier { continue }
                var entry = perClient[client] ?? (.atMostOnce, false, [])
                entry.qos = max(entry.qos, subscription.qos)
                entry.retainAsPublished = entry.retainAsPublished || subscription.retainAsPublished
                if let identifier = subscription.identifier { entry.identifiers.append(identifier) }
                perClient[client] = entry
            }
            for (client, entry) in perClient {
                guard let session = self.sessions[client] else { continue }
                self.deliver(
                    message, to: session, qos: min(message.qos, entry.qos),
                    retain: entry.retainAsPublished && message.retain, subscriptionIdentifiers: entry.identifiers,
                    publisher: publisher
                )
            }
        }
        for (group, candidates) in matches.shared {
            // One member of the share group gets each message, in turn; connected members first.
            let ordered = candidates.sorted { $0.clientIdentifier < $1.clientIdentifier }
            let connected = ordered.filter { self.sessions[$0.clientIdentifier]?.connection != nil }
            let pool = connected.isEmpty ? ordered : connected
            guard !pool.isEmpty else { continue }
            let cursor = self.shareCursor[group, default: 0]
            self.shareCursor[group] = cursor &+ 1
            let chosen = pool[cursor % pool.count]
            guard let session = self.sessions[chosen.clientIdentifier] else { continue }
            self.deliver(
                message, to: session, qos: min(message.qos, chosen.subscription.qos), retain: false,
                subscriptionIdentifiers: chosen.subscription.identifier.map { [$0] } ?? [], publisher: publisher
            )
        }
    }

    /// Sends a message to a session now, or queues it. Lock held.
    private func deliver(
        _ message: MQTTBrokerMessage, to session: MQTTSession, qos: MQTTQoS, retain: Bool, subscriptionIdentifiers: [Int],
        publisher: MQTTConnectionHandle? = nil
    ) {
        guard let connection = session.connection else {
            // Offline: QoS 1 and 2 wait in a persistent session; QoS 0 is not kept.
            if qos != .atMostOnce { self.enqueue(message, qos: qos, retain: retain, identifiers: subscriptionIdentifiers, in: session) }
            return
        }
        if qos == .atMostOnce {
            let packet = message.publishPacket(
                qos: .atMostOnce, retain: retain, packetIdentifier: nil, subscriptionIdentifiers: subscriptionIdentifiers,
                now: .now()
            )
            if self.fits(.publish(packet), connection) {
                self.metrics.delivered.increment()
                connection.write([.publish(packet)])
                if let deliveryID = message.deliveryID, let observer = self.deliveryObserver {
                    // At most once is what the client asked for: written is as delivered as it gets.
                    let client = session.clientIdentifier
                    Task { observer.messageDelivered(clientIdentifier: client, deliveryID: deliveryID) }
                }
            }
            return
        }
        if session.queue.isEmpty && session.inflight.count < self.window(connection) {
            self.send(message, qos: qos, retain: retain, identifiers: subscriptionIdentifiers, to: session, connection)
        } else {
            self.enqueue(message, qos: qos, retain: retain, identifiers: subscriptionIdentifiers, in: session)
            // Flow control: a connected subscriber that falls behind holds back the publishers that
            // feed it (they stop being read) instead of losing what they send.
            if let publisher, publisher.identifier != connection.identifier,
                session.queue.count >= self.configuration.maximumQueuedMessages / 2
            {
                if !session.waiters.contains(where: { $0.identifier == publisher.identifier }) {
                    session.waiters.append(publisher)
                }
                // Again on every message while the queue is long: a pause that ran out resumes.
                publisher.pauseReading()
            }
        }
    }

    private func enqueue(_ message: MQTTBrokerMessage, qos: MQTTQoS, retain: Bool, identifiers: [Int], in session: MQTTSession) {
        // A connected session is protected by flow control and may run past the limit while its
        // publishers pause; an offline one cannot slow anyone, so its queue is capped.
        let limit = session.connection == nil ? self.configuration.maximumQueuedMessages : self.configuration.maximumQueuedMessages * 10
        guard session.queue.count < limit else {
            self.metrics.dropped.increment()
            self.logger.warning(
                "session queue full; message dropped",
                metadata: ["conduit.client_id": "\(session.clientIdentifier)", "conduit.topic": "\(message.topic)"]
            )
            return
        }
        session.queue.append(.init(message: message, qos: qos, retain: retain, subscriptionIdentifiers: identifiers))
    }

    private func window(_ connection: MQTTConnectionHandle) -> Int {
        min(self.configuration.maximumInflight, connection.receiveMaximum)
    }

    private func fits(_ packet: MQTTPacket, _ connection: MQTTConnectionHandle) -> Bool {
        // A packet over the client's maximum is not sent [MQTT-3.1.2-24]; most clients set none.
        guard connection.maximumPacketSize != .max else { return true }
        return packet.encodedSize(version: connection.version) <= connection.maximumPacketSize
    }

    private func send(
        _ message: MQTTBrokerMessage, qos: MQTTQoS, retain: Bool, identifiers: [Int], to session: MQTTSession,
        _ connection: MQTTConnectionHandle
    ) {
        let identifier = session.nextPacketIdentifier()
        let packet = MQTTPacket.publish(
            message.publishPacket(qos: qos, retain: retain, packetIdentifier: identifier, subscriptionIdentifiers: identifiers, now: .now())
        )
        guard self.fits(packet, connection) else { return }
        session.inflight[identifier] = .init(
            message: message, qos: qos, retain: retain, subscriptionIdentifiers: identifiers, released: false
        )
        session.inflightOrder.append(identifier)
        self.metrics.delivered.increment()
        connection.write([packet])
    }

    /// Moves queued messages into the in-flight window while there is room. Lock held.
    private func drain(_ session: MQTTSession) {
        guard let connection = session.connection else { return }
        let now = NIODeadline.now()
        while session.inflight.count < self.window(connection), let next = session.queue.popFirst() {
            if next.message.isExpired(at: now) { continue }
            self.send(next.message, qos: next.qos, retain: next.retain, identifiers: next.subscriptionIdentifiers, to: session, connection)
        }
        if session.queue.count < self.configuration.maximumQueuedMessages / 4 {
            self.releaseWaiters(of: session)
        }
    }

    /// Lets the publishers a session held back be read again.
    private func releaseWaiters(of session: MQTTSession) {
        guard !session.waiters.isEmpty else { return }
        for publisher in session.waiters { publisher.resumeReading() }
        session.waiters = []
    }

    /// A message a client published: routes it. Lock taken here.
    func published(_ message: MQTTBrokerMessage, publisher: MQTTConnectionHandle?) {
        self.metrics.received.increment()
        self.lock.withLock { self.route(message, publisher: publisher) }
    }

    /// Where an incoming QoS 2 message stands.
    enum IncomingQoS2 {
        /// First time: route it.
        case new
        /// Routed and stored before: only acknowledge again.
        case routedAndStored
        /// Routed, but the observer failed to store it: store it again, don't route.
        case routedNotStored
    }

    /// The session of this connection, or nil when another connection has taken it over. Lock held.
    private func session(_ clientIdentifier: String, _ connection: ObjectIdentifier) -> MQTTSession? {
        guard let session = self.sessions[clientIdentifier], session.connection?.identifier == connection else { return nil }
        return session
    }

    /// Records an incoming QoS 2 packet identifier and says what to do with the message.
    func receiveQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) -> IncomingQoS2 {
        self.lock.withLock {
            guard let session = self.session(clientIdentifier, connection) else { return .routedAndStored }
            switch session.incomingQoS2[packetIdentifier] {
            case nil:
                session.incomingQoS2[packetIdentifier] = false
                return .new
            case true?:
                return .routedAndStored
            case false?:
                return .routedNotStored
            }
        }
    }

    /// The observer stored the QoS 2 message with this identifier.
    func storedQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) {
        self.lock.withLock {
            guard let session = self.session(clientIdentifier, connection), session.incomingQoS2[packetIdentifier] != nil else { return }
            session.incomingQoS2[packetIdentifier] = true
        }
    }

    /// PUBREL from the client; false when the packet identifier was unknown.
    func releaseQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) -> Bool {
        self.lock.withLock {
            self.session(clientIdentifier, connection)?.incomingQoS2.removeValue(forKey: packetIdentifier) != nil
        }
    }

    /// PUBACK, PUBREC or PUBCOMP from the client for a message the broker sent.
    func acknowledged(_ packet: MQTTPacket, clientIdentifier: String, connection: ObjectIdentifier) -> [MQTTPacket] {
        var delivered: Int?
        let replies: [MQTTPacket] = self.lock.withLock {
            guard let session = self.session(clientIdentifier, connection) else { return [] }
            switch packet {
            case .puback(let ack):
                guard session.inflight[ack.packetIdentifier]?.qos == .atLeastOnce else { return [] }
                delivered = session.removeInflight(ack.packetIdentifier)?.message.deliveryID
                self.drain(session)
                return []
            case .pubrec(let ack):
                guard var inflight = session.inflight[ack.packetIdentifier], inflight.qos == .exactlyOnce else {
                    return [.pubrel(MQTTAckPacket(packetIdentifier: ack.packetIdentifier, reasonCode: .packetIdentifierNotFound))]
                }
                if ack.reasonCode.isFailure {
                    // The client refused it: the exchange ends here [MQTT-4.3.3].
                    _ = session.removeInflight(ack.packetIdentifier)
                    self.drain(session)
                    return []
                }
                inflight.released = true
                session.inflight[ack.packetIdentifier] = inflight
                return [.pubrel(MQTTAckPacket(packetIdentifier: ack.packetIdentifier))]
            case .pubcomp(let ack):
                guard session.inflight[ack.packetIdentifier]?.released == true else { return [] }
                delivered = session.removeInflight(ack.packetIdentifier)?.message.deliveryID
                self.drain(session)
                return []
            default:
                return []
            }
        }
        if let delivered { self.deliveryObserver?.messageDelivered(clientIdentifier: clientIdentifier, deliveryID: delivered) }
        return replies
    }

    // MARK: Subscriptions

    /// Adds subscriptions and returns the reason code for each; matching retained messages follow
    /// on the connection after the caller's SUBACK.
    func subscribe(
        clientIdentifier: String, _ subscriptions: [(MQTTSubscription, allowed: Bool)], connection: ObjectIdentifier
    ) -> [MQTTReasonCode] {
        self.lock.withLock {
            guard let session = self.sessions[clientIdentifier], let handle = session.connection,
                handle.identifier == connection
            else { return subscriptions.map { _ in .unspecifiedError } }
            var codes: [MQTTReasonCode] = []
            var retainedToSend: [(MQTTBrokerMessage, MQTTSubscription)] = []
            for (subscription, allowed) in subscriptions {
                guard allowed else {
                    codes.append(.notAuthorized)
                    continue
                }
                let isNew = self.tree.insert(clientIdentifier: clientIdentifier, subscription: subscription)
                session.subscriptions[subscription.filter] = subscription
                codes.append(MQTTReasonCode(rawValue: subscription.qos.rawValue))
                guard subscription.shareGroup == nil else { continue }
                switch subscription.retainHandling {
                case .sendOnSubscribe: break
                case .sendOnNewSubscribe: if !isNew { continue }
                case .doNotSend: continue
                }
                let now = NIODeadline.now()
                for message in self.retained.values
                where MQTTTopic.matches(filter: subscription.topicFilter, topic: message.topic) && !message.isExpired(at: now) {
                    retainedToSend.append((message, subscription))
                }
            }
            // Retained messages go out through the event loop, after the SUBACK the caller writes now.
            for (message, subscription) in retainedToSend {
                self.deliver(
                    message, to: session, qos: min(message.qos, subscription.qos), retain: true,
                    subscriptionIdentifiers: subscription.identifier.map { [$0] } ?? []
                )
            }
            return codes
        }
    }

    /// Removes subscriptions; the reason code for each (success, or no subscription existed).
    func unsubscribe(clientIdentifier: String, connection: ObjectIdentifier, _ filters: [String]) -> [MQTTReasonCode] {
        self.lock.withLock {
            guard let session = self.session(clientIdentifier, connection) else { return filters.map { _ in .noSubscriptionExisted } }
            return filters.map { filter in
                guard let subscription = session.subscriptions.removeValue(forKey: filter) else { return .noSubscriptionExisted }
                self.tree.remove(clientIdentifier: clientIdentifier, topicFilter: subscription.topicFilter, shareGroup: subscription.shareGroup)
                return .success
            }
        }
    }
}
