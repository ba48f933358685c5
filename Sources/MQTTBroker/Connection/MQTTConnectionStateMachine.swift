import MQTT
import NIOCore

/// One client connection as the protocol sees it, from CONNECT to its end: authentication's
/// outcome, the CONNACK, keep-alive, the client's publishes with their topic aliases, receive
/// maximum and acknowledgements, subscriptions and DISCONNECT.
///
/// It never touches a channel, a clock, a lock or a task: time comes in as `now`, and every
/// packet to write, timer to set and question for the broker goes out as an ``Action``, which
/// ``MQTTConnectionHandler`` carries out. A session's own rules (what is in flight to the
/// client, wills, expiry) are ``MQTTSessionState``'s.
struct MQTTConnectionStateMachine {
    enum Action: Equatable {
        /// Nothing to do.
        case none
        /// Write these packets.
        case write([MQTTPacket])
        /// Ask the authenticator about this client (its identifier, maybe assigned).
        case authenticate(MQTTConnectPacket, clientIdentifier: String)
        /// Write this CONNACK refusal and close.
        case refuse(MQTTConnAckPacket)
        /// Attach the connection to its session in the broker, then call ``sessionAttached(_:now:)``.
        case attachSession(MQTTConnectPacket, clientIdentifier: String, principal: String)
        /// Write the CONNACK, check keep-alive at `keepAliveCheck`, then handle `replay`: what the
        /// client sent while it was being authenticated.
        case connected(MQTTConnAckPacket, keepAliveCheck: NIODeadline?, replay: [MQTTPacket])
        /// Check keep-alive again at this moment.
        case scheduleKeepAliveCheck(NIODeadline)
        /// Close the connection; a 5.0 client first gets a DISCONNECT with `reason` when given.
        case close(reason: MQTTReasonCode?, disconnect: MQTTPacket?)
        /// Route `message`, hand it to the hub's observer, then write `acknowledgement` in order.
        case publish(MQTTBrokerMessage, packetIdentifier: UInt16, acknowledgement: MQTTPacket?)
        /// The topic is not the client's: write `acknowledgement` in order (a refusal on 5.0, a
        /// plain one on 3.1.1, which cannot hear refusals) and drop the message.
        case publishNotAuthorized(MQTTBrokerMessage, acknowledgement: MQTTPacket?)
        /// PUBREL: release the identifier in the session and answer PUBCOMP in order.
        case release(packetIdentifier: UInt16)
        /// PUBACK, PUBREC or PUBCOMP for a message the broker sent.
        case acknowledgementReceived(MQTTPacket)
        /// Ask the broker to add these subscriptions, then call ``subscribed(_:brokerCodes:)``.
        case subscribe(SubscribeRequest)
        /// Ask the broker to remove these filters, then write ``unsubscribed(packetIdentifier:codes:)``.
        case unsubscribe(packetIdentifier: UInt16, filters: [String])
        /// The client said DISCONNECT: end the session's connection (with the will unless it
        /// was normal), after setting its expiry when the client changed it; then close.
        case disconnect(clientIdentifier: String, publishWill: Bool, sessionExpiry: UInt32?)
    }

    /// A SUBSCRIBE checked: what to ask the broker for, and the codes already decided.
    struct SubscribeRequest: Equatable {
        var packetIdentifier: UInt16
        /// Each filter as the client sent it.
        var filters: [String]
        /// For the broker: each subscription, and whether the client may have it.
        var subscriptions: [MQTTSubscription]
        var allowed: [Bool]
        /// One per requested filter: a code decided here (invalid, unsupported), or nil for the broker's.
        var decided: [MQTTReasonCode?]
        /// Why a filter was refused here, for a 5.0 client's SUBACK reason string.
        var reason: String? = nil
    }

    /// What the hub's observer did with a publish.
    enum StoreOutcome: Equatable {
        case accepted
        case refused(MQTTReasonCode)
        case failed
    }

    private enum State {
        case awaitingConnect
        /// `principal` is set once the authenticator accepted the client. Boxed: inline, the
        /// CONNECT would size the state of every connection long after it was handled.
        indirect case authenticating(MQTTConnectPacket, clientIdentifier: String, principal: String?)
        case connected(Connected)
        case closed
    }

