import MQTT
import NIOCore
import Testing

@testable import MQTTBroker

/// The connection's protocol, called directly: no socket, no clock, no broker.
@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
    static let versions: [MQTTProtocolVersion] = [.v3_1_1, .v5]

    /// Lets `device` use topics under `device/`, and nothing else.
    struct OwnTopics: MQTTAuthorizer {
        func mayPublish(principal: String, topic: String) -> Bool { topic.hasPrefix("\(principal)/") }
        func maySubscribe(principal: String, filter: String) -> Bool { filter.hasPrefix("\(principal)/") }
    }

    static func connect(_ version: MQTTProtocolVersion, id: String = "dev", keepAlive: UInt16 = 60, will: MQTTConnectPacket.Will? = nil, properties: MQTTProperties = .none) -> MQTTConnectPacket {
        MQTTConnectPacket(version: version, clientIdentifier: id, keepAlive: keepAlive, will: will, properties: properties)
    }

    /// A machine through CONNECT, authentication and attachment, with the CONNACK it produced.
    static func connected(
        _ version: MQTTProtocolVersion, configuration: MQTTBrokerConfiguration = .init(), connect: MQTTConnectPacket? = nil
    ) -> (MQTTConnectionStateMachine, MQTTConnAckPacket) {
        var state = MQTTConnectionStateMachine(configuration: configuration)
        let connect = connect ?? Self.connect(version)
        #expect(state.connectReceived(connect) == .authenticate(connect, clientIdentifier: "dev"))
        #expect(state.authenticated(.accept(principal: "dev"), authorizer: OwnTopics()) == .attachSession(connect, clientIdentifier: "dev", principal: "dev"))
        guard case .connected(let connack, _, _) = state.sessionAttached(.init(sessionPresent: false, sessionExpiry: 0), now: Self.t0) else {
            Issue.record("not connected")
            return (state, MQTTConnAckPacket())
        }
        return (state, connack)
    }

    static func publish(_ topic: String, qos: MQTTQoS, id: UInt16? = nil, properties: MQTTProperties = .none) -> MQTTPacket {
        .publish(MQTTPublishPacket(topic: topic, payload: ByteBuffer(string: "x"), qos: qos, packetIdentifier: id, properties: properties))
    }

    static func message(_ topic: String, qos: MQTTQoS) -> MQTTBrokerMessage {
        MQTTBrokerMessage(topic: topic, payload: ByteBuffer(string: "x"), qos: qos, publisherClientIdentifier: "dev")
    }

    @Test("CONNECT, accept, attach: CONNACK with the server's limits on 5.0, none on 3.1.1; keep-alive checked at 1.5 times", arguments: versions)
    func connectAccepted(version: MQTTProtocolVersion) {
        var state = MQTTConnectionStateMachine(configuration: .init())
        let connect = Self.connect(version, keepAlive: 20)
        #expect(state.connectReceived(connect) == .authenticate(connect, clientIdentifier: "dev"))
        #expect(state.holdsReads)
        #expect(state.authenticated(.accept(principal: "dev"), authorizer: MQTTAllowAll()) == .attachSession(connect, clientIdentifier: "dev", principal: "dev"))
        let action = state.sessionAttached(.init(sessionPresent: true, sessionExpiry: 0), now: Self.t0)
        guard case .connected(let connack, let check, let replay) = action else { Issue.record("\(action)"); return }
        #expect(connack.sessionPresent && connack.reasonCode == .success)
        #expect(check == Self.t0 + .seconds(30))
        #expect(replay.isEmpty)
        #expect(!state.holdsReads && state.isConnected)
        if version == .v5 {
            #expect(connack.properties.receiveMaximum == 100)
            #expect(connack.properties.topicAliasMaximum == 16)
            #expect(connack.properties.serverKeepAlive == nil)
        } else {
            #expect(connack.properties.items.isEmpty)
        }
    }

    @Test("packets sent before CONNACK wait, none dropped, and are handled in order after it", arguments: versions)
    func earlyPackets(version: MQTTProtocolVersion) {
        var state = MQTTConnectionStateMachine(configuration: .init())
        let connect = Self.connect(version)
        _ = state.connectReceived(connect)
        for index in 1...3 {
            #expect(state.packetReceived(Self.publish("dev/\(index)", qos: .atMostOnce), now: Self.t0, authorizer: OwnTopics()) == .none)
        }
        _ = state.authenticated(.accept(principal: "dev"), authorizer: OwnTopics())
        guard case .connected(_, _, let replay) = state.sessionAttached(.init(sessionPresent: false, sessionExpiry: 0), now: Self.t0) else {
            Issue.record("not connected"); return
        }
        #expect(replay == (1...3).map { Self.publish("dev/\($0)", qos: .atMostOnce) })
        #expect(state.packetReceived(replay[0], now: Self.t0, authorizer: OwnTopics()) == .publish(Self.message("dev/1", qos: .atMostOnce), packetIdentifier: 0, acknowledgement: nil))
    }

    @Test("refusals: a 5.0 client reads why unless its maximum packet size leaves no room; 3.1.1 gets the code alone", arguments: versions)
    func refusals(version: MQTTProtocolVersion) {
        var state = MQTTConnectionStateMachine(configuration: .init())
        _ = state.connectReceived(Self.connect(version))
        let refused = state.authenticated(.reject(.badUserNameOrPassword, explanation: "unknown device or wrong secret"), authorizer: OwnTopics())
        #expect(refused == .refuse(MQTTConnAckPacket(reasonCode: .badUserNameOrPassword, properties: version == .v5 ? [.reasonString("unknown device or wrong secret")] : .none)))
        #expect(!state.isConnected)

        var tight = MQTTConnectionStateMachine(configuration: .init())
        _ = tight.connectReceived(Self.connect(version, properties: [.maximumPacketSize(20)]))
        #expect(tight.authenticated(.reject(.notAuthorized, explanation: "a reason far longer than twenty bytes"), authorizer: OwnTopics()) == .refuse(MQTTConnAckPacket(reasonCode: .notAuthorized)))

        // A will on someone else's topic is refused at the door.
        var will = MQTTConnectionStateMachine(configuration: .init())
        _ = will.connectReceived(Self.connect(version, will: .init(topic: "other/status", payload: ByteBuffer(string: "x"))))
        guard case .refuse(let connack) = will.authenticated(.accept(principal: "dev"), authorizer: OwnTopics()) else { Issue.record("accepted"); return }
        #expect(connack.reasonCode == .notAuthorized)

        // Access revoked while authenticating.
        var revoked = MQTTConnectionStateMachine(configuration: .init())
        _ = revoked.connectReceived(Self.connect(version))
        _ = revoked.authenticated(.accept(principal: "dev"), authorizer: OwnTopics())
        #expect(revoked.sessionAttached(nil, now: Self.t0) == .refuse(MQTTConnAckPacket(reasonCode: .notAuthorized)))
    }

    @Test("an empty client id: assigned (and told on 5.0) for a clean session, refused for a persistent one")
    func assignedIdentifier() {
        var state = MQTTConnectionStateMachine(configuration: .init())
        guard case .authenticate(_, let assigned) = state.connectReceived(MQTTConnectPacket(version: .v5, clientIdentifier: "")) else {
            Issue.record("not authenticating"); return
        }
        #expect(assigned.hasPrefix("auto-"))
        _ = state.authenticated(.accept(principal: assigned), authorizer: MQTTAllowAll())
        guard case .connected(let connack, _, _) = state.sessionAttached(.init(sessionPresent: false, sessionExpiry: 0), now: Self.t0) else {
            Issue.record("not connected"); return
        }
        #expect(connack.properties.assignedClientIdentifier == assigned)

        var persistent = MQTTConnectionStateMachine(configuration: .init())
        let action = persistent.connectReceived(MQTTConnectPacket(version: .v3_1_1, clientIdentifier: "", cleanStart: false))
        guard case .refuse(let connack) = action else { Issue.record("\(action)"); return }
        #expect(connack.reasonCode == .clientIdentifierNotValid)
    }

    @Test("a keep-alive cap: a 5.0 client is told it in CONNACK and held to it; a 3.1.1 client, which cannot be told, is refused", arguments: versions)
    func keepAliveCap(version: MQTTProtocolVersion) {
        var configuration = MQTTBrokerConfiguration()
        configuration.maximumKeepAlive = 30
        var state = MQTTConnectionStateMachine(configuration: configuration)
        let connect = Self.connect(version, keepAlive: 0)
        _ = state.connectReceived(connect)
        let action = state.authenticated(.accept(principal: "dev"), authorizer: MQTTAllowAll())
        guard version == .v5 else {
            guard case .refuse(let connack) = action else { Issue.record("\(action)"); return }
            #expect(connack.reasonCode == .clientIdentifierNotValid)
            return
        }
        guard case .connected(let connack, let check, _) = state.sessionAttached(.init(sessionPresent: false, sessionExpiry: 0), now: Self.t0) else {
            Issue.record("not connected"); return
        }
        #expect(connack.properties.serverKeepAlive == 30)
        #expect(check == Self.t0 + .seconds(45))
    }

    @Test("keep-alive: each packet moves the deadline; silence for 1.5 times the keep-alive closes (with DISCONNECT 0x8D on 5.0)", arguments: versions)
    func keepAlive(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version, connect: Self.connect(version, keepAlive: 20))
        // The check comes early (a timer fired before its time): it is set again for the deadline.
        #expect(state.keepAliveCheckDue(now: Self.t0 + .seconds(10)) == .scheduleKeepAliveCheck(Self.t0 + .seconds(30)))
        #expect(state.packetReceived(.pingreq, now: Self.t0 + .seconds(25), authorizer: OwnTopics()) == .write([.pingresp]))
        #expect(state.keepAliveCheckDue(now: Self.t0 + .seconds(30)) == .scheduleKeepAliveCheck(Self.t0 + .seconds(55)))
        #expect(
            state.keepAliveCheckDue(now: Self.t0 + .seconds(55))
                == .close(reason: .keepAliveTimeout, disconnect: version == .v5 ? .disconnect(MQTTReasonPacket(reasonCode: .keepAliveTimeout)) : nil)
        )
        // The session hears of the lost connection once, when the channel goes.
        #expect(state.channelInactive() == "dev")
        #expect(state.channelInactive() == nil)
    }

    @Test("PUBLISH in at QoS 0, 1 and 2: routed, then acknowledged in order once stored (PUBACK, PUBREC, then PUBCOMP via PUBREL)", arguments: versions)
    func publishIn(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        #expect(state.packetReceived(Self.publish("dev/a", qos: .atMostOnce), now: Self.t0, authorizer: OwnTopics()) == .publish(Self.message("dev/a", qos: .atMostOnce), packetIdentifier: 0, acknowledgement: nil))
        let puback = MQTTPacket.puback(MQTTAckPacket(packetIdentifier: 1))
        #expect(state.packetReceived(Self.publish("dev/b", qos: .atLeastOnce, id: 1), now: Self.t0, authorizer: OwnTopics()) == .publish(Self.message("dev/b", qos: .atLeastOnce), packetIdentifier: 1, acknowledgement: puback))
        let pubrec = MQTTPacket.pubrec(MQTTAckPacket(packetIdentifier: 2))
        #expect(state.packetReceived(Self.publish("dev/c", qos: .exactlyOnce, id: 2), now: Self.t0, authorizer: OwnTopics()) == .publish(Self.message("dev/c", qos: .exactlyOnce), packetIdentifier: 2, acknowledgement: pubrec))
        state.storeStarted()
        state.storeStarted()
        #expect(state.storesPending)
        #expect(state.storeCompleted(.accepted, acknowledgement: puback) == .write([puback]))
        #expect(state.storeCompleted(.accepted, acknowledgement: pubrec) == .write([pubrec]))
        #expect(!state.storesPending)
        #expect(state.packetReceived(.pubrel(MQTTAckPacket(packetIdentifier: 2)), now: Self.t0, authorizer: OwnTopics()) == .release(packetIdentifier: 2))
    }

    @Test("a message expiry travels as a deadline; the topic alias and subscription identifiers stay behind")
    func publishProperties() {
        var (state, _) = Self.connected(.v5)
        let action = state.packetReceived(
            Self.publish("dev/a", qos: .atMostOnce, properties: [.messageExpiryInterval(60), .topicAlias(3), .contentType("text/plain")]),
            now: Self.t0, authorizer: OwnTopics()
        )
        guard case .publish(let message, _, _) = action else { Issue.record("\(action)"); return }
        #expect(message.expiresAt == Self.t0 + .seconds(60))
        #expect(message.properties == [.contentType("text/plain")])
    }

    @Test("a publish outside the client's topics: refused on 5.0 (0x87, saying why), acknowledged and dropped on 3.1.1", arguments: versions)
    func publishNotAuthorized(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        let acknowledgement =
            version == .v5
            ? MQTTAckPacket(packetIdentifier: 4, reasonCode: .notAuthorized, properties: [.reasonString("the topic 'other/a' is not one this client may publish on")])
            : MQTTAckPacket(packetIdentifier: 4, reasonCode: .success)
        #expect(
            state.packetReceived(Self.publish("other/a", qos: .atLeastOnce, id: 4), now: Self.t0, authorizer: OwnTopics())
                == .publishNotAuthorized(Self.message("other/a", qos: .atLeastOnce), acknowledgement: .puback(acknowledgement))
        )
    }

    /// Refuses `$aws/...` as AWS IoT does: a reason where the client can hear one, else the connection.
    struct ReservedTopics: MQTTAuthorizer {
        func mayPublish(principal: String, topic: String) -> Bool { !topic.hasPrefix("$aws/") }
        func maySubscribe(principal: String, filter: String) -> Bool { true }
        func publishRefusal(principal: String, topic: String) -> MQTTPublishRefusal? {
            topic.hasPrefix("$aws/") ? MQTTPublishRefusal(code: .topicNameInvalid, reason: "not served", disconnectsWhenUntold: true) : nil
        }
    }

    @Test("a refusal that must be heard: 5.0 reads its code and reason in the PUBACK, and is disconnected with it at QoS 0; 3.1.1 is disconnected", arguments: versions)
    func publishRefusedLoudly(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        let acknowledged = state.packetReceived(Self.publish("$aws/rules/x", qos: .atLeastOnce, id: 5), now: Self.t0, authorizer: ReservedTopics())
        if version == .v5 {
            #expect(
                acknowledged == .publishNotAuthorized(
                    Self.message("$aws/rules/x", qos: .atLeastOnce),
                    acknowledgement: .puback(MQTTAckPacket(packetIdentifier: 5, reasonCode: .topicNameInvalid, properties: [.reasonString("not served")]))
                )
            )
            let untold = state.packetReceived(Self.publish("$aws/rules/x", qos: .atMostOnce), now: Self.t0, authorizer: ReservedTopics())
            #expect(untold == .close(reason: .topicNameInvalid, disconnect: .disconnect(MQTTReasonPacket(reasonCode: .topicNameInvalid))))
        } else {
            #expect(acknowledged == .close(reason: .topicNameInvalid, disconnect: nil))
        }
    }

    @Test("the hub refuses a message: 5.0 hears the reason and the ones behind it are refused unasked; 3.1.1 is closed unacknowledged; a failed store closes", arguments: versions)
    func storeRefused(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        let first = MQTTPacket.puback(MQTTAckPacket(packetIdentifier: 1))
        state.storeStarted()
        state.storeStarted()
        let action = state.storeCompleted(.refused(.quotaExceeded), acknowledgement: first)
        if version == .v5 {
            #expect(action == .write([.puback(MQTTAckPacket(packetIdentifier: 1, reasonCode: .quotaExceeded))]))
            #expect(state.refusesUnasked)
            _ = state.storeCompleted(.refused(.quotaExceeded), acknowledgement: .puback(MQTTAckPacket(packetIdentifier: 2)))
            #expect(!state.refusesUnasked)
        } else {
            #expect(action == .close(reason: .quotaExceeded, disconnect: nil))
        }
        var (failing, _) = Self.connected(version)
        failing.storeStarted()
        #expect(failing.storeCompleted(.failed, acknowledgement: first) == .close(reason: .unspecifiedError, disconnect: version == .v5 ? .disconnect(MQTTReasonPacket(reasonCode: .unspecifiedError)) : nil))
    }

    @Test("receive maximum: a 5.0 client with more unacknowledged QoS 1 publishes than allowed is closed (0x93); 3.1.1 never heard of it", arguments: versions)
    func receiveMaximum(version: MQTTProtocolVersion) {
        var configuration = MQTTBrokerConfiguration()
        configuration.receiveMaximum = 2
        var (state, _) = Self.connected(version, configuration: configuration)
        for id in UInt16(1)...2 {
            guard case .publish = state.packetReceived(Self.publish("dev/a", qos: .atLeastOnce, id: id), now: Self.t0, authorizer: OwnTopics()) else {
                Issue.record("refused"); return
            }
        }
        let third = state.packetReceived(Self.publish("dev/a", qos: .atLeastOnce, id: 3), now: Self.t0, authorizer: OwnTopics())
        if version == .v5 {
            #expect(third == .close(reason: .receiveMaximumExceeded, disconnect: .disconnect(MQTTReasonPacket(reasonCode: .receiveMaximumExceeded))))
        } else {
            guard case .publish = third else { Issue.record("\(third)"); return }
        }
        // Once one is acknowledged, a 5.0 client may send another.
        var (again, _) = Self.connected(version, configuration: configuration)
        _ = again.packetReceived(Self.publish("dev/a", qos: .atLeastOnce, id: 1), now: Self.t0, authorizer: OwnTopics())
        _ = again.packetReceived(Self.publish("dev/a", qos: .atLeastOnce, id: 2), now: Self.t0, authorizer: OwnTopics())
        again.acknowledgementSent()
        guard case .publish = again.packetReceived(Self.publish("dev/a", qos: .atLeastOnce, id: 3), now: Self.t0, authorizer: OwnTopics()) else {
            Issue.record("refused after an acknowledgement"); return
        }
    }

    @Test("topic aliases from the client: set, used, unknown (0x82) and out of range (0x94)")
    func inboundAliases() {
        var (state, _) = Self.connected(.v5)
        _ = state.packetReceived(Self.publish("dev/long/topic", qos: .atMostOnce, properties: [.topicAlias(1)]), now: Self.t0, authorizer: OwnTopics())
        #expect(state.packetReceived(Self.publish("", qos: .atMostOnce, properties: [.topicAlias(1)]), now: Self.t0, authorizer: OwnTopics()) == .publish(Self.message("dev/long/topic", qos: .atMostOnce), packetIdentifier: 0, acknowledgement: nil))
        #expect(state.packetReceived(Self.publish("", qos: .atMostOnce, properties: [.topicAlias(2)]), now: Self.t0, authorizer: OwnTopics()) == .close(reason: .protocolError, disconnect: .disconnect(MQTTReasonPacket(reasonCode: .protocolError))))
        var (other, _) = Self.connected(.v5)
        #expect(other.packetReceived(Self.publish("dev/a", qos: .atMostOnce, properties: [.topicAlias(17)]), now: Self.t0, authorizer: OwnTopics()) == .close(reason: .topicAliasInvalid, disconnect: .disconnect(MQTTReasonPacket(reasonCode: .topicAliasInvalid))))
    }

    @Test("topic aliases to a client that allows two: the first PUBLISH sets one, the next uses it alone, a third topic goes in full")
    func outboundAliases() {
        var (state, _) = Self.connected(.v5, connect: Self.connect(.v5, properties: [.topicAliasMaximum(2)]))
        func out(_ topic: String) -> MQTTPublishPacket {
            state.publishToSend(MQTTPublishPacket(topic: topic, payload: ByteBuffer(string: "x")))
        }
        #expect(out("a/1") == MQTTPublishPacket(topic: "a/1", payload: ByteBuffer(string: "x"), properties: [.topicAlias(1)]))
        #expect(out("a/1") == MQTTPublishPacket(topic: "", payload: ByteBuffer(string: "x"), properties: [.topicAlias(1)]))
        #expect(out("a/2").properties.topicAlias == 2)
        #expect(out("a/3") == MQTTPublishPacket(topic: "a/3", payload: ByteBuffer(string: "x")))
        // 3.1.1 has no aliases.
        var (v3, _) = Self.connected(.v3_1_1)
        #expect(v3.publishToSend(MQTTPublishPacket(topic: "a/1", payload: ByteBuffer(string: "x"))).properties.items.isEmpty)
    }

    @Test("SUBSCRIBE: an invalid filter and one outside the client's topics are refused by code; the SUBACK keeps the request's order", arguments: versions)
    func subscribe(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        let packet = MQTTSubscribePacket(
            packetIdentifier: 5, subscriptions: [.init(topicFilter: "dev/#", qos: .exactlyOnce), .init(topicFilter: "a/#/b"), .init(topicFilter: "other/x", qos: .atLeastOnce)]
        )
        guard case .subscribe(let request) = state.packetReceived(.subscribe(packet), now: Self.t0, authorizer: OwnTopics()) else {
            Issue.record("not a subscribe"); return
        }
        #expect(request.subscriptions.map(\.filter) == ["dev/#", "other/x"])
        #expect(request.allowed == [true, false])
        let (suback, accepted) = state.subscribed(request, brokerCodes: [.grantedQoS2, .notAuthorized])
        let refused: MQTTReasonCode = version == .v5 ? .notAuthorized : .unspecifiedError
        let invalid: MQTTReasonCode = version == .v5 ? .topicFilterInvalid : .unspecifiedError
        #expect(suback == .suback(MQTTSubAckPacket(packetIdentifier: 5, reasonCodes: [.grantedQoS2, invalid, refused])))
        #expect(accepted == ["dev/#"])
        #expect(state.packetReceived(.unsubscribe(MQTTUnsubscribePacket(packetIdentifier: 6, topicFilters: ["dev/#"])), now: Self.t0, authorizer: OwnTopics()) == .unsubscribe(packetIdentifier: 6, filters: ["dev/#"]))
        #expect(state.unsubscribed(packetIdentifier: 6, codes: [.success]) == .unsuback(MQTTSubAckPacket(packetIdentifier: 6, reasonCodes: version == .v5 ? [.success] : [])))
        // No Local on a shared subscription is a protocol error.
        let shared = MQTTSubscribePacket(packetIdentifier: 7, subscriptions: [.init(topicFilter: "$share/g/dev/x", noLocal: true)])
        guard case .close(.protocolError?, _) = state.packetReceived(.subscribe(shared), now: Self.t0, authorizer: OwnTopics()) else {
            Issue.record("not closed"); return
        }
    }

    @Test("DISCONNECT: normal discards the will, 0x04 keeps it, and an expiry of 0 at CONNECT cannot grow at DISCONNECT")
    func disconnect() {
        var (normal, _) = Self.connected(.v5)
        #expect(normal.packetReceived(.disconnect(MQTTReasonPacket()), now: Self.t0, authorizer: OwnTopics()) == .disconnect(clientIdentifier: "dev", publishWill: false, sessionExpiry: nil))
        // The session already heard; the channel's end says nothing more.
        #expect(normal.channelInactive() == nil)
        var (withWill, _) = Self.connected(.v5)
        #expect(withWill.packetReceived(.disconnect(MQTTReasonPacket(reasonCode: .disconnectWithWillMessage)), now: Self.t0, authorizer: OwnTopics()) == .disconnect(clientIdentifier: "dev", publishWill: true, sessionExpiry: nil))
        var (growing, _) = Self.connected(.v5)
        #expect(growing.packetReceived(.disconnect(MQTTReasonPacket(properties: [.sessionExpiryInterval(60)])), now: Self.t0, authorizer: OwnTopics()) == .close(reason: .protocolError, disconnect: .disconnect(MQTTReasonPacket(reasonCode: .protocolError))))
    }

    @Test("takeover and shutdown close with DISCONNECT on 5.0, silently on 3.1.1; a second CONNECT is a protocol error", arguments: versions)
    func closeRequested(version: MQTTProtocolVersion) {
        var (state, _) = Self.connected(version)
        #expect(state.closeRequested(.sessionTakenOver) == .close(reason: .sessionTakenOver, disconnect: version == .v5 ? .disconnect(MQTTReasonPacket(reasonCode: .sessionTakenOver)) : nil))
        // Until the channel is gone, the session is still this connection's: its end is reported once.
        #expect(state.channelInactive() == "dev")
        var (again, _) = Self.connected(version)
        guard case .close(.protocolError?, _) = again.packetReceived(.connect(Self.connect(version)), now: Self.t0, authorizer: OwnTopics()) else {
            Issue.record("a second CONNECT was taken"); return
        }
    }

    @Test("before CONNECT: another packet closes silently; an unsupported version gets a 3.1.1 CONNACK 0x84")
    func beforeConnect() {
        var state = MQTTConnectionStateMachine(configuration: .init())
        #expect(state.packetReceived(.pingreq, now: Self.t0, authorizer: OwnTopics()) == .close(reason: nil, disconnect: nil))
        var old = MQTTConnectionStateMachine(configuration: .init())
        #expect(old.protocolViolation(.unsupportedProtocolVersion) == .refuse(MQTTConnAckPacket(reasonCode: .unsupportedProtocolVersion)))
        #expect(old.version == .v3_1_1)
    }
}
