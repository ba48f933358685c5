import Dispatch
import MQTT
import NIOCore
import NIOPosix

/// One connection of the MQTT benchmark: a publisher of timestamped messages, or a subscriber
/// that measures how long each took to arrive. MQTT 3.1.1, so that any broker can be measured.
/// Its state is read and written on its channel's event loop only: the benchmarks reach it
/// through that loop (`execute`, `submit`, `scheduleTask`), which is what makes it Sendable.
final class MQTTBenchClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = MQTTPacket
    typealias OutboundOut = ByteBuffer

    enum Role {
        case publisher(topic: String, count: Int, size: Int)
        case subscriber(topic: String, expected: Int)
    }

    let role: Role
    let qos: MQTTQoS
    let clientIdentifier: String
    /// False: the client keeps a persistent session (3.1.1's clean session 0).
    let cleanStart: Bool
    let connected: EventLoopPromise<Void>
    let subscribed: EventLoopPromise<Void>
    /// Publisher: every message written (QoS 0) or acknowledged. Subscriber: every message received.
    let finished: EventLoopPromise<Void>
    /// Subscriber: nanoseconds from publish to arrival, one per message.
    private(set) var latencies: [UInt64] = []
    private(set) var received = 0
    private var context: ChannelHandlerContext?
    private var sent = 0
    private var completed = 0
    private var inflight = 0
    // mosquitto (and AWS IoT) default to 20 unacknowledged publishes per client: stay within it.
    private let window = 20
    private var payloadTemplate: [UInt8] = []
    /// The password to connect with (the user name is the client id), for brokers that ask.
    private let password: String?
    /// Publisher: messages per second, or nil for as fast as the window allows.
    private let rate: Double?
    private var pacingStarted: UInt64 = 0
    private var pacer: RepeatedTask?
    /// Publisher: JSON payloads, `{"v":N,"p":"***"}` with N going 0 to 999 and round again,
    /// for rules to read, instead of a timestamp and filler.
    private let json: Bool

    init(
        role: Role, qos: MQTTQoS, clientIdentifier: String, password: String? = nil, rate: Double? = nil, json: Bool = false, cleanStart: Bool = true,
        eventLoop: any EventLoop
    ) {
        self.json = json
        self.role = role
        self.rate = rate
        self.password = password
        self.qos = qos
        self.clientIdentifier = clientIdentifier
        self.cleanStart = cleanStart
        self.connected = eventLoop.makePromise()
        self.subscribed = eventLoop.makePromise()
        self.finished = eventLoop.makePromise()
        if case .subscriber(_, let expected) = role { self.latencies.reserveCapacity(expected) }
        if case .publisher(_, _, let size) = role { self.payloadTemplate = [UInt8](repeating: 0x2A, count: max(8, size)) }
    }

    func channelActive(context: ChannelHandlerContext) {
        self.context = context
        self.write(
            .connect(
                MQTTConnectPacket(
                    version: .v3_1_1, clientIdentifier: self.clientIdentifier, cleanStart: self.cleanStart, keepAlive: 120,
                    username: self.password.map { _ in self.clientIdentifier }, password: self.password.map { ByteBuffer(string: $0) }
                )
            )
        )
        context.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let error = ChannelError.ioOnClosedChannel
        self.connected.fail(error)
        self.subscribed.fail(error)
        self.finished.fail(error)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.connected.fail(error)
        self.subscribed.fail(error)
        self.finished.fail(error)
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .connack(let connack):
            guard !connack.reasonCode.isFailure else {
                self.connected.fail(BenchError("connection refused: \(connack.reasonCode)"))
                return
            }
            self.connected.succeed()
            if case .subscriber(let topic, _) = self.role {
                self.write(.subscribe(MQTTSubscribePacket(packetIdentifier: 1, subscriptions: [.init(topicFilter: topic, qos: self.qos)])))
            }
        case .suback:
            self.subscribed.succeed()
        case .publish(let publish):
            let now = DispatchTime.now().uptimeNanoseconds
            if let stamp = publish.payload.getInteger(at: publish.payload.readerIndex, as: UInt64.self), stamp <= now {
                self.latencies.append(now - stamp)
            }
            self.received += 1
            if let id = publish.packetIdentifier {
                self.write(publish.qos == .atLeastOnce ? .puback(MQTTAckPacket(packetIdentifier: id)) : .pubrec(MQTTAckPacket(packetIdentifier: id)))
            }
            if case .subscriber(_, let expected) = self.role, self.received == expected { self.finished.succeed() }
        case .pubrel(let ack):
            self.write(.pubcomp(MQTTAckPacket(packetIdentifier: ack.packetIdentifier)))
        case .puback:
            self.acknowledged()
        case .pubrec(let ack):
            self.write(.pubrel(MQTTAckPacket(packetIdentifier: ack.packetIdentifier)))
        case .pubcomp:
            self.acknowledged()
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    /// Starts publishing; call on the channel's event loop.
    func startPublishing() {
        guard self.rate != nil, let context = self.context else { return self.sendMore() }
        self.pacingStarted = DispatchTime.now().uptimeNanoseconds
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        self.pacer = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(5)) { _ in loopBound.value.sendMore() }
    }

    /// How many messages the pace allows by now.
    private var allowed: Int {
        guard let rate else { return .max }
        return Int(Double(DispatchTime.now().uptimeNanoseconds - self.pacingStarted) / 1e9 * rate) + 1
    }

    private func acknowledged() {
        self.inflight -= 1
        self.completed += 1
        if case .publisher(_, let count, _) = self.role, self.completed == count {
            self.pacer?.cancel()
            self.finished.succeed()
            return
        }
        self.sendMore()
    }

    private func sendMore() {
        guard case .publisher(let topic, let count, _) = self.role, let context = self.context else { return }
        var batch = 0
        let allowed = min(count, self.allowed)
        guard self.sent < allowed else { return }
        while self.sent < allowed && (self.qos == .atMostOnce ? batch < self.window : self.inflight < self.window) {
            var payload = context.channel.allocator.buffer(capacity: self.payloadTemplate.count)
            if self.json {
                let head = #"{"v":\#(self.sent % 1000),"p":""#
                payload.writeString(head)
                payload.writeBytes(self.payloadTemplate.prefix(max(0, self.payloadTemplate.count - head.utf8.count - 2)))
                payload.writeString(#""}"#)
            } else {
                payload.writeBytes(self.payloadTemplate)
                payload.setInteger(DispatchTime.now().uptimeNanoseconds, at: payload.readerIndex)
            }
            self.sent += 1
            batch += 1
            let id: UInt16? = self.qos == .atMostOnce ? nil : UInt16(self.sent % 65535 + 1)
            if id != nil { self.inflight += 1 }
            self.write(.publish(MQTTPublishPacket(topic: topic, payload: payload, qos: self.qos, packetIdentifier: id)))
        }
        if self.qos == .atMostOnce {
            // QoS 0 has no acknowledgement to pace it: the socket's own progress does.
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let done = self.sent == count
            context.writeAndFlush(self.wrapOutboundOut(context.channel.allocator.buffer(capacity: 0))).whenComplete { _ in
                if done {
                    loopBound.value.pacer?.cancel()
                    loopBound.value.finished.succeed()
                } else if loopBound.value.rate == nil {
                    loopBound.value.sendMore()
                }
            }
        } else {
            context.flush()
        }
    }

    private func write(_ packet: MQTTPacket) {
        guard let context = self.context else { return }
        var buffer = context.channel.allocator.buffer(capacity: 64)
        packet.write(to: &buffer, version: .v3_1_1)
        context.write(self.wrapOutboundOut(buffer), promise: nil)
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