    private struct Connected {
        /// Whether the client asked for a session expiry above 0 (5.0), which DISCONNECT may
        /// then change. The CONNECT itself is not kept: an idle connection would carry it.
        var requestedSessionExpiry: Bool
        var clientIdentifier: String
        var principal: String
        /// Seconds; 0 for none.
        var keepAlive: UInt16
        var lastPacket: NIODeadline
        /// Topic aliases the client set.
        var inboundAliases: [UInt16: String] = [:]
        /// Topic aliases the broker set towards the client, first come first served.
        var outboundAliases: [String: UInt16] = [:]
        var outboundAliasMaximum: UInt16
        /// The client's QoS 1 and 2 publishes not yet acknowledged, against the receive maximum.
        var unacknowledged = 0
        /// Publishes handed to the observer whose outcome is not known.
        var pendingStores = 0
        /// The observer refused a message: those behind it are refused too, so none overtakes
        /// it, until the pending ones are through.
        var refusing = false
    }

    /// The broker's configuration, held once for all its connections: a copy in each would
    /// cost every idle connection a quarter of a kilobyte.
    final class SharedConfiguration: Sendable {
        let configuration: MQTTBrokerConfiguration

        init(_ configuration: MQTTBrokerConfiguration) {
            self.configuration = configuration
        }
    }

    private let shared: SharedConfiguration
    var configuration: MQTTBrokerConfiguration { self.shared.configuration }
    private var state = State.awaitingConnect
    /// Packets that came with or after CONNECT while authentication ran. Beside the state, not
    /// in it: appending to an array held in an enum payload copies it.
    private var early: [MQTTPacket] = []
    /// How packets are encoded for this client: 5.0 until CONNECT says otherwise.
    private(set) var version: MQTTProtocolVersion = .v5
    /// The client's Maximum Packet Size (5.0), which no packet to it may exceed.
    private(set) var clientMaximumPacketSize = Int.max

    init(configuration: SharedConfiguration) {
        self.shared = configuration
    }

    init(configuration: MQTTBrokerConfiguration) {
        self.init(configuration: SharedConfiguration(configuration))
    }

    /// The client identifier, once connected.
    var clientIdentifier: String? {
        if case .connected(let connected) = self.state { return connected.clientIdentifier }
        return nil
    }

    /// Who the authenticator said the client is, once connected.
    var principal: String? {
        if case .connected(let connected) = self.state { return connected.principal }
        return nil
    }

    /// Publishes are with the observer: acknowledgements wait their turn behind them.
    var storesPending: Bool {
        if case .connected(let connected) = self.state { return connected.pendingStores > 0 }
        return false
    }

    var isConnected: Bool {
        if case .connected = self.state { return true }
        return false
    }

    /// While authentication runs, the socket is not read: what the client sends next stays in
    /// the kernel, and TCP holds the client back, rather than piling up here.
    var holdsReads: Bool {
        if case .authenticating = self.state { return true }
        return false
    }

    // MARK: CONNECT

    /// The first packet. Anything but CONNECT closes the connection [MQTT-3.1.0-1].
    mutating func connectReceived(_ connect: MQTTConnectPacket) -> Action {
        guard case .awaitingConnect = self.state else { return self.protocolViolation(.protocolError) }
        self.version = connect.version
        self.clientMaximumPacketSize = connect.properties.maximumPacketSize.map { Int($0) } ?? .max
        var clientIdentifier = connect.clientIdentifier
        if clientIdentifier.isEmpty {
            // A server-assigned identifier, for clean sessions only [MQTT-3.1.3-8].
            guard connect.cleanStart || connect.version.hasProperties && (connect.properties.sessionExpiryInterval ?? 0) == 0 else {
                return self.refusal(.clientIdentifierNotValid, explanation: "an empty client id needs a clean session")
            }
            clientIdentifier = "auto-" + String(UInt64.random(in: 1...UInt64.max), radix: 36)
        }
        if connect.properties.authenticationMethod != nil {
            return self.refusal(
                .badAuthenticationMethod, explanation: "enhanced authentication is not offered: use a user name and password, or a certificate"
            )
        }
        self.state = .authenticating(connect, clientIdentifier: clientIdentifier, principal: nil)
        return .authenticate(connect, clientIdentifier: clientIdentifier)
    }

