import Logging
import MQTT
import NIOCore
import NIOPosix
import NIOSSL

/// One client connection: reads packets, runs the protocol for them with the broker, writes the
/// answers. Lives on its channel's event loop.
final class MQTTConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = MQTTPacket
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Sent through the pipeline when the broker shuts down.
    struct ServerShutdown {}

    private enum State {
        case awaitingConnect
        /// The authenticator is deciding. The socket is not read meanwhile; the packets already
        /// read with the CONNECT (at most one read's worth of bytes) wait in `earlyPackets`,
        /// none dropped: MQTT lets a client send them before the CONNACK.
        case authenticating(MQTTConnectPacket)
        case connected(Connected)
        case closed
    }

    private struct Connected {
        var connect: MQTTConnectPacket
        var clientIdentifier: String
        var principal: String
        var version: MQTTProtocolVersion { self.connect.version }
        /// Topic aliases the client set (5.0).
        var topicAliases: [UInt16: String] = [:]
    }

    /// Topic aliases the broker set towards a 5.0 client that allows them (its Topic Alias
    /// Maximum), first come first served; a topic past the maximum goes in full.
    private var outboundAliases: [String: UInt16] = [:]
    private var outboundAliasMaximum: UInt16 = 0
    /// The client's Maximum Packet Size (5.0, from its CONNECT), which no packet to it may exceed.
    private var clientMaximumPacketSize = Int.max

    private let broker: MQTTBroker
    private var state = State.awaitingConnect
    private var version: MQTTProtocolVersion = .v5
    private var context: ChannelHandlerContext?
    private var connectTimeout: Scheduled<Void>?
    /// Acknowledgements leave in the order their PUBLISHes came [MQTT-4.6.0-2], each after the
    /// observer has the message: this is the tail of that chain.
    private var acknowledgementTail: EventLoopFuture<Void>?
    /// Messages handed to the observer whose outcome is not known yet.
    private var pendingStores = 0
    /// Set when the observer refused a message: the messages behind it on this connection are
    /// refused too, so that none overtakes it, until the chain has drained.
    private var refusing = false
    private var disconnectedCleanly = false
    /// This connection as the broker knows it, once connected.
    private var handle: MQTTConnectionHandle?
    /// Reads are held back by flow control (a subscriber this client feeds is behind).
    private var readingPaused = false
    /// A read the pipeline asked for while the authenticator was deciding, done once it has.
    private var readHeldForAuthentication = false
    /// Packets that came with or after the CONNECT while the authenticator was deciding.
    private var earlyPackets: [MQTTPacket] = []
    private var pauseLimit: Scheduled<Void>?
    /// QoS 1 and 2 publishes from the client not yet acknowledged, against our receive maximum.
    private var unacknowledged = 0
    /// Logs with this connection's peer and client id. The logger is made only for a message its
    /// level lets through: kept per connection, its metadata cost every idle connection half a
    /// kilobyte, and made for every message, a debug line's cost every connect.
    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard self.broker.logger.logLevel <= level else { return }
        var logger = self.broker.logger
        logger[metadataKey: "conduit.peer"] = "\(self.context?.remoteAddress?.description ?? "?")"
        if case .connected(let connected) = self.state { logger[metadataKey: "conduit.client_id"] = "\(connected.clientIdentifier)" }
        logger.log(level: level, message(), metadata: metadata())
    }

    private let tls: Bool

    /// When the authenticator was asked; a revocation after it wins over its verdict.
    private var authenticationStarted = NIODeadline.now()

    init(broker: MQTTBroker, tls: Bool) {
        self.broker = broker
        self.tls = tls
    }

    /// The CN of the client's certificate, on a TLS connection where it presented a valid one.
    private func peerCommonName(_ context: ChannelHandlerContext) -> String? {
        guard self.tls, let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = handler.peerCertificate, let der = try? certificate.toDERBytes()
        else { return nil }
        return MQTTBroker.commonName(ofCertificate: der)
    }

    private var identifier: ObjectIdentifier { ObjectIdentifier(self) }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.connectTimeout = context.eventLoop.scheduleTask(in: self.broker.configuration.connectTimeout) { [weak self] in
            guard let self, case .awaitingConnect = self.state else { return }
            self.log(.debug, "no CONNECT in time")
            self.close()
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        self.handle = nil
        self.pauseLimit?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.connectTimeout?.cancel()
        if case .connected(let connected) = self.state {
            self.broker.connectionClosed(
                clientIdentifier: connected.clientIdentifier, connection: self.identifier, publishWill: !self.disconnectedCleanly
            )
            self.log(.debug, "client disconnected")
        }
        self.handle = nil
        self.state = .closed
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdown {
            self.close(reason: .serverShuttingDown)
        } else if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // Nothing from the client for 1.5 times its keep-alive [MQTT-3.1.2-22].
            self.log(.debug, "keep-alive expired")
            self.close(reason: .keepAliveTimeout)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let protocolError = error as? MQTTProtocolError ?? (error as? ByteToMessageDecoderError).flatMap(Self.unwrap) else {
            self.log(.debug, "connection error", metadata: ["error": "\(error)"])
            self.close()
            return
        }
        self.log(.info, "protocol violation; closing", metadata: ["error": "\(protocolError)"])
        switch self.state {
        case .awaitingConnect, .authenticating:
            // CONNACK can carry the reason before the connection is accepted [MQTT-3.2.2-6].
            if protocolError.reasonCode == .unsupportedProtocolVersion {
                self.version = .v3_1_1
                self.write([.connack(MQTTConnAckPacket(reasonCode: .unsupportedProtocolVersion))])
            }
            self.close()
        case .connected:
            self.close(reason: protocolError.reasonCode)
        case .closed:
            break
        }
    }

    private static func unwrap(_ error: ByteToMessageDecoderError) -> MQTTProtocolError? {
        if case .dataReceivedInErrorState(let inner, _) = error { return inner as? MQTTProtocolError }
        return nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let packet = self.unwrapInboundIn(data)
        switch self.state {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else { return self.close() }
            self.connectTimeout?.cancel()
            self.connectTimeout = nil
            self.connectReceived(connect, context: context)
        case .authenticating:
            // Beside the state, not in it: appending to an array held in an enum payload copies it.
            self.earlyPackets.append(packet)
        case .connected(var connected):
            self.packetReceived(packet, connected: &connected, context: context)
            if case .connected = self.state { self.state = .connected(connected) }
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    // MARK: CONNECT

    private func connectReceived(_ connect: MQTTConnectPacket, context: ChannelHandlerContext) {
        self.version = connect.version
        self.clientMaximumPacketSize = connect.properties.maximumPacketSize.map { Int($0) } ?? .max
        var clientIdentifier = connect.clientIdentifier
        var assigned = false
        if clientIdentifier.isEmpty {
            // A server-assigned identifier, for clean sessions only [MQTT-3.1.3-8].
            guard connect.cleanStart || connect.version.hasProperties && (connect.properties.sessionExpiryInterval ?? 0) == 0 else {
                return self.refuse(
                    .clientIdentifierNotValid, explanation: "an empty client id needs a clean session"
                )
            }
            clientIdentifier = "auto-" + String(UInt64.random(in: 1...UInt64.max), radix: 36)
            assigned = true
        }
        if connect.properties.authenticationMethod != nil {
            // Enhanced authentication is not offered.
            return self.refuse(
                .badAuthenticationMethod, explanation: "enhanced authentication is not offered: use a user name and password, or a certificate"
            )
        }
        self.state = .authenticating(connect)
        self.authenticationStarted = .now()
        let request = MQTTConnectRequest(
            clientIdentifier: clientIdentifier, username: connect.username, password: connect.password,
            version: connect.version, certificateCommonName: self.peerCommonName(context)
        )
        let authenticator = self.broker.authenticator
        let promise = context.eventLoop.makePromise(of: MQTTAuthenticationResult.self)
        promise.completeWithTask { await authenticator.authenticate(request) }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { result in
            loopBound.value.authenticated(result, clientIdentifier: clientIdentifier, assigned: assigned)
        }
    }

    /// Refuses a CONNECT: a 5.0 client also gets `explanation` as the CONNACK's reason string,
    /// when its maximum packet size leaves room for it [MQTT-3.2.2-19].
    private func refuse(_ reason: MQTTReasonCode, explanation: String? = nil) {
        self.broker.metrics.refused.increment()
        var properties = MQTTProperties.none
        if let explanation, self.version.hasProperties, explanation.utf8.count + 16 <= self.clientMaximumPacketSize {
            properties.set(.reasonString(explanation))
        }
        self.write([.connack(MQTTConnAckPacket(reasonCode: reason, properties: properties))])
        self.close()
    }

    private func authenticated(_ result: MQTTAuthenticationResult, clientIdentifier: String, assigned: Bool) {
        guard case .authenticating(let connect) = self.state, let context = self.context else { return }
        let pending = self.earlyPackets
        self.earlyPackets = []
        guard case .accept(let principal) = result else {
            if case .reject(let reason, let explanation) = result {
                self.log(
                    .info, "connection refused",
                    metadata: ["conduit.client_id": "\(clientIdentifier)", "conduit.reason": "\(explanation ?? "\(reason)")"]
                )
                self.refuse(reason, explanation: explanation)
            }
            return
        }
        // A will may only go where its client may publish [MQTT-3.1.2.5]: else a device could
        // leave a retained message on another device's topic by dropping its connection.
        if let will = connect.will, !self.broker.authorizer.mayPublish(principal: principal, topic: will.topic) {
            self.log(.info, "connection refused: will topic outside the client's space", metadata: ["conduit.topic": "\(will.topic)"])
            return self.refuse(
                .notAuthorized, explanation: "the will topic '\(will.topic)' is not one this client may publish on"
            )
        }
        let configuration = self.broker.configuration
        if let will = connect.will {
            // A will the broker could not publish is refused at the door [MQTT-3.2.2-12, -13].
            if will.qos > configuration.maximumQoS {
                return self.refuse(
                    .qosNotSupported, explanation: "the will's QoS is above this server's maximum, \(configuration.maximumQoS.rawValue)"
                )
            }
            if will.retain && !configuration.retainAvailable {
                return self.refuse(
                    .retainNotSupported, explanation: "this server keeps no retained messages"
                )
            }
        }
        var keepAlive = connect.keepAlive
        var serverKeepAlive: UInt16?
        if let cap = configuration.maximumKeepAlive, keepAlive == 0 || keepAlive > cap {
            guard connect.version.hasProperties else {
                // 3.1.1 has no way to tell the client the server's keep-alive.
                self.log(.info, "connection refused: keep-alive \(keepAlive) s is above the maximum, \(cap) s")
                return self.refuse(.clientIdentifierNotValid)
            }
            keepAlive = cap
            serverKeepAlive = cap
        }
        // The broker keeps the handle for as long as the session lives; it reaches this handler
        // weakly, so a closed connection's handler and channel are freed.
        let reference = WeakHandlerReference(self)
        let eventLoop = context.eventLoop
        let mailbox = MQTTOutboundMailbox(eventLoop: eventLoop) { packets in
            guard let handler = reference.handler else { return }
            handler.write(packets)
            handler.context?.flush()
        }
        let handle = MQTTConnectionHandle(
            identifier: self.identifier, version: connect.version,
            receiveMaximum: Int(connect.properties.receiveMaximum ?? UInt16.max),
            maximumPacketSize: self.clientMaximumPacketSize,
            send: { packets in mailbox.post(packets) },
            close: { reason in eventLoop.execute { reference.handler?.close(reason: reason) } },
            setReading: { reading in eventLoop.execute { reference.handler?.setReading(reading) } }
        )
        guard let outcome = self.broker.connect(
            connect, clientIdentifier: clientIdentifier, principal: principal, handle: handle, authenticatedSince: self.authenticationStarted
        ) else {
            // Access was revoked while the authenticator was deciding.
            return self.refuse(.notAuthorized)
        }
        self.handle = handle
        var properties = MQTTProperties()
        if connect.version.hasProperties {
            properties.set(.receiveMaximum(configuration.receiveMaximum))
            properties.set(.maximumPacketSize(UInt32(configuration.maximumPacketSize)))
            properties.set(.topicAliasMaximum(configuration.topicAliasMaximum))
            // Absent means 2 [MQTT-3.2.2-9]; a lower maximum is stated.
            if configuration.maximumQoS < .exactlyOnce { properties.set(.maximumQoS(configuration.maximumQoS.rawValue)) }
            properties.set(.retainAvailable(configuration.retainAvailable ? 1 : 0))
            properties.set(.wildcardSubscriptionAvailable(configuration.wildcardSubscriptionAvailable ? 1 : 0))
            properties.set(.subscriptionIdentifierAvailable(configuration.subscriptionIdentifiersAvailable ? 1 : 0))
            properties.set(.sharedSubscriptionAvailable(configuration.sharedSubscriptionAvailable ? 1 : 0))
            if let serverKeepAlive { properties.set(.serverKeepAlive(serverKeepAlive)) }
            self.outboundAliasMaximum = connect.properties.topicAliasMaximum ?? 0
            if assigned { properties.set(.assignedClientIdentifier(clientIdentifier)) }
            if outcome.sessionExpiry != (connect.properties.sessionExpiryInterval ?? 0) {
                properties.set(.sessionExpiryInterval(outcome.sessionExpiry))
            }
        }
        self.state = .connected(Connected(connect: connect, clientIdentifier: clientIdentifier, principal: principal))
        self.write([.connack(MQTTConnAckPacket(sessionPresent: outcome.sessionPresent, reasonCode: .success, properties: properties))])
        context.flush()
        if keepAlive > 0 {
            let timeout = TimeAmount.milliseconds(Int64(keepAlive) * 1500)
            try? context.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: timeout), position: .first)
        }
        self.log(.debug, "client connected", metadata: ["conduit.principal": "\(principal)", "conduit.mqtt_version": "\(connect.version)"])
        for packet in pending {
            guard case .connected(var connected) = self.state else { break }
            self.packetReceived(packet, connected: &connected, context: context)
            if case .connected = self.state { self.state = .connected(connected) }
        }
        context.flush()
        if self.readHeldForAuthentication {
            self.readHeldForAuthentication = false
            if case .connected = self.state, !self.readingPaused { context.read() }
        }
    }

    // MARK: Packets of a connected client

    private func packetReceived(_ packet: MQTTPacket, connected: inout Connected, context: ChannelHandlerContext) {
        switch packet {
        case .publish(let publish):
            self.publishReceived(publish, connected: &connected, context: context)
        case .pubrel(let ack):
            let known = self.broker.releaseQoS2(
                clientIdentifier: connected.clientIdentifier, connection: self.identifier, packetIdentifier: ack.packetIdentifier
            )
            self.afterAcknowledgements {
                $0.write([.pubcomp(MQTTAckPacket(packetIdentifier: ack.packetIdentifier, reasonCode: known ? .success : .packetIdentifierNotFound))])
            }
        case .puback, .pubrec, .pubcomp:
            self.write(self.broker.acknowledged(packet, clientIdentifier: connected.clientIdentifier, connection: self.identifier))
        case .subscribe(let subscribe):
            self.subscribeReceived(subscribe, connected: connected)
        case .unsubscribe(let unsubscribe):
            let codes = self.broker.unsubscribe(
                clientIdentifier: connected.clientIdentifier, connection: self.identifier, unsubscribe.topicFilters
            )
            self.write([.unsuback(MQTTSubAckPacket(packetIdentifier: unsubscribe.packetIdentifier, reasonCodes: connected.version.hasProperties ? codes : []))])
        case .pingreq:
            self.write([.pingresp])
        case .disconnect(let disconnect):
            if let expiry = disconnect.properties.sessionExpiryInterval {
                let requested = connected.connect.properties.sessionExpiryInterval ?? 0
                guard requested != 0 || expiry == 0 else {
                    // 0 at CONNECT cannot become non-zero at DISCONNECT [MQTT-3.14.2-2].
                    return self.close(reason: .protocolError)
                }
                self.broker.updateSessionExpiry(clientIdentifier: connected.clientIdentifier, connection: self.identifier, to: expiry)
            }
            // Only a normal DISCONNECT (0x00) discards the will [MQTT-3.1.2-8, 3.14.4-3].
            self.disconnectedCleanly = disconnect.reasonCode == .normalDisconnection
            // The session lets go now, not when TLS has finished closing: a quick reconnect must
            // not look like a takeover of a live connection.
            self.broker.connectionClosed(
                clientIdentifier: connected.clientIdentifier, connection: self.identifier, publishWill: !self.disconnectedCleanly
            )
            self.state = .closed
            self.close()
        case .auth:
            self.close(reason: .protocolError)
        case .connect, .connack, .suback, .unsuback, .pingresp:
            // Packets only a server sends.
            self.close(reason: .protocolError)
        }
    }

    private func publishReceived(_ publish: MQTTPublishPacket, connected: inout Connected, context: ChannelHandlerContext) {
        var publish = publish
        let v5 = connected.version.hasProperties
        // Topic aliases (5.0): a topic with an alias sets it; an empty topic uses it.
        if let alias = publish.properties.topicAlias {
            guard alias <= self.broker.configuration.topicAliasMaximum else { return self.close(reason: .topicAliasInvalid) }
            if publish.topic.isEmpty {
                guard let topic = connected.topicAliases[alias] else { return self.close(reason: .protocolError) }
                publish.topic = topic
            } else {
                connected.topicAliases[alias] = publish.topic
            }
        }
        // What the CONNACK said the server does not take ends the connection [MQTT-3.2.2-11, -14].
        guard publish.qos <= self.broker.configuration.maximumQoS else { return self.close(reason: .qosNotSupported) }
        guard !publish.retain || self.broker.configuration.retainAvailable else { return self.close(reason: .retainNotSupported) }
        if publish.qos != .atMostOnce {
            self.unacknowledged += 1
            // Receive Maximum is a 5.0 agreement; 3.1.1 clients never heard of it.
            guard !v5 || self.unacknowledged <= Int(self.broker.configuration.receiveMaximum) else {
                return self.close(reason: .receiveMaximumExceeded)
            }
        }
        let identifier = publish.packetIdentifier ?? 0
        guard self.broker.authorizer.mayPublish(principal: connected.principal, topic: publish.topic) else {
            self.log(
                .warning, "publish refused: topic outside the client's space",
                metadata: ["conduit.principal": "\(connected.principal)", "conduit.topic": "\(publish.topic)"]
            )
            // 5.0 says why; 3.1.1 cannot, so the message is acknowledged and dropped.
            let reason: MQTTReasonCode = v5 ? .notAuthorized : .success
            switch publish.qos {
            case .atMostOnce: break
            case .atLeastOnce: self.acknowledge(.puback(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason)))
            case .exactlyOnce:
                if !v5 {
                    // 3.1.1 goes on to PUBREL, so the id is kept as if the message were handled.
                    _ = self.broker.receiveQoS2(clientIdentifier: connected.clientIdentifier, connection: self.identifier, packetIdentifier: identifier)
                    self.broker.storedQoS2(clientIdentifier: connected.clientIdentifier, connection: self.identifier, packetIdentifier: identifier)
                }
                self.acknowledge(.pubrec(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason)))
            }
            return
        }
        var route = true
        if publish.qos == .exactlyOnce {
            switch self.broker.receiveQoS2(clientIdentifier: connected.clientIdentifier, connection: self.identifier, packetIdentifier: identifier) {
            case .new:
                break
            case .routedAndStored:
                // A resend of a QoS 2 message fully handled: acknowledge it again, nothing more.
                self.acknowledge(.pubrec(MQTTAckPacket(packetIdentifier: identifier)))
                return
            case .routedNotStored:
                // Subscribers have it, the hub does not (storing failed before): store, don't route.
                route = false
            }
        }
        var properties = publish.properties
        let expiry = properties.messageExpiryInterval
        // The alias and subscription identifiers belong to this hop; the expiry is kept as a
        // deadline and written afresh, as what remains of it, on each delivery.
        properties.remove(.topicAlias, .subscriptionIdentifier, .messageExpiryInterval)
        let message = MQTTBrokerMessage(
            topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain,
            properties: properties, expiresAt: expiry.map { .now() + .seconds(Int64($0)) },
            publisherClientIdentifier: connected.clientIdentifier
        )
        if route { self.broker.published(message, publisher: self.handle) }
        let ack: MQTTPacket? =
            switch publish.qos {
            case .atMostOnce: nil
            case .atLeastOnce: .puback(MQTTAckPacket(packetIdentifier: identifier))
            case .exactlyOnce: .pubrec(MQTTAckPacket(packetIdentifier: identifier))
            }
        let markStored: () -> Void = { [broker = self.broker, clientIdentifier = connected.clientIdentifier, connection = self.identifier] in
            if publish.qos == .exactlyOnce {
                broker.storedQoS2(clientIdentifier: clientIdentifier, connection: connection, packetIdentifier: identifier)
            }
        }
        guard let observer = self.broker.observer else {
            markStored()
            if let ack { self.acknowledge(ack) }
            return
        }
        let principal = connected.principal
        let clientIdentifier = connected.clientIdentifier
        let previous = self.acknowledgementTail ?? context.eventLoop.makeSucceededVoidFuture()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        // One message at a time per connection: the hub stores them (and queues them for AWS) in
        // the order the client sent them, as MQTT orders a publisher's messages.
        let verdict = previous.flatMap {
            if loopBound.value.refusing { return eventLoop.makeSucceededFuture(MQTTPublishVerdict.refused(.quotaExceeded)) }
            let stored = eventLoop.makePromise(of: MQTTPublishVerdict.self)
            stored.completeWithTask {
                try await observer.messagePublished(principal: principal, clientIdentifier: clientIdentifier, message: message)
            }
            return stored.futureResult
        }
        let tail = verdict.map { _ in }
        self.acknowledgementTail = tail
        self.pendingStores += 1
        verdict.whenComplete { result in
            let handler = loopBound.value
            handler.pendingStores -= 1
            switch result {
            case .success(.accepted):
                handler.refusing = false
                markStored()
                if let ack { handler.acknowledge(ack) }
                handler.context?.flush()
            case .success(.refused(let reason)):
                handler.log(
                    .notice, "message refused", metadata: ["conduit.principal": "\(principal)", "conduit.reason": "\(reason)"]
                )
                handler.refusing = handler.pendingStores > 0
                if publish.qos == .exactlyOnce {
                    // The exchange ends with the refusal: the identifier is free again.
                    _ = handler.broker.releaseQoS2(clientIdentifier: clientIdentifier, connection: handler.identifier, packetIdentifier: identifier)
                }
                switch (ack, v5) {
                case (.puback?, true): handler.acknowledge(.puback(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason)))
                case (.pubrec?, true): handler.acknowledge(.pubrec(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason)))
                case (_?, false):
                    // 3.1.1 cannot hear a refusal: the connection ends unacknowledged, and the
                    // client sends the message again, in order, once it is back.
                    handler.unacknowledged -= 1
                    handler.close(reason: reason)
                default: break
                }
                handler.context?.flush()
            case .failure(let error):
                // Not stored: the client keeps the message and sends it again after reconnecting.
                handler.log(.error, "message could not be stored; closing unacknowledged", metadata: ["error": "\(error)"])
                handler.close(reason: .unspecifiedError)
            }
        }
    }

    /// Writes an acknowledgement of a client's PUBLISH after any still waiting for the observer.
    private func acknowledge(_ packet: MQTTPacket) {
        self.afterAcknowledgements { handler in
            handler.unacknowledged -= 1
            handler.write([packet])
        }
    }

    private func afterAcknowledgements(_ body: @escaping (MQTTConnectionHandler) -> Void) {
        guard self.pendingStores > 0, let tail = self.acknowledgementTail, let context = self.context else {
            return body(self)
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let next = tail.always { _ in
            body(loopBound.value)
            loopBound.value.context?.flush()
        }.map { _ in }
        self.acknowledgementTail = next
    }

    private func subscribeReceived(_ subscribe: MQTTSubscribePacket, connected: Connected) {
        let v5 = connected.version.hasProperties
        let configuration = self.broker.configuration
        if !configuration.subscriptionIdentifiersAvailable && !subscribe.properties.subscriptionIdentifiers.isEmpty {
            return self.close(reason: .subscriptionIdentifiersNotSupported)
        }
        var entries: [(MQTTSubscription, allowed: Bool)] = []
        var codes: [MQTTReasonCode?] = []
        for request in subscribe.subscriptions {
            let parsed: MQTTTopic.Filter
            do {
                parsed = try MQTTTopic.validateFilter(request.topicFilter)
            } catch {
                codes.append(v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            if parsed.shareGroup != nil && request.noLocal {
                // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
                return self.close(reason: .protocolError)
            }
            if parsed.shareGroup != nil && !configuration.sharedSubscriptionAvailable {
                codes.append(v5 ? .sharedSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            if !configuration.wildcardSubscriptionAvailable && (parsed.filter.contains("+") || parsed.filter.contains("#")) {
                codes.append(v5 ? .wildcardSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            let allowed = self.broker.authorizer.maySubscribe(principal: connected.principal, filter: parsed.filter)
            if !allowed {
                self.log(
                    .warning, "subscribe refused: filter outside the client's space",
                    metadata: ["conduit.principal": "\(connected.principal)", "conduit.filter": "\(request.topicFilter)"]
                )
            }
            entries.append(
                (
                    MQTTSubscription(
                        filter: request.topicFilter, topicFilter: parsed.filter, shareGroup: parsed.shareGroup,
                        qos: min(request.qos, configuration.maximumQoS),
                        noLocal: request.noLocal, retainAsPublished: request.retainAsPublished,
                        retainHandling: request.retainHandling, identifier: subscribe.properties.subscriptionIdentifiers.first
                    ),
                    allowed
                )
            )
            codes.append(nil)
        }
        var results = self.broker.subscribe(clientIdentifier: connected.clientIdentifier, entries, connection: self.identifier)
            .makeIterator()
        let final: [MQTTReasonCode] = codes.map { $0 ?? results.next() ?? .unspecifiedError }
        // 3.1.1 SUBACK has only 0x80 for a refusal.
        let written = v5 ? final : final.map { $0.isFailure ? .unspecifiedError : $0 }
        self.write([.suback(MQTTSubAckPacket(packetIdentifier: subscribe.packetIdentifier, reasonCodes: written))])
        let accepted = zip(subscribe.subscriptions, final).filter { !$0.1.isFailure }.map(\.0.topicFilter)
        if let observer = self.broker.deliveryObserver, !accepted.isEmpty {
            observer.clientSubscribed(clientIdentifier: connected.clientIdentifier, principal: connected.principal, filters: accepted)
        }
    }

    // MARK: Flow control

    func setReading(_ reading: Bool) {
        guard let context = self.context, reading == self.readingPaused else { return }
        self.readingPaused = !reading
        context.channel.setOption(ChannelOptions.autoRead, value: reading).whenComplete { _ in }
        if reading {
            self.pauseLimit?.cancel()
            self.pauseLimit = nil
            context.read()
        } else {
            // A pause is short: two clients that feed each other could otherwise wait on each
            // other for ever. Past it the client is read again, and only a queue ten times the
            // limit loses messages.
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            self.pauseLimit = context.eventLoop.scheduleTask(in: .milliseconds(500)) { loopBound.value.setReading(true) }
        }
    }

    func read(context: ChannelHandlerContext) {
        // While authenticating, reads wait: what the client sends after its CONNECT stays in
        // the kernel, and TCP holds the client back, rather than piling up here.
        if case .authenticating = self.state {
            self.readHeldForAuthentication = true
            return
        }
        // While paused, reads wait: bytes stay in the kernel and TCP slows the client.
        guard !self.readingPaused else { return }
        context.read()
    }

    // MARK: Output

    func write(_ packets: [MQTTPacket]) {
        guard let context = self.context, context.channel.isActive else { return }
        for packet in packets {
            var packet = packet
            if self.outboundAliasMaximum > 0, case .publish(let publish) = packet {
                packet = .publish(self.aliased(publish))
            }
            var buffer = context.channel.allocator.buffer(capacity: 64)
            packet.write(to: &buffer, version: self.version)
            context.write(self.wrapOutboundOut(buffer), promise: nil)
        }
    }

    /// A PUBLISH to a 5.0 client with a topic alias: the topic's alias alone once it has one,
    /// else the topic with a new alias while the client's maximum allows, else unchanged. Called
    /// in the order packets are written, which is the order the client learns the aliases in.
    private func aliased(_ publish: MQTTPublishPacket) -> MQTTPublishPacket {
        var publish = publish
        if let alias = self.outboundAliases[publish.topic] {
            publish.topic = ""
            publish.properties.set(.topicAlias(alias))
            return publish
        }
        guard self.outboundAliases.count < Int(self.outboundAliasMaximum) else { return publish }
        let alias = UInt16(self.outboundAliases.count + 1)
        var withAlias = publish
        withAlias.properties.set(.topicAlias(alias))
        // The alias costs three bytes; a packet it would push past the client's maximum goes without.
        guard MQTTPacket.publish(withAlias).encodedSize(version: .v5) <= self.clientMaximumPacketSize else { return publish }
        self.outboundAliases[publish.topic] = alias
        return withAlias
    }

    /// Closes the connection; on 5.0 after a DISCONNECT with `reason` once connected [MQTT-4.13.2].
    func close(reason: MQTTReasonCode? = nil) {
        guard let context = self.context else { return }
        if let reason, case .connected(let connected) = self.state, connected.version.hasProperties {
            self.write([.disconnect(MQTTReasonPacket(reasonCode: reason))])
        }
        if case .connected = self.state {} else { self.state = .closed }
        context.flush()
        context.close(promise: nil)
    }
}

/// The connection handler as the broker's closures see it: weakly, so that a session outliving
/// its connection does not keep the connection alive. Used only on the handler's event loop.
final class WeakHandlerReference: @unchecked Sendable {
    weak var handler: MQTTConnectionHandler?

    init(_ handler: MQTTConnectionHandler) {
        self.handler = handler
    }
}
