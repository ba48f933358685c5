import DequeModule
import Foundation
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
    let sharedConfiguration: MQTTConnectionStateMachine.SharedConfiguration
    let authenticator: any MQTTAuthenticator
    let authorizer: any MQTTAuthorizer
    let observer: (any MQTTPublishObserver)?
    let deliveryObserver: (any MQTTDeliveryObserver)?
    let logger: Logger
    let eventLoopGroup: any EventLoopGroup
    let metrics: Metrics
    /// Per source address: connections, CONNECT rate, failed logins.
    let admission: MQTTAdmission
    /// Where persistent sessions are kept, when the broker has a store.
    let journal: MQTTSessionJournal?
    let sessionStore: (any MQTTSessionStore)?

    /// The broker's counters, made once (after the metrics system is bootstrapped).
    struct Metrics: Sendable {
        let connections = Gauge(label: "conduit_mqtt_connections")
        let received = Counter(label: "conduit_mqtt_messages_received_total")
        let delivered = Counter(label: "conduit_mqtt_messages_sent_total")
        let dropped = Counter(label: "conduit_mqtt_messages_dropped_total")
        let refused = Counter(label: "conduit_mqtt_connections_refused_total")
        /// Times a client's socket stopped being read because the hub had not caught up with it.
        let ingestPaused = Counter(label: "conduit_mqtt_ingest_paused_total")
    }

    private let lock = NIOLock()
    // Everything below is guarded by `lock`.
    private var sessions: [String: MQTTSession] = [:]
    private var tree = SubscriptionTree()
    private var retained: [String: MQTTBrokerMessage] = [:]
    /// Retained messages and their payload bytes, by the client that published them.
    private var retainedUsage: [String: (count: Int, bytes: Int)] = [:]
    private var shareCursor: [String: Int] = [:]
    private var listeners: [any Channel] = []
    private var connections: [ObjectIdentifier: any Channel] = [:]
    /// Each event loop's connection deadlines.
    private var timers: [ObjectIdentifier: MQTTConnectionTimers] = [:]
    private var boundTLSPort: Int?
    private var connectedCount = 0
    /// When each client's access was last revoked (`disconnect`), so that a CONNECT already being
    /// authenticated at that moment is refused too. Kept for a few minutes.
    private var revocations: [String: NIODeadline] = [:]
    private var shuttingDown = false
    /// Mailboxes written to, and actions that wake other threads, while the lock was held: run
    /// by ``locked(_:)`` once it is let go.
    private var wakeups: [MQTTConnectionHandle] = []
    private var deferred: [@Sendable () -> Void] = []

    /// Runs `body` under the lock, then wakes the connections it wrote to and runs what it
    /// deferred: no thread is woken while the lock is held, so others wait on it less.
    /// `writeOnThisLoop`: a connection served by the caller's own loop is written at once
    /// rather than after a hop, for a caller that writes nothing that must come first.
    private func locked<R>(writeOnThisLoop: Bool = false, _ body: () throws -> R) rethrows -> R {
        let (result, wakeups, deferred) = try self.lock.withLock {
            let result = try body()
            defer {
                self.wakeups.removeAll()
                self.deferred.removeAll()
            }
            return (result, self.wakeups, self.deferred)
        }
        for connection in wakeups {
            if writeOnThisLoop { connection.deliverIfOnLoop() } else { connection.schedule() }
        }
        for action in deferred { action() }
        return result
    }

    /// Queues packets for a connection; its loop is woken once the lock is let go. Lock held.
    private func send(_ packets: [MQTTPacket], to connection: MQTTConnectionHandle) {
        guard !packets.isEmpty else { return }
        if connection.enqueue(packets) { self.wakeups.append(connection) }
    }

    public init(
        configuration: MQTTBrokerConfiguration = .init(), authenticator: any MQTTAuthenticator = MQTTAllowAll(),
        authorizer: any MQTTAuthorizer = MQTTAllowAll(), observer: (any MQTTPublishObserver)? = nil,
        deliveryObserver: (any MQTTDeliveryObserver)? = nil, sessionStore: (any MQTTSessionStore)? = nil,
        logger: Logger = Logger(label: "conduit.mqtt"), eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.sessionStore = sessionStore
        self.journal = sessionStore.map { MQTTSessionJournal(store: $0, logger: logger) }
        self.configuration = configuration
        self.sharedConfiguration = .init(configuration)
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.observer = observer
        self.deliveryObserver = deliveryObserver
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
        self.metrics = Metrics()
        self.admission = MQTTAdmission(
            limits: .init(
                connectionsPerAddress: configuration.maximumConnectionsPerAddress, connectsPerSecond: configuration.connectsPerSecondPerAddress,
                loginFailuresPerMinute: configuration.loginFailuresPerMinutePerAddress
            )
        )
    }

    // MARK: Listening

    /// Brings back the persistent sessions the store kept, then binds the TCP listener (unless
    /// it is turned off) and the TLS one (when configured), and returns the TCP port.
    @discardableResult
    public func start() async throws -> Int? {
        // A shared store's sessions are read one by one as their clients connect (to this node
        // or another); brought back all at once here, they would expire here while alive elsewhere.
        if let sessionStore, !sessionStore.isShared { self.restore(try await sessionStore.storedSessions()) }
        var port: Int?
        if self.configuration.listensWithoutTLS {
            port = try await self.listen(host: self.configuration.host, port: self.configuration.port, tls: nil)
        }
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
            // NIO keeps each connection's receive buffer for its next read: start it at the
            // smallest, as most devices send little, and let it grow for those that send much.
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 64, maximum: 65_536))
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

    /// The deadlines of the connections on `eventLoop`.
    func timers(on eventLoop: any EventLoop) -> MQTTConnectionTimers {
        self.lock.withLock {
            if let timers = self.timers[ObjectIdentifier(eventLoop)] { return timers }
            let timers = MQTTConnectionTimers(eventLoop: eventLoop)
            self.timers[ObjectIdentifier(eventLoop)] = timers
            return timers
        }
    }

    func configure(_ channel: any Channel, tls: Bool) throws {
        let handler = MQTTConnectionHandler(broker: self, tls: tls)
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
            let now = Date()
            for session in self.sessions.values {
                session.cancelTimers()
                // Their expiry runs from now: connections ended by shutdown do not say so later.
                if session.connection != nil && session.stored {
                    self.journal?.append([.saveSession(session.record(disconnectedAt: now))])
                }
            }
            return result
        }
        for listener in listeners { try? await listener.close() }
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(MQTTConnectionHandler.ServerShutdown())
        }
        for connection in connections { try? await connection.closeFuture.get() }
        for timers in self.lock.withLock({ Array(self.timers.values) }) {
            try? await timers.eventLoop.submit { timers.stop() }.get()
        }
        await self.journal?.flush(on: self.eventLoopGroup.next(), within: .seconds(10))
    }

    /// Sessions read back from the store: offline, their messages queued, their subscriptions
    /// in the tree, their expiry running from when their connection ended (or from now, when
    /// the process stopped under it).
    private func restore(_ records: [MQTTSessionRecord]) {
        let now = NIODeadline.now()
        let wallClock = Date()
        var gone: [MQTTSessionChange] = []
        self.lock.withLock {
            for record in records {
                guard let (session, expiry) = self.session(restoring: record, now: now, wallClock: wallClock, gone: &gone) else { continue }
                self.sessions[record.clientIdentifier] = session
                self.scheduleExpiry(of: session, in: expiry)
            }
        }
        self.journal?.append(gone)
        if !records.isEmpty {
            self.logger.info("persistent sessions restored", metadata: ["conduit.sessions": "\(records.count)"])
        }
    }

    /// A session as the store kept it, offline, its subscriptions in the tree (not yet in
    /// `sessions`), and the seconds it has left; nil when it expired while kept. What is gone
    /// from it is added to `gone`. Lock held.
    private func session(
        restoring record: MQTTSessionRecord, now: NIODeadline, wallClock: Date, gone: inout [MQTTSessionChange]
    ) -> (MQTTSession, UInt32)? {
        // Within today's maximum (which may be lower than when it was stored).
        let interval = record.expiryInterval == .max ? .max : min(record.expiryInterval, self.configuration.maximumSessionExpiry)
        var expiry = interval
        if let disconnectedAt = record.disconnectedAt, expiry != .max {
            let elapsed = UInt32(clamping: Int(max(0, wallClock.timeIntervalSince(disconnectedAt))))
            guard elapsed < expiry else {
                gone.append(.deleteSession(clientIdentifier: record.clientIdentifier))
                return nil
            }
            expiry -= elapsed
        }
        var messages: [MQTTSessionState.Outgoing] = []
        for message in record.messages {
            guard let outgoing = message.outgoing(now: now, wallClock: wallClock) else {
                gone.append(.removeMessage(clientIdentifier: record.clientIdentifier, sequence: message.sequence))
                continue
            }
            messages.append(outgoing)
        }
        // A subscription the rules refuse now (one kept from before they did) is not brought back.
        let subscriptions = record.subscriptions.compactMap(\.subscription).filter {
            self.authorizer.subscriptionRefusal(principal: record.principal, filter: $0.topicFilter, qos: $0.qos) == nil
        }
        let session = MQTTSession(
            MQTTSessionState(
                restoring: record.clientIdentifier, principal: record.principal, expiryInterval: interval,
                subscriptions: subscriptions, messages: messages, limits: self.sessionLimits
            )
        )
        session.stored = true
        for subscription in subscriptions {
            self.tree.insert(clientIdentifier: record.clientIdentifier, subscription: subscription)
        }
        return (session, expiry)
    }

    /// Forgets a session here without ending it in the store: its client is at another node, or
    /// the store holds a newer copy. Returns the connection it had, if any. Lock held.
    private func dropLocally(_ session: MQTTSession) -> MQTTConnectionHandle? {
        let connection = session.connection
        session.state.discardWill()
        self.attach(nil, to: session)
        for subscription in session.state.subscriptions.values {
            self.tree.remove(clientIdentifier: session.clientIdentifier, topicFilter: subscription.topicFilter, shareGroup: subscription.shareGroup)
        }
        session.state.subscriptions = [:]
        session.stored = false
        self.releaseWaiters(of: session)
        session.cancelTimers()
        self.sessions[session.clientIdentifier] = nil
        return connection
    }

    /// Ends an offline session after `seconds`, unless a client is back first. Lock held.
    private func scheduleExpiry(of session: MQTTSession, in seconds: UInt32) {
        guard seconds != .max else { return }
        let clientIdentifier = session.clientIdentifier
        session.expiryTimer = self.eventLoopGroup.next().scheduleTask(in: .seconds(Int64(seconds))) {
            self.locked {
                guard session.connection == nil, self.sessions[clientIdentifier] === session else { return }
                self.endSession(session)
            }
        }
    }

    /// Tells the store what changed in a session: its row when `row` (or, when it is no longer
    /// persistent, its end) and its messages. Returns the journal's ticket. Lock held.
    @discardableResult
    private func persist(_ session: MQTTSession, row: Bool = false, disconnectedAt: Date? = nil, now: NIODeadline = .now()) -> Int? {
        guard let journal = self.journal else { return nil }
        var changes: [MQTTSessionChange] = []
        if row {
            if session.state.isPersistent {
                changes.append(.saveSession(session.record(disconnectedAt: disconnectedAt)))
                session.stored = true
            } else if session.stored {
                changes.append(.deleteSession(clientIdentifier: session.clientIdentifier))
                session.stored = false
            }
        }
        if session.stored { changes += session.takeJournal(now: now, wallClock: Date()) } else { _ = session.state.takeJournal() }
        guard !changes.isEmpty else { return nil }
        return journal.append(changes)
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
        self.locked {
            let now = NIODeadline.now()
            self.revocations = self.revocations.filter { now - $0.value < .minutes(5) }
            self.revocations[clientIdentifier] = now
            guard let session = self.sessions[clientIdentifier] else { return false }
            let connection = session.connection
            // No will for an administrative disconnect: the operator, not the network, ended it.
            session.state.discardWill()
            self.attach(nil, to: session)
            self.endSession(session)
            if let connection { self.deferred.append { connection.close(reason: reason) } }
            return connection != nil
        }
    }

    /// The client connected to another node of the cluster, which holds its session now (from the
    /// store): the connection here closes (5.0: DISCONNECT 0x8E, session taken over) and the
    /// session leaves this node's memory, without its will (the client did not go, it moved) and
    /// without being removed from the store.
    @discardableResult
    public func handOver(clientIdentifier: String) -> Bool {
        self.locked {
            guard let session = self.sessions[clientIdentifier] else { return false }
            guard let connection = self.dropLocally(session) else { return false }
            self.deferred.append { connection.close(reason: .sessionTakenOver) }
            return true
        }
    }

    /// Keeps (or, with nil, forgets) the retained message on a topic, and counts it against its
    /// publisher. Lock held.
    private func setRetained(_ message: MQTTBrokerMessage?, on topic: String) {
        if let old = self.retained[topic], let owner = old.publisherClientIdentifier, var usage = self.retainedUsage[owner] {
            usage.count -= 1
            usage.bytes -= old.payload.readableBytes + old.topic.utf8.count
            self.retainedUsage[owner] = usage.count > 0 ? usage : nil
        }
        self.retained[topic] = message
        if let message, let owner = message.publisherClientIdentifier {
            var usage = self.retainedUsage[owner] ?? (0, 0)
            usage.count += 1
            usage.bytes += message.payload.readableBytes + message.topic.utf8.count
            self.retainedUsage[owner] = usage
        }
    }

    /// True when the client may leave this retained message: within its count and bytes (payload
    /// and topic), the
    /// message it replaces on the topic, if its own, given back first. Clearing one always may.
    func mayRetain(clientIdentifier: String, topic: String, bytes: Int) -> Bool {
        guard bytes > 0, self.configuration.maximumRetainedPerClient != nil || self.configuration.maximumRetainedBytesPerClient != nil else {
            return true
        }
        return self.lock.withLock {
            var usage = self.retainedUsage[clientIdentifier] ?? (0, 0)
            if let old = self.retained[topic], old.publisherClientIdentifier == clientIdentifier {
                usage.count -= 1
                usage.bytes -= old.payload.readableBytes + old.topic.utf8.count
            }
            return usage.count + 1 <= (self.configuration.maximumRetainedPerClient ?? .max)
                && usage.bytes + bytes + topic.utf8.count <= (self.configuration.maximumRetainedBytesPerClient ?? .max)
        }
    }

    /// Forgets every retained message on one of `topics` or below it (`devices/pump-1` takes
    /// `devices/pump-1/state` too): what a deleted client left must not reach whoever takes its
    /// id next. Returns how many were removed.
    @discardableResult
    public func removeRetained(under topics: [String]) -> Int {
        self.locked {
            let doomed = self.retained.keys.filter { topic in topics.contains { topic == $0 || topic.hasPrefix($0 + "/") } }
            for topic in doomed { self.setRetained(nil, on: topic) }
            return doomed.count
        }
    }

    /// Publishes a message from the hub itself (a downlink), as if a client had.
    public func publish(_ message: MQTTBrokerMessage) {
        _ = self.locked { self.route(message, now: .now()) }
    }

    /// The delivery ids of the messages the client's session holds (queued or in flight): what
    /// the hub need not send it again.
    public func pendingDeliveryIDs(clientIdentifier: String) -> Set<Int> {
        self.locked {
            self.sessions[clientIdentifier]?.state.pendingDeliveryIDs ?? []
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

    private var sessionLimits: MQTTSessionState.Limits {
        .init(
            maximumInflight: self.configuration.maximumInflight, maximumQueued: self.configuration.maximumQueuedMessages,
            maximumQueuedBytes: self.configuration.maximumQueuedBytes, journaled: self.journal != nil
        )
    }

    /// Attaches a connection to its session, taking the session over from an older connection, and
    /// queues what the session owes the client (unacknowledged messages again, with DUP, then
    /// the queue) behind the CONNACK the caller writes next. Nil when the client's access was
    /// revoked after `authenticatedSince`. `stored` is the session a shared store kept for the
    /// client, read as it connected: it is the one resumed unless a connection here holds the
    /// session now (the store's copy is then the same or older).
    func connect(
        _ connect: MQTTConnectPacket, clientIdentifier: String, principal: String, handle: MQTTConnectionHandle,
        authenticatedSince: NIODeadline, stored: MQTTSessionRecord? = nil
    ) -> ConnectOutcome? {
        let requestedExpiry: UInt32 =
            connect.version.hasProperties
            ? (connect.properties.sessionExpiryInterval ?? 0)
            : (connect.cleanStart ? 0 : .max)
        let expiry = min(requestedExpiry, connect.version.hasProperties ? self.configuration.maximumSessionExpiry : .max)
        return self.locked {
            if let revoked = self.revocations[clientIdentifier], revoked >= authenticatedSince { return nil }
            let now = NIODeadline.now()
            if let stored, !connect.cleanStart, self.sessions[clientIdentifier]?.connection == nil {
                // Another node may have held the session since this one last did.
                if let offline = self.sessions[clientIdentifier] { _ = self.dropLocally(offline) }
                var gone: [MQTTSessionChange] = []
                if let (session, _) = self.session(restoring: stored, now: now, wallClock: Date(), gone: &gone) {
                    self.sessions[clientIdentifier] = session
                }
                self.journal?.append(gone)
            }
            if connect.cleanStart, self.sessions[clientIdentifier] == nil, self.sessionStore?.isShared == true {
                // A session another node left (or this one, before it read sessions lazily) is
                // discarded too, not resumed by a later connect without clean start.
                self.journal?.append([.deleteSession(clientIdentifier: clientIdentifier)])
            }
            var resumed: MQTTSession?
            if let existing = self.sessions[clientIdentifier] {
                existing.cancelTimers()
                let old = existing.connection
                if let will = existing.state.replaced(cleanStart: connect.cleanStart) { self.publishWill(will, of: clientIdentifier) }
                if let old {
                    // Session takeover [MQTT-3.1.4-3].
                    self.attach(nil, to: existing)
                    self.releaseWaiters(of: existing)
                    self.deferred.append { old.close(reason: .sessionTakenOver) }
                }
                if connect.cleanStart {
                    self.removeSession(existing)
                } else {
                    resumed = existing
                }
            }
            let session =
                resumed ?? MQTTSession(MQTTSessionState(clientIdentifier: clientIdentifier, principal: principal, limits: self.sessionLimits))
            self.sessions[clientIdentifier] = session
            session.state.principal = principal
            self.attach(handle, to: session)
            self.metrics.connections.record(self.connectedCount)
            let link = MQTTSessionState.Link(
                version: connect.version, window: min(self.configuration.maximumInflight, handle.receiveMaximum),
                maximumPacketSize: handle.maximumPacketSize
            )
            // Under the same lock, so no newer message overtakes the ones owed.
            let owed = session.state.connected(link, will: connect.will, expiryInterval: expiry, now: now)
            self.persist(session, row: true, now: now)
            self.send(owed, to: handle)
            if stored != nil, resumed != nil, let observer = self.deliveryObserver {
                // Read from a shared store: nothing was queued for it while no node held it, so
                // what waits for it elsewhere (a downlink queue) is asked for, as on a SUBSCRIBE.
                let filters = session.state.subscriptions.values.map(\.filter)
                if !filters.isEmpty {
                    self.deferred.append { observer.clientSubscribed(clientIdentifier: clientIdentifier, principal: principal, filters: filters) }
                }
            }
            return ConnectOutcome(sessionPresent: resumed != nil, sessionExpiry: expiry)
        }
    }

    /// The connection ended. With `publishWill`, the will goes out (after its delay); the session
    /// stays for its expiry interval, or goes now.
    func connectionClosed(clientIdentifier: String, connection: ObjectIdentifier, publishWill: Bool) {
        self.locked {
            guard let session = self.session(clientIdentifier, connection) else { return }
            self.attach(nil, to: session)
            self.metrics.connections.record(self.connectedCount)
            guard !self.shuttingDown else { return }
            // No one drains this queue now: the publishers it held back go on.
            self.releaseWaiters(of: session)
            let ending = session.state.disconnected(publishWill: publishWill)
            let now = NIODeadline.now()
            if ending.keepFor != 0 { self.persist(session, row: true, disconnectedAt: Date(), now: now) }
            switch ending.will {
            case .none:
                break
            case .now(let will):
                self.publishWill(will, of: clientIdentifier)
            case .after(let seconds):
                session.willTimer = self.eventLoopGroup.next().scheduleTask(in: .seconds(Int64(seconds))) {
                    self.locked {
                        guard self.sessions[clientIdentifier] === session, let will = session.state.willDelayElapsed() else { return }
                        session.willTimer = nil
                        self.publishWill(will, of: clientIdentifier)
                    }
                }
            }
            if ending.keepFor == 0 {
                self.endSession(session)
            } else {
                self.scheduleExpiry(of: session, in: ending.keepFor)
            }
        }
    }

    /// A 5.0 DISCONNECT may change the session expiry interval.
    func updateSessionExpiry(clientIdentifier: String, connection: ObjectIdentifier, to expiry: UInt32) {
        self.locked {
            self.session(clientIdentifier, connection)?.state.expiryInterval = min(expiry, self.configuration.maximumSessionExpiry)
        }
    }

    /// A session ends: a will still waiting for its delay goes out now [MQTT-3.1.3-9]. Lock held.
    private func endSession(_ session: MQTTSession) {
        if let will = session.state.ended() { self.publishWill(will, of: session.clientIdentifier) }
        self.removeSession(session)
    }

    /// Sets or clears a session's connection, keeping the count of connected clients. Lock held.
    private func attach(_ handle: MQTTConnectionHandle?, to session: MQTTSession) {
        self.connectedCount += (handle == nil ? 0 : 1) - (session.connection == nil ? 0 : 1)
        session.connection = handle
    }

    private func removeSession(_ session: MQTTSession) {
        for subscription in session.state.subscriptions.values {
            self.tree.remove(
                clientIdentifier: session.clientIdentifier, topicFilter: subscription.topicFilter,
                shareGroup: subscription.shareGroup
            )
        }
        session.state.subscriptions = [:]
        if session.stored {
            self.journal?.append([.deleteSession(clientIdentifier: session.clientIdentifier)])
            session.stored = false
        }
        self.releaseWaiters(of: session)
        session.cancelTimers()
        if self.sessions[session.clientIdentifier] === session {
            self.sessions[session.clientIdentifier] = nil
        }
    }

    /// Routes a client's will as the message it stands for. Lock held.
    private func publishWill(_ will: MQTTConnectPacket.Will, of client: String) {
        let now = NIODeadline.now()
        var properties = will.properties
        properties.remove(.willDelayInterval)  // not a PUBLISH property
        let expiry = properties.messageExpiryInterval
        properties.remove(.messageExpiryInterval)
        let message = MQTTBrokerMessage(
            topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain, properties: properties,
            expiresAt: expiry.map { now + .seconds(Int64($0)) }, publisherClientIdentifier: client
        )
        self.route(message, now: now)
    }

    /// The session of this connection, or nil when another connection has taken it over. Lock held.
    private func session(_ clientIdentifier: String, _ connection: ObjectIdentifier) -> MQTTSession? {
        guard let session = self.sessions[clientIdentifier], session.connection?.identifier == connection else { return nil }
        return session
    }

    // MARK: Messages

    /// A message a client published: routes it. Returns the journal's ticket when persistent
    /// sessions took it: the publisher's acknowledgement waits until it is written. Lock taken here.
    /// `qos2PacketIdentifier`: the client's identifier for a QoS 2 message, whose ticket the
    /// session keeps, for a resend after a failed store to wait on.
    func published(_ message: MQTTBrokerMessage, publisher: MQTTConnectionHandle?, qos2PacketIdentifier: UInt16? = nil) -> Int? {
        self.metrics.received.increment()
        // A subscriber on the publisher's loop gets the message now, not after a hop: what the
        // publisher's handler writes next (its PUBACK) need not come before it.
        return self.locked(writeOnThisLoop: true) {
            let ticket = self.route(message, publisher: publisher, now: .now())
            if let identifier = qos2PacketIdentifier, let client = message.publisherClientIdentifier, let publisher {
                self.session(client, publisher.identifier)?.state.qos2Routed(identifier, ticket: ticket)
            }
            return ticket
        }
    }

    /// Succeeds once the journal's `ticket` is in the store.
    func durable(_ ticket: Int, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        self.journal?.written(ticket, on: eventLoop) ?? eventLoop.makeSucceededVoidFuture()
    }

    /// Routes a message to every matching subscription and keeps it when it is retained. Lock held.
    @discardableResult
    private func route(_ message: MQTTBrokerMessage, publisher: MQTTConnectionHandle? = nil, now: NIODeadline) -> Int? {
        var ticket: Int?
        if message.retain {
            self.setRetained(message.payload.readableBytes == 0 ? nil : message.compacted(), on: message.topic)
        }
        let matches = self.tree.matches(topic: message.topic)
        if matches.direct.count == 1, let (client, subscription) = matches.direct.first {
            // The common case, one subscriber: no table to merge several subscriptions in.
            if !(subscription.noLocal && client == message.publisherClientIdentifier), let session = self.sessions[client] {
                ticket = self.deliver(
                    message, to: session, qos: min(message.qos, subscription.qos),
                    retain: subscription.retainAsPublished && message.retain,
                    subscriptionIdentifiers: subscription.identifier.map { [$0] } ?? [], publisher: publisher, now: now
                )
            }
        } else if !matches.direct.isEmpty {
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
                ticket = self.deliver(
                    message, to: session, qos: min(message.qos, entry.qos),
                    retain: entry.retainAsPublished && message.retain, subscriptionIdentifiers: entry.identifiers,
                    publisher: publisher, now: now
                ) ?? ticket
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
            ticket = self.deliver(
                message, to: session, qos: min(message.qos, chosen.subscription.qos), retain: false,
                subscriptionIdentifiers: chosen.subscription.identifier.map { [$0] } ?? [], publisher: publisher, now: now
            ) ?? ticket
        }
        return ticket
    }

    /// Sends a message to a session now, or queues it; the journal's ticket when the store must
    /// hear of it. Lock held.
    @discardableResult
    private func deliver(
        _ message: MQTTBrokerMessage, to session: MQTTSession, qos: MQTTQoS, retain: Bool, subscriptionIdentifiers: [Int],
        publisher: MQTTConnectionHandle? = nil, now: NIODeadline
    ) -> Int? {
        switch session.state.deliver(message, qos: qos, retain: retain, subscriptionIdentifiers: subscriptionIdentifiers, now: now) {
        case .send(let packet):
            self.metrics.delivered.increment()
            if let connection = session.connection { self.send([.publish(packet)], to: connection) }
            // A message with a delivery id (a durable downlink) counts as delivered only when the
            // client acknowledges it: one written at QoS 0 may be lost on the way, so it stays
            // queued. (The hub refuses QoS 0 subscriptions that would receive them.)
        case .queued(let slowPublisher):
            // Flow control: a connected subscriber that falls behind holds back the publishers that
            // feed it (they stop being read) instead of losing what they send.
            guard slowPublisher, let publisher, let connection = session.connection, publisher.identifier != connection.identifier else {
                break
            }
            if !session.waiters.contains(where: { $0.identifier == publisher.identifier }) {
                session.waiters.append(publisher)
            }
            // Again on every message while the queue is long: a pause that ran out resumes.
            self.deferred.append { publisher.pauseReading() }
        case .discarded:
            break
        case .queueFull:
            self.metrics.dropped.increment()
            self.logger.warning(
                "session queue full; message dropped",
                metadata: ["conduit.client_id": "\(session.clientIdentifier)", "conduit.topic": "\(message.topic)"]
            )
        }
        return self.persist(session, now: now)
    }

    /// Lets the publishers a session held back be read again.
    private func releaseWaiters(of session: MQTTSession) {
        guard !session.waiters.isEmpty else { return }
        let waiters = session.waiters
        self.deferred.append { for publisher in waiters { publisher.resumeReading() } }
        session.waiters = []
    }

    /// Records an incoming QoS 2 packet identifier and says what to do with the message.
    func receiveQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) -> MQTTSessionState.IncomingQoS2 {
        self.locked {
            self.session(clientIdentifier, connection)?.state.qos2PublishReceived(packetIdentifier) ?? .routedAndStored
        }
    }

    /// The observer stored the QoS 2 message with this identifier.
    func storedQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) {
        self.locked { self.session(clientIdentifier, connection)?.state.qos2Stored(packetIdentifier) }
    }

    /// PUBREL from the client; false when the packet identifier was unknown.
    func releaseQoS2(clientIdentifier: String, connection: ObjectIdentifier, packetIdentifier: UInt16) -> Bool {
        self.locked { self.session(clientIdentifier, connection)?.state.qos2Released(packetIdentifier) ?? false }
    }

    /// PUBACK, PUBREC or PUBCOMP from the client for a message the broker sent: what to write
    /// now, on the connection's own loop (what waited in its mailbox, the messages the freed
    /// window lets out, and the reply), with no hop in between.
    func acknowledged(_ packet: MQTTPacket, clientIdentifier: String, connection: MQTTConnectionHandle) -> [MQTTPacket] {
        var toWrite: [MQTTPacket] = []
        let outcome: MQTTSessionState.Acknowledged? = self.locked {
            guard let session = self.session(clientIdentifier, connection.identifier) else { return nil }
            let now = NIODeadline.now()
            let outcome: MQTTSessionState.Acknowledged
            switch packet {
            case .puback(let ack): outcome = session.state.pubackReceived(ack.packetIdentifier, now: now)
            case .pubrec(let ack): outcome = session.state.pubrecReceived(ack.packetIdentifier, reasonCode: ack.reasonCode, now: now)
            case .pubcomp(let ack): outcome = session.state.pubcompReceived(ack.packetIdentifier, now: now)
            default: return nil
            }
            if !outcome.send.isEmpty {
                self.metrics.delivered.increment(by: Int64(outcome.send.count))
                // Under the lock, so that nothing posted later overtakes them.
                toWrite = connection.take(appending: outcome.send.map { .publish($0) })
            }
            if outcome.releasePublishers { self.releaseWaiters(of: session) }
            self.persist(session, now: now)
            return outcome
        }
        guard let outcome else { return [] }
        if let delivered = outcome.delivered {
            self.deliveryObserver?.messageDelivered(clientIdentifier: clientIdentifier, deliveryID: delivered)
        }
        if let reply = outcome.reply { toWrite.append(reply) }
        return toWrite
    }

    // MARK: Subscriptions

    /// Adds subscriptions and returns the reason code for each; matching retained messages follow
    /// on the connection after the caller's SUBACK.
    func subscribe(
        clientIdentifier: String, _ subscriptions: [(MQTTSubscription, allowed: Bool)], connection: ObjectIdentifier
    ) -> [MQTTReasonCode] {
        self.locked {
            guard let session = self.session(clientIdentifier, connection) else { return subscriptions.map { _ in .unspecifiedError } }
            let now = NIODeadline.now()
            var codes: [MQTTReasonCode] = []
            var retainedToSend: [(MQTTBrokerMessage, MQTTSubscription)] = []
            var changed = false
            defer { if changed { self.persist(session, row: true, now: now) } }
            for (subscription, allowed) in subscriptions {
                guard allowed else {
                    codes.append(.notAuthorized)
                    continue
                }
                if let limit = self.configuration.maximumSubscriptionsPerClient, session.state.subscriptions[subscription.filter] == nil,
                    session.state.subscriptions.count >= limit
                {
                    MQTTRefusals.count("subscriptions")
                    codes.append(.quotaExceeded)
                    continue
                }
                let isNew = self.tree.insert(clientIdentifier: clientIdentifier, subscription: subscription)
                session.state.subscriptions[subscription.filter] = subscription
                changed = true
                codes.append(MQTTReasonCode(rawValue: subscription.qos.rawValue))
                guard subscription.shareGroup == nil else { continue }
                switch subscription.retainHandling {
                case .sendOnSubscribe: break
                case .sendOnNewSubscribe: if !isNew { continue }
                case .doNotSend: continue
                }
                for message in self.retained.values
                where MQTTTopic.matches(filter: subscription.topicFilter, topic: message.topic) && !message.isExpired(at: now) {
                    retainedToSend.append((message, subscription))
                }
            }
            // Retained messages go out through the event loop, after the SUBACK the caller writes now.
            for (message, subscription) in retainedToSend {
                self.deliver(
                    message, to: session, qos: min(message.qos, subscription.qos), retain: true,
                    subscriptionIdentifiers: subscription.identifier.map { [$0] } ?? [], now: now
                )
            }
            return codes
        }
    }

    /// Removes subscriptions; the reason code for each (success, or no subscription existed).
    func unsubscribe(clientIdentifier: String, connection: ObjectIdentifier, _ filters: [String]) -> [MQTTReasonCode] {
        self.locked {
            guard let session = self.session(clientIdentifier, connection) else { return filters.map { _ in .noSubscriptionExisted } }
            defer { self.persist(session, row: true) }
            return filters.map { filter in
                guard let subscription = session.state.subscriptions.removeValue(forKey: filter) else { return .noSubscriptionExisted }
                self.tree.remove(clientIdentifier: clientIdentifier, topicFilter: subscription.topicFilter, shareGroup: subscription.shareGroup)
                return .success
            }
        }
    }
}