    /// The authenticator's verdict. `authorizer` decides whether the will's topic is the client's.
    mutating func authenticated(_ result: MQTTAuthenticationResult, authorizer: any MQTTAuthorizer) -> Action {
        guard case .authenticating(let connect, let clientIdentifier, nil) = self.state else { return .none }
        let principal: String
        switch result {
        case .reject(let reason, let explanation):
            return self.refusal(reason, explanation: explanation)
        case .accept(let accepted):
            principal = accepted
        }
        if let will = connect.will {
            // A will may only go where its client may publish: else a device could leave a
            // retained message on another device's topic by dropping its connection.
            guard authorizer.mayPublish(principal: principal, topic: will.topic) else {
                return self.refusal(.notAuthorized, explanation: "the will topic '\(will.topic)' is not one this client may publish on")
            }
            // A will the broker could not publish is refused at the door [MQTT-3.2.2-12, -13].
            if will.qos > self.configuration.maximumQoS {
                return self.refusal(
                    .qosNotSupported, explanation: "the will's QoS is above this server's maximum, \(self.configuration.maximumQoS.rawValue)"
                )
            }
            if will.retain && !self.configuration.retainAvailable {
                return self.refusal(.retainNotSupported, explanation: "this server keeps no retained messages")
            }
        }
        if let cap = self.configuration.maximumKeepAlive, connect.keepAlive == 0 || connect.keepAlive > cap,
            !connect.version.hasProperties
        {
            // 3.1.1 has no way to hear the server's keep-alive: refused, as mosquitto does.
            return self.refusal(.clientIdentifierNotValid)
        }
        self.state = .authenticating(connect, clientIdentifier: clientIdentifier, principal: principal)
        return .attachSession(connect, clientIdentifier: clientIdentifier, principal: principal)
    }

    /// The broker attached the session (nil: the client's access was revoked meanwhile).
    mutating func sessionAttached(_ outcome: MQTTBroker.ConnectOutcome?, now: NIODeadline) -> Action {
        guard case .authenticating(let connect, let clientIdentifier, let principal?) = self.state else { return .none }
        let assigned = connect.clientIdentifier.isEmpty
        guard let outcome else { return self.refusal(.notAuthorized) }
        var keepAlive = connect.keepAlive
        var properties = MQTTProperties()
        if connect.version.hasProperties {
            let configuration = self.configuration
            properties.set(.receiveMaximum(configuration.receiveMaximum))
            properties.set(.maximumPacketSize(UInt32(configuration.maximumPacketSize)))
            properties.set(.topicAliasMaximum(configuration.topicAliasMaximum))
            // Absent means 2 [MQTT-3.2.2-9]; a lower maximum is stated.
            if configuration.maximumQoS < .exactlyOnce { properties.set(.maximumQoS(configuration.maximumQoS.rawValue)) }
            properties.set(.retainAvailable(configuration.retainAvailable ? 1 : 0))
            properties.set(.wildcardSubscriptionAvailable(configuration.wildcardSubscriptionAvailable ? 1 : 0))
            properties.set(.subscriptionIdentifierAvailable(configuration.subscriptionIdentifiersAvailable ? 1 : 0))
            properties.set(.sharedSubscriptionAvailable(configuration.sharedSubscriptionAvailable ? 1 : 0))
            if let cap = configuration.maximumKeepAlive, keepAlive == 0 || keepAlive > cap {
                keepAlive = cap
                properties.set(.serverKeepAlive(cap))
            }
            if assigned { properties.set(.assignedClientIdentifier(clientIdentifier)) }
            if outcome.sessionExpiry != (connect.properties.sessionExpiryInterval ?? 0) {
                properties.set(.sessionExpiryInterval(outcome.sessionExpiry))
            }
        }
        self.state = .connected(
            Connected(
                requestedSessionExpiry: (connect.properties.sessionExpiryInterval ?? 0) != 0, clientIdentifier: clientIdentifier, principal: principal, keepAlive: keepAlive, lastPacket: now,
                outboundAliasMaximum: connect.version.hasProperties ? (connect.properties.topicAliasMaximum ?? 0) : 0
            )
        )
        let replay = self.early
        self.early = []
        return .connected(
            MQTTConnAckPacket(sessionPresent: outcome.sessionPresent, reasonCode: .success, properties: properties),
            keepAliveCheck: Self.keepAliveDeadline(keepAlive, after: now), replay: replay
        )
    }

