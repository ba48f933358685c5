import Logging
import MQTT
import NIOCore
import NIOPosix
import NIOSSL

/// One client connection on its channel's event loop: decodes the bytes it reads, feeds the
/// packets to its ``MQTTConnectionStateMachine`` and carries out the actions that come back
/// (writes, timers, the authenticator, the broker's session verbs, the hub's observer).
///
/// It decodes with ``MQTTPacketDecoder`` itself rather than behind NIO's ByteToMessageHandler:
/// that handler, its two buffers and its pipeline slot cost every idle connection about 600
/// bytes, and an idle connection has nothing to decode.
final class MQTTConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    /// Sent through the pipeline when the broker shuts down.
    struct ServerShutdown {}

    private let broker: MQTTBroker
    private let tls: Bool
    private var state: MQTTConnectionStateMachine
    private var decoder: MQTTPacketDecoder
    /// The bytes of a packet not yet whole; nil between packets, which is most of the time.
    private var partial: ByteBuffer?
    /// The connection is closing (a malformed packet, a refusal, a violation, DISCONNECT):
    /// whatever else the client sent is not handled.
    private var closing = false
    private var context: ChannelHandlerContext?
    /// Its event loop's deadlines, where this connection has the CONNECT deadline until CONNECT
    /// came (none while the authenticator runs), then the keep-alive check.
    private var timers: MQTTConnectionTimers?
    /// Acknowledgements leave in the order their PUBLISHes came [MQTT-4.6.0-2], each after the
    /// observer has the message: this is the tail of that chain.
    private var acknowledgementTail: EventLoopFuture<Void>?
    /// This connection as the broker knows it, once connected.
    private var handle: MQTTConnectionHandle?
    /// Reads are held back by flow control (a subscriber this client feeds is behind).
    private var readingPaused = false
    /// A read the pipeline asked for while the state machine held reads, done once it lets go.
    private var readHeld = false
    private var pauseLimit: Scheduled<Void>?
    /// Messages and payload bytes handed to the observer whose verdict has not come.
    private var pendingIngest = (messages: 0, bytes: 0)
    /// Reads are held back until the observer has caught up with this client.
    private var ingestHeld = false
    private var readHeldByIngest = false
    /// When the authenticator was asked; a revocation after it wins over its verdict.
    private var authenticationStarted = NIODeadline.now()
    /// The client's session as a shared store kept it, read once it was let in.
    private var storedSession: MQTTSessionRecord?
    /// The client's address, as the per-address bounds count it; nil once let go.
    private var address: String?
    /// The address holds more connections than it may: this one's CONNECT is refused.
    private var overAddressLimit = false

    init(broker: MQTTBroker, tls: Bool) {
        self.broker = broker
        self.tls = tls
        self.state = MQTTConnectionStateMachine(configuration: broker.sharedConfiguration)
        // Until the CONNACK, only a small packet: CONNECT costs nothing much before it is authenticated.
        self.decoder = MQTTPacketDecoder(
            maximumPacketSize: min(broker.configuration.maximumPacketSize, broker.configuration.maximumConnectPacketSize ?? .max)
        )
    }

    private var identifier: ObjectIdentifier { ObjectIdentifier(self) }

    /// Logs with this connection's peer and client id. The logger is made only for a message its
    /// level lets through: kept per connection, its metadata cost every idle connection half a
    /// kilobyte, and made for every message, a debug line's cost every connect.
    private func log(_ level: Logger.Level, _ message: @autoclosure () -> Logger.Message, metadata: @autoclosure () -> Logger.Metadata = [:]) {
        guard self.broker.logger.logLevel <= level else { return }
        var logger = self.broker.logger
        logger[metadataKey: "conduit.peer"] = "\(self.context?.remoteAddress?.description ?? "?")"
        if let clientIdentifier = self.state.clientIdentifier { logger[metadataKey: "conduit.client_id"] = "\(clientIdentifier)" }
        logger.log(level: level, message(), metadata: metadata())
    }

    /// The client's certificate (DER) and its CN, on a TLS connection where it presented a valid one.
    private func peerCertificate(_ context: ChannelHandlerContext) -> (der: [UInt8], commonName: String?)? {
        guard self.tls, let handler = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
            let certificate = handler.peerCertificate, let der = try? certificate.toDERBytes()
        else { return nil }
        return (der, MQTTBroker.commonName(ofCertificate: der))
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let address = MQTTAdmission.key(for: context.channel.remoteAddress)
        self.address = address
        self.overAddressLimit = !self.broker.admission.opened(address, now: .now())
        // A connection past its address's bound gets a second, not the usual wait, to send the
        // CONNECT it will be refused.
        let deadline = self.overAddressLimit ? .seconds(1) : self.broker.configuration.connectTimeout
        let timers = self.broker.timers(on: context.eventLoop)
        self.timers = timers
        timers.set(context.eventLoop.now + deadline, for: self)
    }

    /// The deadline this connection last set has passed: the CONNECT's, or the keep-alive check's.
    func deadlinePassed(now: NIODeadline) {
        if self.state.isConnected {
            self.run(self.state.keepAliveCheckDue(now: now))
        } else if !self.state.holdsReads {
            self.log(.debug, "no CONNECT in time")
            self.run(self.state.closeRequested(nil))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.releaseAddress()
        self.context = nil
        self.handle = nil
        self.timers?.remove(self)
        self.timers = nil
        self.pauseLimit?.cancel()
    }

    private func releaseAddress() {
        guard let address = self.address else { return }
        self.address = nil
        self.broker.admission.closed(address, now: .now())
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.releaseAddress()
        self.timers?.remove(self)
        if let clientIdentifier = self.state.channelInactive() {
            self.broker.connectionClosed(clientIdentifier: clientIdentifier, connection: self.identifier, publishWill: true)
            self.log(.debug, "client disconnected")
        }
        self.handle = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ServerShutdown {
            self.run(self.state.closeRequested(.serverShuttingDown))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let protocolError = error as? MQTTProtocolError else {
            self.log(.debug, "connection error", metadata: ["error": "\(error)"])
            return self.run(self.state.closeRequested(nil))
        }
        if protocolError.reasonCode == .packetTooLarge && !self.state.isConnected { MQTTRefusals.count("connect_size") }
        self.log(.info, "protocol violation; closing", metadata: ["error": "\(protocolError)"])
        self.run(self.state.protocolViolation(protocolError.reasonCode))
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.closing else { return }
        var buffer = self.unwrapInboundIn(data)
        let now = context.eventLoop.now
        do {
            if self.partial != nil {
                // Only the packet that straddled two reads is put together; the rest of this
                // read is decoded where it lies, its payloads slices of it, not copied.
                guard var whole = try self.completePartial(from: &buffer) else { return }
                if let packet = try self.decoder.decode(buffer: &whole) {
                    self.run(self.state.packetReceived(packet, now: now, authorizer: self.broker.authorizer))
                }
            }
            while !self.closing, let packet = try self.decoder.decode(buffer: &buffer) {
                self.run(self.state.packetReceived(packet, now: now, authorizer: self.broker.authorizer))
            }
        } catch {
            self.closing = true
            self.errorCaught(context: context, error: error)
            return
        }
        if buffer.readableBytes > 0 && !self.closing {
            // A copy of the few bytes left, so that the read's whole buffer is not kept for them.
            var partial = context.channel.allocator.buffer(capacity: buffer.readableBytes)
            partial.writeBuffer(&buffer)
            self.partial = partial
        }
    }

    /// Moves bytes from the front of `buffer` into the partial packet until it is whole, and
    /// returns it; nil when this read did not finish it (the bytes are kept for the next).
    private func completePartial(from buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard var partial = self.partial else { return nil }
        self.partial = nil
        // The fixed header first (at most 5 bytes), then exactly the rest of the packet.
        var length = try MQTTPacketDecoder.packetLength(in: partial)
        while length == nil {
            guard var byte = buffer.readSlice(length: 1) else {
                self.partial = partial
                return nil
            }
            partial.writeBuffer(&byte)
            length = try MQTTPacketDecoder.packetLength(in: partial)
        }
        let total = length!
        let maximum = self.decoder.maximumPacketSize
        guard total <= maximum else {
            throw MQTTProtocolError(.packetTooLarge, "packet of \(total) bytes is over the maximum of \(maximum)")
        }
        var rest = buffer.readSlice(length: min(total - partial.readableBytes, buffer.readableBytes))!
        partial.writeBuffer(&rest)
        guard partial.readableBytes == total else {
            self.partial = partial
            return nil
        }
        return partial
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func read(context: ChannelHandlerContext) {
        // While authenticating, and while flow control holds this publisher back, the bytes stay
        // in the kernel and TCP slows the client.
        guard !self.state.holdsReads else {
            self.readHeld = true
            return
        }
        guard !self.readingPaused else { return }
        guard !self.ingestHeld else {
            self.readHeldByIngest = true
            return
        }
        context.read()
    }

    // MARK: Actions

    private func run(_ action: MQTTConnectionStateMachine.Action) {
        guard let context = self.context else { return }
        switch action {
        case .none:
            break
        case .write(let packets):
            self.write(packets)
        case .authenticate(let connect, let clientIdentifier):
            self.timers?.remove(self)
            // The small bound is for CONNECT alone: what the client sent after it, before its
            // CONNACK (as MQTT allows), may be as large as any packet.
            self.decoder.maximumPacketSize = self.broker.configuration.maximumPacketSize
            self.authenticate(connect, clientIdentifier: clientIdentifier, context: context)
        case .refuse(let connack):
            self.closing = true
            self.broker.metrics.refused.increment()
            self.write([.connack(connack)])
            context.flush()
            context.close(promise: nil)
        case .attachSession(let connect, let clientIdentifier, let principal):
            self.attachSession(connect, clientIdentifier: clientIdentifier, principal: principal, context: context)
        case .connected(let connack, let keepAliveCheck, let replay):
            self.decoder.maximumPacketSize = self.broker.configuration.maximumPacketSize
            self.write([.connack(connack)])
            context.flush()
            if let keepAliveCheck { self.scheduleKeepAliveCheck(at: keepAliveCheck) }
            self.log(.debug, "client connected", metadata: ["conduit.mqtt_version": "\(self.state.version)"])
            for packet in replay {
                self.run(self.state.packetReceived(packet, now: context.eventLoop.now, authorizer: self.broker.authorizer))
            }
            context.flush()
            if self.readHeld {
                self.readHeld = false
                if self.state.isConnected { self.read(context: context) }
            }
        case .scheduleKeepAliveCheck(let deadline):
            self.scheduleKeepAliveCheck(at: deadline)
        case .close(let reason, let disconnect):
            self.closing = true
            if reason == .keepAliveTimeout { self.log(.debug, "keep-alive expired") }
            if let disconnect { self.write([disconnect]) }
            context.flush()
            context.close(promise: nil)
        case .publish(let message, let packetIdentifier, let acknowledgement):
            self.publish(message, packetIdentifier: packetIdentifier, acknowledgement: acknowledgement, context: context)
        case .publishNotAuthorized(let message, let acknowledgement):
            self.log(.warning, "publish refused: topic outside the client's space", metadata: ["conduit.topic": "\(message.topic)"])
            if case .pubrec(let ack)? = acknowledgement, !ack.reasonCode.isFailure, let clientIdentifier = self.state.clientIdentifier {
                // 3.1.1 goes on to PUBREL, so the id is kept as if the message were handled.
                _ = self.broker.receiveQoS2(clientIdentifier: clientIdentifier, connection: self.identifier, packetIdentifier: ack.packetIdentifier)
                self.broker.storedQoS2(clientIdentifier: clientIdentifier, connection: self.identifier, packetIdentifier: ack.packetIdentifier)
            }
            if let acknowledgement { self.acknowledge(acknowledgement) }
        case .release(let packetIdentifier):
            guard let clientIdentifier = self.state.clientIdentifier else { return }
            let known = self.broker.releaseQoS2(clientIdentifier: clientIdentifier, connection: self.identifier, packetIdentifier: packetIdentifier)
            let pubcomp = MQTTPacket.pubcomp(MQTTAckPacket(packetIdentifier: packetIdentifier, reasonCode: known ? .success : .packetIdentifierNotFound))
            self.afterAcknowledgements { $0.write([pubcomp]) }
        case .acknowledgementReceived(let packet):
            guard let clientIdentifier = self.state.clientIdentifier, let handle = self.handle else { return }
            self.write(self.broker.acknowledged(packet, clientIdentifier: clientIdentifier, connection: handle))
        case .subscribe(let request):
            guard let clientIdentifier = self.state.clientIdentifier, let principal = self.state.principal else { return }
            for (subscription, allowed) in zip(request.subscriptions, request.allowed) where !allowed {
                self.log(.warning, "subscribe refused: filter outside the client's space", metadata: ["conduit.filter": "\(subscription.filter)"])
            }
            let codes = self.broker.subscribe(
                clientIdentifier: clientIdentifier, Array(zip(request.subscriptions, request.allowed)), connection: self.identifier
            )
            let (suback, accepted) = self.state.subscribed(request, brokerCodes: codes)
            self.write([suback])
            if let observer = self.broker.deliveryObserver, !accepted.isEmpty {
                observer.clientSubscribed(clientIdentifier: clientIdentifier, principal: principal, filters: accepted)
            }
        case .unsubscribe(let packetIdentifier, let filters):
            guard let clientIdentifier = self.state.clientIdentifier else { return }
            let codes = self.broker.unsubscribe(clientIdentifier: clientIdentifier, connection: self.identifier, filters)
            self.write([self.state.unsubscribed(packetIdentifier: packetIdentifier, codes: codes)])
        case .disconnect(let clientIdentifier, let publishWill, let sessionExpiry):
            self.closing = true
            if let sessionExpiry {
                self.broker.updateSessionExpiry(clientIdentifier: clientIdentifier, connection: self.identifier, to: sessionExpiry)
            }
            // The session lets go now, not when TLS has finished closing: a quick reconnect must
            // not look like a takeover of a live connection.
            self.broker.connectionClosed(clientIdentifier: clientIdentifier, connection: self.identifier, publishWill: publishWill)
            context.flush()
            context.close(promise: nil)
        }
    }

    private func scheduleKeepAliveCheck(at deadline: NIODeadline) {
        guard self.context != nil else { return }
        self.timers?.set(deadline, for: self)
    }

    // MARK: CONNECT

    private func authenticate(_ connect: MQTTConnectPacket, clientIdentifier: String, context: ChannelHandlerContext) {
        self.authenticationStarted = .now()
        // The per-address bounds, before the authenticator (and the store behind it) is asked.
        let address = self.address ?? "unknown"
        var refusal: (bound: String, code: MQTTReasonCode, explanation: String)?
        if self.overAddressLimit {
            refusal = ("connections_per_address", .quotaExceeded, "this address holds as many connections as it may")
        } else if let will = connect.will, will.retain,
            !self.broker.mayRetain(clientIdentifier: clientIdentifier, topic: will.topic, bytes: will.payload.readableBytes)
        {
            // A retained will counts against the same bound as a retained PUBLISH.
            refusal = ("retained", .quotaExceeded, "a retained will would take the client past its retained messages' bound")
        } else {
            switch self.broker.admission.connectAttempt(address, now: .now()) {
            case .allow: break
            case .rateExceeded: refusal = ("connect_rate", .connectionRateExceeded, "too many CONNECTs from this address; slow down")
            case .paused: refusal = ("login_failures", .connectionRateExceeded, "too many failed logins from this address; try again later")
            }
        }
        if let refusal {
            MQTTRefusals.count(refusal.bound)
            self.log(.info, "connection refused", metadata: ["conduit.client_id": "\(clientIdentifier)", "conduit.reason": "\(refusal.explanation)"])
            return self.run(self.state.authenticated(.reject(refusal.code, explanation: refusal.explanation), authorizer: self.broker.authorizer))
        }
        let certificate = self.peerCertificate(context)
        let request = MQTTConnectRequest(
            clientIdentifier: clientIdentifier, username: connect.username, password: connect.password,
            version: connect.version, certificateCommonName: certificate?.commonName, certificateDER: certificate?.der
        )
        let authenticator = self.broker.authenticator
        // A shared store may hold a session another node left: it is read before the client is
        // attached, and a client that cannot have it now is refused rather than given a new one.
        let sharedStore = connect.cleanStart ? nil : self.broker.sessionStore.flatMap { $0.isShared ? $0 : nil }
        let journal = self.broker.journal
        let eventLoop = context.eventLoop
        let promise = context.eventLoop.makePromise(of: (MQTTAuthenticationResult, MQTTSessionRecord?).self)
        promise.completeWithTask {
            let result = await authenticator.authenticate(request)
            guard case .accept = result, let sharedStore else { return (result, nil) }
            do {
                // What this node wrote of the session (its last disconnect here) is in the store first.
                try await journal?.caughtUp(on: eventLoop).get()
                return (result, try await sharedStore.storedSession(clientIdentifier: clientIdentifier))
            } catch {
                return (.reject(.serverUnavailable, explanation: "the client's session cannot be read now; try again"), nil)
            }
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess { result, stored in
            let handler = loopBound.value
            handler.storedSession = stored
            if case .reject(let reason, let explanation) = result {
                // Wrong credentials only: a pending or rejected device that knows its secret, retrying
                // behind an address it shares, must not pause every device there.
                if reason == .badUserNameOrPassword {
                    handler.broker.admission.loginFailed(address, now: .now())
                }
                handler.log(
                    .info, "connection refused",
                    metadata: ["conduit.client_id": "\(clientIdentifier)", "conduit.reason": "\(explanation ?? "\(reason)")"]
                )
            }
            handler.run(handler.state.authenticated(result, authorizer: handler.broker.authorizer))
        }
    }

    private func attachSession(_ connect: MQTTConnectPacket, clientIdentifier: String, principal: String, context: ChannelHandlerContext) {
        // The broker keeps the handle for as long as the session lives; it reaches this handler
        // weakly, so a closed connection's handler and channel are freed.
        let eventLoop = context.eventLoop
        let handle = MQTTConnectionHandle(
            identifier: self.identifier, version: connect.version,
            receiveMaximum: Int(connect.properties.receiveMaximum ?? UInt16.max),
            maximumPacketSize: self.state.clientMaximumPacketSize, eventLoop: eventLoop, handler: self
        )
        let outcome = self.broker.connect(
            connect, clientIdentifier: clientIdentifier, principal: principal, handle: handle, authenticatedSince: self.authenticationStarted,
            stored: self.storedSession
        )
        self.storedSession = nil
        if outcome != nil { self.handle = handle }
        self.run(self.state.sessionAttached(outcome, now: eventLoop.now))
    }

    func closeRequested(_ reason: MQTTReasonCode?) {
        self.run(self.state.closeRequested(reason))
    }

    // MARK: PUBLISH from the client

    private func publish(_ message: MQTTBrokerMessage, packetIdentifier: UInt16, acknowledgement: MQTTPacket?, context: ChannelHandlerContext) {
        guard let clientIdentifier = self.state.clientIdentifier, let principal = self.state.principal else { return }
        if message.retain, !self.broker.mayRetain(clientIdentifier: clientIdentifier, topic: message.topic, bytes: message.payload.readableBytes) {
            return self.refuseRetained(message, packetIdentifier: packetIdentifier, acknowledgement: acknowledgement, clientIdentifier: clientIdentifier)
        }
        var route = true
        var earlierTicket: Int?
        if message.qos == .exactlyOnce {
            switch self.broker.receiveQoS2(clientIdentifier: clientIdentifier, connection: self.identifier, packetIdentifier: packetIdentifier) {
            case .new:
                break
            case .routedAndStored:
                // A resend of a QoS 2 message fully handled: acknowledge it again, nothing more.
                if let acknowledgement { self.acknowledge(acknowledgement) }
                return
            case .routedNotStored(let ticket):
                // Subscribers have it, the hub does not (storing failed before): store, don't
                // route, and wait again for the persistent sessions that took it.
                route = false
                earlierTicket = ticket
            }
        }
        let ticket =
            route
            ? self.broker.published(message, publisher: self.handle, qos2PacketIdentifier: message.qos == .exactlyOnce ? packetIdentifier : nil)
            : earlierTicket
        // A persistent session that took the message must have it in the store before the
        // publisher hears it was received.
        let durable = ticket.map { self.broker.durable($0, on: context.eventLoop) }
        let markStored: @Sendable () -> Void = { [broker = self.broker, connection = self.identifier] in
            if message.qos == .exactlyOnce {
                broker.storedQoS2(clientIdentifier: clientIdentifier, connection: connection, packetIdentifier: packetIdentifier)
            }
        }
        let observer = self.broker.observer
        guard observer != nil || durable != nil else {
            markStored()
            if let acknowledgement { self.acknowledge(acknowledgement) }
            return
        }
        let previous = self.acknowledgementTail ?? context.eventLoop.makeSucceededVoidFuture()
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        self.state.storeStarted()
        // Handed to the observer now, without waiting for the verdict on the one before: it
        // keeps the client's order (the hub stores a batch of them in one transaction, in the
        // order they came), and the verdicts are handled below in that order too.
        let submitted =
            observer?.messagePublished(principal: principal, clientIdentifier: clientIdentifier, message: message, on: eventLoop)
            ?? eventLoop.makeSucceededFuture(.accepted)
        let stored = submitted.flatMap { verdict in
            durable.map { $0.map { verdict } } ?? eventLoop.makeSucceededFuture(verdict)
        }
        let size = message.payload.readableBytes
        self.ingestPending(messages: 1, bytes: size)
        let verdict = previous.flatMap { stored }
        self.acknowledgementTail = verdict.map { _ in }
        verdict.whenComplete { result in
            let handler = loopBound.value
            handler.ingestPending(messages: -1, bytes: -size)
            let outcome: MQTTConnectionStateMachine.StoreOutcome
            switch result {
            case .success(.accepted) where handler.state.refusesUnasked:
                // Behind a refusal: refused too, so that it does not overtake the refused one
                // (stored already, it is stored again when the client sends it again).
                outcome = .refused(.quotaExceeded)
            case .success(.accepted):
                markStored()
                outcome = .accepted
            case .success(.refused(let reason)):
                handler.log(.notice, "message refused", metadata: ["conduit.principal": "\(principal)", "conduit.reason": "\(reason)"])
                if message.qos == .exactlyOnce {
                    // The exchange ends with the refusal: the identifier is free again.
                    _ = handler.broker.releaseQoS2(clientIdentifier: clientIdentifier, connection: handler.identifier, packetIdentifier: packetIdentifier)
                }
                outcome = .refused(reason)
            case .failure(let error):
                handler.log(.error, "message could not be stored; closing unacknowledged", metadata: ["error": "\(error)"])
                outcome = .failed
            }
            handler.run(handler.state.storeCompleted(outcome, acknowledgement: acknowledgement))
            handler.context?.flush()
        }
    }

    /// Counts the messages and bytes handed to the observer and not yet answered, and stops
    /// reading the socket while they are over the bound: a client that publishes faster than the
    /// store takes is slowed by TCP, not buffered here, QoS 0 included.
    private func ingestPending(messages: Int, bytes: Int) {
        self.pendingIngest.messages += messages
        self.pendingIngest.bytes += bytes
        let limits = self.broker.configuration
        let over = self.pendingIngest.messages >= limits.maximumPendingPublishes || self.pendingIngest.bytes >= limits.maximumPendingPublishBytes
        if over && !self.ingestHeld {
            self.ingestHeld = true
            self.broker.metrics.ingestPaused.increment()
        } else if self.ingestHeld && self.pendingIngest.messages <= limits.maximumPendingPublishes / 2
            && self.pendingIngest.bytes <= limits.maximumPendingPublishBytes / 2
        {
            self.ingestHeld = false
            if self.readHeldByIngest, let context = self.context {
                self.readHeldByIngest = false
                self.read(context: context)
            }
        }
    }

    /// Writes an acknowledgement of a client's PUBLISH after any still waiting for the observer.
    /// A retained message past the client's bound: neither routed nor stored. A 5.0 client
    /// hears 0x97 in its PUBACK or PUBREC; a QoS 0 or 3.1.1 one, which cannot, is disconnected
    /// (5.0: DISCONNECT 0x97) rather than believe it was kept.
    private func refuseRetained(_ message: MQTTBrokerMessage, packetIdentifier: UInt16, acknowledgement: MQTTPacket?, clientIdentifier: String) {
        MQTTRefusals.count("retained")
        self.log(.notice, "retained message refused: over the client's bound", metadata: ["conduit.topic": "\(message.topic)"])
        switch acknowledgement {
        case .puback(var ack)? where self.state.version.hasProperties:
            ack.reasonCode = .quotaExceeded
            self.acknowledge(.puback(ack))
        case .pubrec(var ack)? where self.state.version.hasProperties:
            _ = self.broker.releaseQoS2(clientIdentifier: clientIdentifier, connection: self.identifier, packetIdentifier: packetIdentifier)
            ack.reasonCode = .quotaExceeded
            self.acknowledge(.pubrec(ack))
        default:
            self.run(self.state.closeRequested(.quotaExceeded))
        }
    }

    private func acknowledge(_ packet: MQTTPacket) {
        self.afterAcknowledgements { handler in
            handler.state.acknowledgementSent()
            handler.write([packet])
        }
    }

    private func afterAcknowledgements(_ body: @escaping (MQTTConnectionHandler) -> Void) {
        guard self.state.storesPending, let tail = self.acknowledgementTail, let context = self.context else {
            return body(self)
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let boundBody = NIOLoopBound(body, eventLoop: context.eventLoop)
        self.acknowledgementTail = tail.always { _ in
            boundBody.value(loopBound.value)
            loopBound.value.context?.flush()
        }.map { _ in }
    }

    // MARK: Flow control

    func setReading(_ reading: Bool) {
        guard let context = self.context, reading == self.readingPaused else { return }
        self.readingPaused = !reading
        context.channel.setOption(ChannelOptions.autoRead, value: reading).whenComplete { _ in }
        if reading {
            self.pauseLimit?.cancel()
            self.pauseLimit = nil
            self.read(context: context)
        } else {
            // A pause is short: two clients that feed each other could otherwise wait on each
            // other for ever. Past it the client is read again, and only a queue ten times the
            // limit loses messages.
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            self.pauseLimit = context.eventLoop.scheduleTask(in: .milliseconds(500)) { loopBound.value.setReading(true) }
        }
    }

    // MARK: Output

    /// Encodes the packets, in order, into one buffer and writes it: a batch from the mailbox
    /// costs one allocation and one write, not one per message.
    func flush() {
        self.context?.flush()
    }

    func write(_ packets: [MQTTPacket]) {
        guard let context = self.context, context.channel.isActive, !packets.isEmpty else { return }
        let encoder = MQTTPacketEncoder(version: self.state.version)
        let capacity = packets.reduce(0) { $0 + $1.bodySizeHint + 5 }
        var buffer = context.channel.allocator.buffer(capacity: capacity)
        for packet in packets {
            var packet = packet
            if case .publish(let publish) = packet { packet = .publish(self.state.publishToSend(publish)) }
            encoder.encode(data: packet, out: &buffer)
        }
        context.write(self.wrapOutboundOut(buffer), promise: nil)
    }
}