    /// Nothing from the client for one and a half times its keep-alive ends it [MQTT-3.1.2-22].
    private static func keepAliveDeadline(_ keepAlive: UInt16, after last: NIODeadline) -> NIODeadline? {
        keepAlive == 0 ? nil : last + .milliseconds(Int64(keepAlive) * 1500)
    }

    /// The keep-alive check set by an earlier action is due.
    mutating func keepAliveCheckDue(now: NIODeadline) -> Action {
        guard case .connected(let connected) = self.state,
            let deadline = Self.keepAliveDeadline(connected.keepAlive, after: connected.lastPacket)
        else { return .none }
        guard now >= deadline else { return .scheduleKeepAliveCheck(deadline) }
        return self.closing(.keepAliveTimeout)
    }

    /// A refusal CONNACK; a 5.0 client also reads `explanation` when its maximum packet size
    /// leaves room for it [MQTT-3.2.2-19].
    private mutating func refusal(_ reason: MQTTReasonCode, explanation: String? = nil) -> Action {
        var properties = MQTTProperties.none
        if let explanation, self.version.hasProperties, explanation.utf8.count + 16 <= self.clientMaximumPacketSize {
            properties.set(.reasonString(explanation))
        }
        self.state = .closed
        return .refuse(MQTTConnAckPacket(reasonCode: reason, properties: properties))
    }

    // MARK: Packets

    /// Any packet after CONNECT. `authorizer` decides which topics the client may use.
    mutating func packetReceived(_ packet: MQTTPacket, now: NIODeadline, authorizer: any MQTTAuthorizer) -> Action {
        switch self.state {
        case .awaitingConnect:
            guard case .connect(let connect) = packet else { return self.closing(nil) }
            return self.connectReceived(connect)
        case .authenticating:
            self.early.append(packet)
            return .none
        case .closed:
            return .none
        case .connected(var connected):
            connected.lastPacket = now
            let action = self.packetReceived(packet, connected: &connected, now: now, authorizer: authorizer)
            if case .connected = self.state { self.state = .connected(connected) }
            return action
        }
    }

    private mutating func packetReceived(
        _ packet: MQTTPacket, connected: inout Connected, now: NIODeadline, authorizer: any MQTTAuthorizer
    ) -> Action {
        switch packet {
        case .publish(let publish):
            return self.publishReceived(publish, connected: &connected, now: now, authorizer: authorizer)
        case .pubrel(let ack):
            return .release(packetIdentifier: ack.packetIdentifier)
        case .puback, .pubrec, .pubcomp:
            return .acknowledgementReceived(packet)
        case .subscribe(let subscribe):
            return self.subscribeReceived(subscribe, connected: connected, authorizer: authorizer)
        case .unsubscribe(let unsubscribe):
            return .unsubscribe(packetIdentifier: unsubscribe.packetIdentifier, filters: unsubscribe.topicFilters)
        case .pingreq:
            return .write([.pingresp])
        case .disconnect(let disconnect):
            if let expiry = disconnect.properties.sessionExpiryInterval, !connected.requestedSessionExpiry && expiry != 0 {
                // 0 at CONNECT cannot become non-zero at DISCONNECT [MQTT-3.14.2-2].
                return self.closing(.protocolError)
            }
            self.state = .closed
            // Only a normal DISCONNECT (0x00) discards the will [MQTT-3.1.2-8, 3.14.4-3].
            return .disconnect(
                clientIdentifier: connected.clientIdentifier, publishWill: disconnect.reasonCode != .normalDisconnection, sessionExpiry: disconnect.properties.sessionExpiryInterval
            )
        case .auth, .connect, .connack, .suback, .unsuback, .pingresp:
            // AUTH without enhanced authentication, a second CONNECT, and packets only a server sends.
            return self.closing(.protocolError)
        }
    }

    private mutating func publishReceived(
        _ publish: MQTTPublishPacket, connected: inout Connected, now: NIODeadline, authorizer: any MQTTAuthorizer
    ) -> Action {
        var publish = publish
        let v5 = self.version.hasProperties
        // Topic aliases (5.0): a topic with an alias sets it; an empty topic uses it.
        if let alias = publish.properties.topicAlias {
            guard alias > 0, alias <= self.configuration.topicAliasMaximum else { return self.closing(.topicAliasInvalid) }
            if publish.topic.isEmpty {
                guard let topic = connected.inboundAliases[alias] else { return self.closing(.protocolError) }
                publish.topic = topic
            } else {
                connected.inboundAliases[alias] = publish.topic
            }
        }
        // What the CONNACK said the server does not take ends the connection [MQTT-3.2.2-11, -14].
        guard publish.qos <= self.configuration.maximumQoS else { return self.closing(.qosNotSupported) }
        guard !publish.retain || self.configuration.retainAvailable else { return self.closing(.retainNotSupported) }
        if publish.qos != .atMostOnce {
            connected.unacknowledged += 1
            // Receive Maximum is a 5.0 agreement; 3.1.1 clients never heard of it.
            guard !v5 || connected.unacknowledged <= Int(self.configuration.receiveMaximum) else {
                return self.closing(.receiveMaximumExceeded)
            }
        }
        let identifier = publish.packetIdentifier ?? 0
        var properties = publish.properties
        let expiry = properties.messageExpiryInterval
        // The alias and subscription identifiers belong to this hop; the expiry is kept as a
        // deadline and written afresh, as what remains of it, on each delivery.
        properties.remove(.topicAlias, .subscriptionIdentifier, .messageExpiryInterval)
        let message = MQTTBrokerMessage(
            topic: publish.topic, payload: publish.payload, qos: publish.qos, retain: publish.retain, properties: properties,
            expiresAt: expiry.map { now + .seconds(Int64($0)) }, publisherClientIdentifier: connected.clientIdentifier
        )
        if let refusal = authorizer.publishRefusal(principal: connected.principal, topic: publish.topic) {
            if refusal.disconnectsWhenUntold && (!v5 || publish.qos == .atMostOnce) {
                return self.closing(refusal.code)
            }
            // 5.0 says why; 3.1.1 cannot, so the message is acknowledged and dropped.
            guard v5 else { return .publishNotAuthorized(message, acknowledgement: Self.acknowledgement(publish.qos, identifier, .success)) }
            var acknowledgement = Self.acknowledgement(publish.qos, identifier, refusal.code)
            if refusal.reason.utf8.count + 16 <= self.clientMaximumPacketSize {
                switch acknowledgement {
                case .puback(var ack)?:
                    ack.properties.set(.reasonString(refusal.reason))
                    acknowledgement = .puback(ack)
                case .pubrec(var ack)?:
                    ack.properties.set(.reasonString(refusal.reason))
                    acknowledgement = .pubrec(ack)
                default:
                    break
                }
            }
            return .publishNotAuthorized(message, acknowledgement: acknowledgement)
        }
        return .publish(message, packetIdentifier: identifier, acknowledgement: Self.acknowledgement(publish.qos, identifier, .success))
    }

    private static func acknowledgement(_ qos: MQTTQoS, _ identifier: UInt16, _ reason: MQTTReasonCode) -> MQTTPacket? {
        switch qos {
        case .atMostOnce: nil
        case .atLeastOnce: .puback(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason))
        case .exactlyOnce: .pubrec(MQTTAckPacket(packetIdentifier: identifier, reasonCode: reason))
        }
    }

    /// The client's publish goes to the observer.
    mutating func storeStarted() {
        guard case .connected(var connected) = self.state else { return }
        connected.pendingStores += 1
        self.state = .connected(connected)
    }

    /// True when the observer refused a publish and others are still behind it: each of those,
    /// when its turn comes, is refused without asking, so that none overtakes the refusal.
    var refusesUnasked: Bool {
        if case .connected(let connected) = self.state { return connected.refusing }
        return false
    }

    /// The observer's outcome for a publish, in the order they were sent: what to write.
    mutating func storeCompleted(_ outcome: StoreOutcome, acknowledgement: MQTTPacket?) -> Action {
        guard case .connected(var connected) = self.state else { return .none }
        connected.pendingStores -= 1
        defer { if case .connected = self.state { self.state = .connected(connected) } }
        switch outcome {
        case .accepted:
            connected.refusing = false
            guard let acknowledgement else { return .none }
            connected.unacknowledged -= 1
            return .write([acknowledgement])
        case .refused(let reason):
            connected.refusing = connected.pendingStores > 0
            switch acknowledgement {
            case nil:
                return .none
            case .puback(let ack)? where self.version.hasProperties:
                connected.unacknowledged -= 1
                return .write([.puback(MQTTAckPacket(packetIdentifier: ack.packetIdentifier, reasonCode: reason))])
            case .pubrec(let ack)? where self.version.hasProperties:
                connected.unacknowledged -= 1
                return .write([.pubrec(MQTTAckPacket(packetIdentifier: ack.packetIdentifier, reasonCode: reason))])
            default:
                // 3.1.1 cannot hear a refusal: the connection ends unacknowledged, and the client
                // sends the message again, in order, once it is back.
                connected.unacknowledged -= 1
                self.state = .connected(connected)
                return self.closing(reason)
            }
        case .failed:
            // Not stored: the client keeps the message and sends it again after reconnecting.
            self.state = .connected(connected)
            return self.closing(.unspecifiedError)
        }
    }

    /// An acknowledgement of the client's QoS 1 or 2 publish was written.
    mutating func acknowledgementSent() {
        guard case .connected(var connected) = self.state else { return }
        connected.unacknowledged -= 1
        self.state = .connected(connected)
    }

    // MARK: Subscriptions

    private mutating func subscribeReceived(_ subscribe: MQTTSubscribePacket, connected: Connected, authorizer: any MQTTAuthorizer) -> Action {
        let v5 = self.version.hasProperties
        let configuration = self.configuration
        if !configuration.subscriptionIdentifiersAvailable && !subscribe.properties.subscriptionIdentifiers.isEmpty {
            return self.closing(.subscriptionIdentifiersNotSupported)
        }
        var request = SubscribeRequest(
            packetIdentifier: subscribe.packetIdentifier, filters: subscribe.subscriptions.map(\.topicFilter), subscriptions: [],
            allowed: [], decided: []
        )
        for entry in subscribe.subscriptions {
            let parsed: MQTTTopic.Filter
            do {
                parsed = try MQTTTopic.validateFilter(entry.topicFilter)
            } catch {
                request.decided.append(v5 ? .topicFilterInvalid : .unspecifiedError)
                continue
            }
            if parsed.shareGroup != nil && entry.noLocal {
                // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
                return self.closing(.protocolError)
            }
            if parsed.shareGroup != nil && !configuration.sharedSubscriptionAvailable {
                request.decided.append(v5 ? .sharedSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            if !configuration.wildcardSubscriptionAvailable && (parsed.filter.contains("+") || parsed.filter.contains("#")) {
                request.decided.append(v5 ? .wildcardSubscriptionsNotSupported : .unspecifiedError)
                continue
            }
            let qos = min(entry.qos, configuration.maximumQoS)
            if let refusal = authorizer.subscriptionRefusal(principal: connected.principal, filter: parsed.filter, qos: qos) {
                request.decided.append(v5 ? refusal.code : .unspecifiedError)
                request.reason = request.reason ?? refusal.reason
                continue
            }
            request.subscriptions.append(
                MQTTSubscription(
                    filter: entry.topicFilter, topicFilter: parsed.filter, shareGroup: parsed.shareGroup,
                    qos: qos, noLocal: entry.noLocal, retainAsPublished: entry.retainAsPublished,
                    retainHandling: entry.retainHandling, identifier: subscribe.properties.subscriptionIdentifiers.first
                )
            )
            request.allowed.append(authorizer.maySubscribe(principal: connected.principal, filter: parsed.filter))
            request.decided.append(nil)
        }
        return .subscribe(request)
    }

    /// The broker's codes for the subscriptions it was asked for: the SUBACK, and the filters
    /// the client now holds.
    func subscribed(_ request: SubscribeRequest, brokerCodes: [MQTTReasonCode]) -> (suback: MQTTPacket, accepted: [String]) {
        var codes = brokerCodes.makeIterator()
        let final = request.decided.map { $0 ?? codes.next() ?? .unspecifiedError }
        // 3.1.1 SUBACK has only 0x80 for a refusal.
        let written = self.version.hasProperties ? final : final.map { $0.isFailure ? .unspecifiedError : $0 }
        let accepted = zip(request.filters, final).filter { !$0.1.isFailure }.map(\.0)
        var properties = MQTTProperties.none
        if self.version.hasProperties, let reason = request.reason { properties.set(.reasonString(reason)) }
        return (.suback(MQTTSubAckPacket(packetIdentifier: request.packetIdentifier, reasonCodes: written, properties: properties)), accepted)
    }

    /// The UNSUBACK for the broker's codes (3.1.1 carries none).
    func unsubscribed(packetIdentifier: UInt16, codes: [MQTTReasonCode]) -> MQTTPacket {
        .unsuback(MQTTSubAckPacket(packetIdentifier: packetIdentifier, reasonCodes: self.version.hasProperties ? codes : []))
    }

    // MARK: Messages to the client

    /// A PUBLISH about to be written, with a topic alias for a 5.0 client that allows them: the
    /// alias alone once the topic has one, else the topic with a new alias while the client's
    /// maximum allows, else unchanged. Called in the order packets are written, which is the
    /// order the client learns the aliases in.
    mutating func publishToSend(_ publish: MQTTPublishPacket) -> MQTTPublishPacket {
        guard case .connected(var connected) = self.state, connected.outboundAliasMaximum > 0 else { return publish }
        var publish = publish
        if let alias = connected.outboundAliases[publish.topic] {
            publish.topic = ""
            publish.properties.set(.topicAlias(alias))
            return publish
        }
        guard connected.outboundAliases.count < Int(connected.outboundAliasMaximum) else { return publish }
        let alias = UInt16(connected.outboundAliases.count + 1)
        var withAlias = publish
        withAlias.properties.set(.topicAlias(alias))
        // The alias costs three bytes; a packet it would push past the client's maximum goes without.
        guard MQTTPacket.publish(withAlias).encodedSize(version: .v5) <= self.clientMaximumPacketSize else { return publish }
        connected.outboundAliases[publish.topic] = alias
        self.state = .connected(connected)
        return withAlias
    }

    // MARK: Closing

    /// The broker closes the connection (takeover, revocation, shutdown), or the decoder found
    /// a malformed packet.
    mutating func closeRequested(_ reason: MQTTReasonCode?) -> Action {
        self.closing(reason)
    }

    /// A malformed packet. Before CONNACK only an unsupported version has an answer: a
    /// CONNACK saying so, in 3.1.1's encoding [MQTT-3.1.2-2].
    mutating func protocolViolation(_ reason: MQTTReasonCode) -> Action {
        switch self.state {
        case .awaitingConnect, .authenticating:
            self.state = .closed
            guard reason == .unsupportedProtocolVersion else { return .close(reason: nil, disconnect: nil) }
            self.version = .v3_1_1
            return .refuse(MQTTConnAckPacket(reasonCode: .unsupportedProtocolVersion))
        case .connected, .closed:
            return self.closing(reason)
        }
    }

    /// The connection is gone: the client identifier whose session must hear it, when it was
    /// connected and had not said DISCONNECT.
    mutating func channelInactive() -> String? {
        defer { self.state = .closed }
        if case .connected(let connected) = self.state { return connected.clientIdentifier }
        return nil
    }

    private mutating func closing(_ reason: MQTTReasonCode?) -> Action {
        guard case .connected = self.state else {
            self.state = .closed
            return .close(reason: reason, disconnect: nil)
        }
        // The state stays connected until the channel is inactive, so the session hears of the
        // end (with the will) exactly once, from channelInactive.
        let disconnect: MQTTPacket? =
            reason.flatMap { self.version.hasProperties ? .disconnect(MQTTReasonPacket(reasonCode: $0)) : nil }
        return .close(reason: reason, disconnect: disconnect)
    }
}
