import AWS
import Backoff
import ConduitTesting
import Foundation
import Hub
import MQTT
import MQTTBroker
import NIOCore
import Store
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Webhooks against a receiver that checks every signature with `standardwebhooks` (PyPI),
/// Standard Webhooks' reference implementation: retries, order per device, pause on 410, the
/// delivery log and resending, rotation, and the outbound rules from the attacker's side.
// One test at a time: each runs a receiver and a dispatcher, and the longest waits a minute anyway.
@Suite("Webhooks, against a standardwebhooks receiver", .serialized)
struct WebhookTests {
    static let receiverScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/webhook_receiver.py").path

    /// A receiver on loopback, as `Peers/webhook_receiver.py` runs it.
    final class Receiver: @unchecked Sendable {
        let port: Int
        let log: URL
        private var process: Process?

        init(port: Int = freeLoopbackPort()) throws {
            self.port = port
            self.log = try makeTemporaryDirectory().appendingPathComponent("requests.jsonl")
        }

        var url: String { "http://127.0.0.1:\(self.port)/hooks/conduit" }

        /// `hold`: each request is kept that long before its answer (``holding`` tells when one is).
        func start(secrets: [String], answers: [Int] = [], retryAfter: Int? = nil, redirect: String? = nil, hold: Double? = nil) async throws {
            var arguments = ["python3", WebhookTests.receiverScript, String(self.port), self.log.path]
            for secret in secrets { arguments += ["--secret", secret] }
            if !answers.isEmpty { arguments += ["--answers", answers.map(String.init).joined(separator: ",")] }
            if let retryAfter { arguments += ["--retry-after", String(retryAfter)] }
            if let redirect { arguments += ["--redirect", redirect] }
            if let hold { arguments += ["--hold", String(hold)] }
            let (process, _) = try Subprocess.start(arguments)
            self.process = process
            try await waitUntil("the webhook receiver to listen", seconds: 30) {
                guard process.isRunning else { throw TestSetupError("the webhook receiver exited (is standardwebhooks installed?)") }
                return Self.accepts(port: self.port)
            }
        }

        /// Whether something accepts connections on 127.0.0.1:`port`.
        static func accepts(port: Int) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            return withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
        }

        /// Kills it and waits for it to be gone (polling: waitUntilExit spins a run loop).
        func stop() {
            guard let process = self.process else { return }
            kill(process.processIdentifier, SIGKILL)
            for _ in 0..<500 where process.isRunning { usleep(10_000) }
            self.process = nil
        }

        deinit { self.stop() }

        /// Whether a request has come that `hold` keeps.
        var holding: Bool { FileManager.default.fileExists(atPath: self.log.path + ".holding") }

        /// Every request so far.
        func requests() -> [[String: Any]] {
            guard let text = try? String(contentsOf: self.log, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
    }

    static func environment(allowing urls: [String], resolve: (@Sendable (String, Int) async throws -> [String])? = nil) throws -> WebhookEnvironment {
        var allowlist = AWSEndpointAllowlist()
        for url in urls { try allowlist.add(url) }
        var environment = WebhookEnvironment(allowlist: allowlist, retry: Backoff(first: 0.1, maximum: 1, jitter: 0.5...1.5))
        if let resolve { environment.resolve = resolve }
        return environment
    }

    /// The types of the events about `device` the receiver got, in the order it got them.
    static func eventTypes(in requests: [[String: Any]], of device: String) -> [String] {
        requests.compactMap { $0["body"] as? [String: Any] }.filter { (($0["data"] as? [String: Any])?["deviceId"] as? String) == device }
            .compactMap { $0["type"] as? String }
    }

    static func admin(_ hub: Hub) async throws -> Principal {
        Principal(tenantID: try await hub.access.tenant(named: Tenant.defaultName).id, role: .admin, actor: "test")
    }

    /// Runs the dispatcher beside `body`, as `conduit serve` does.
    static func dispatching(_ hub: Hub, _ body: () async throws -> Void) async throws {
        let dispatcher = Task { await WebhookDispatcher(hub: hub, configuration: .init(pollInterval: 0.1)).run() }
        // Stopped and awaited before the store closes: a dispatcher still in a query then would
        // hold a connection the store's shutdown no longer knows of.
        do {
            try await body()
        } catch {
            dispatcher.cancel()
            await dispatcher.value
            throw error
        }
        dispatcher.cancel()
        await dispatcher.value
    }

    @Test("a receiver answering 500 three times, then 200: the event arrives once, signed, and the log shows four tries", arguments: TestDatabase.allCases)
    func retriesUntilTaken(database: TestDatabase) async throws {
        let receiver = try Receiver()
        try await database.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["device.accepted"], by: admin)
            try await receiver.start(secrets: [created.secret], answers: [500, 500, 500, 200])
            defer { receiver.stop() }
            try await Self.dispatching(hub) {
                _ = try await hub.devices.create(.init(id: "hook-1", name: "Hook 1"), by: admin)
                _ = try await hub.devices.perform(.accept, on: "hook-1", by: admin)
                try await waitUntil("the delivery to be taken") {
                    try await hub.webhooks.deliveries(created.view.webhook.id, page: try PageRequest(), by: admin).items.first?.delivery.state == .delivered
                }
            }
            let requests = receiver.requests()
            #expect(requests.count == 4)
            #expect(requests.allSatisfy { ($0["verified"] as? [Bool]) == [true] }, "every try is signed as Standard Webhooks specifies")
            #expect(Set(requests.compactMap { $0["id"] as? String }).count == 1, "every try carries the same webhook-id")
            let taken = requests.filter { $0["status"] as? Int == 200 }
            #expect(taken.count == 1)
            let body = taken.first?["body"] as? [String: Any]
            #expect(body?["type"] as? String == "device.accepted")
            #expect((body?["data"] as? [String: Any])?["deviceId"] as? String == "hook-1")

            let log = try await hub.webhooks.deliveries(created.view.webhook.id, page: try PageRequest(), by: admin).items
            #expect(log.count == 1)
            #expect(log.first?.attempts.map(\.status) == [500, 500, 500, 200])
            #expect(log.first?.attempts.map(\.attempt) == [1, 2, 3, 4])
            #expect(log.first?.delivery.attempts == 4)
            // The secret is shown once: the store holds it sealed.
            let stored = try #require(try await hub.store.session.webhooks.get(id: created.view.webhook.id))
            #expect(!stored.secret.contains(created.secret.dropFirst(6)))
            #expect(stored.secret.hasPrefix("v2:"))
        }
    }

    @Test("a webhook deleted while a delivery to it is on its way: the try ends quietly, no warning for the operator", arguments: TestDatabase.allCases)
    func deletedWhileTried(database: TestDatabase) async throws {
        let receiver = try Receiver()
        let logs = CapturedLogs()
        try await database.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"]), logger: logs.logger()) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["device.accepted"], by: admin)
            let webhookID = created.view.webhook.id
            try await receiver.start(secrets: [created.secret], hold: 3)
            defer { receiver.stop() }
            try await Self.dispatching(hub) {
                _ = try await hub.devices.create(.init(id: "gone-1", name: "Gone 1"), by: admin)
                _ = try await hub.devices.perform(.accept, on: "gone-1", by: admin)
                try await waitUntil("the delivery to reach the receiver") { receiver.holding }
                try await hub.webhooks.delete(webhookID, by: admin)
                try await waitUntil("the dispatcher to be done with the try") {
                    logs.entries().contains { $0.metadata.contains("webhook_id=\(webhookID)") }
                }
            }
            #expect(receiver.requests().count == 1)
            #expect(logs.entries(atLeast: .warning).isEmpty, "\(logs.entries(atLeast: .warning))")
            #expect(try await hub.store.session.webhooks.get(id: webhookID) == nil)
        }
    }

    @Test("a receiver down for a minute gets every event afterwards, in order per device, each once")
    func receiverDownForAMinute() async throws {
        let receiver = try Receiver()
        try await TestDatabase.sqlite.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(
                name: "ops", url: receiver.url, events: ["device.created", "device.accepted", "device.updated", "device.rejected"], by: admin
            )
            try await Self.dispatching(hub) {
                let started = ContinuousClock.now
                // Three devices' lifecycles, interleaved, while nothing listens.
                for id in ["a", "b", "c"] { _ = try await hub.devices.create(.init(id: "down-\(id)", name: "Down \(id)"), by: admin) }
                for id in ["a", "b", "c"] { _ = try await hub.devices.perform(.accept, on: "down-\(id)", by: admin) }
                for id in ["a", "b", "c"] { _ = try await hub.devices.update("down-\(id)", with: .init(name: "Renamed \(id)"), by: admin) }
                for id in ["c", "a", "b"] { _ = try await hub.devices.perform(.reject, on: "down-\(id)", by: admin) }
                try await Task.sleep(until: started + .seconds(60))
                let tried = try await hub.webhooks.deliveries(created.view.webhook.id, page: try PageRequest(limit: 100), by: admin).items
                #expect(tried.count == 12)
                #expect(tried.allSatisfy { $0.delivery.state == .pending })
                #expect(tried.contains { $0.delivery.attempts > 1 }, "tried again and again while the receiver was down")
                try await receiver.start(secrets: [created.secret])
                defer { receiver.stop() }
                try await waitUntil("every delivery to be taken", seconds: 60) {
                    try await hub.webhooks.deliveries(created.view.webhook.id, state: .pending, page: try PageRequest(), by: admin).items.isEmpty
                }
            }
            let requests = receiver.requests()
            #expect(requests.allSatisfy { ($0["verified"] as? [Bool]) == [true] })
            #expect(requests.count == 12, "each event once: none lost, none twice")
            for id in ["a", "b", "c"] {
                let types = Self.eventTypes(in: requests, of: "down-\(id)")
                #expect(types == ["device.created", "device.accepted", "device.updated", "device.rejected"], "down-\(id): \(types)")
            }
        }
    }

    @Test("two nodes on one PostgreSQL dispatch side by side: each event reaches the receiver once, each device's in order")
    func twoNodesDeliverOnce() async throws {
        let receiver = try Receiver()
        let environment = try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])
        try await TestDatabase.postgres.withHub(webhooks: environment) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(
                name: "ops", url: receiver.url, events: ["device.created", "device.accepted", "device.updated", "device.rejected"], by: admin
            )
            try await receiver.start(secrets: [created.secret])
            defer { receiver.stop() }
            // A second node: the same database and master key, a hub and a dispatcher of its own.
            let second = try await hub.anotherNode(webhooks: environment)
            let ids = (0..<20).map { "pair-\($0)" }
            do {
                try await Self.dispatching(hub) {
                    try await Self.dispatching(second) {
                        // Each device's lifecycle written through both nodes, in turn.
                        for (index, id) in ids.enumerated() {
                            let (one, other) = index.isMultiple(of: 2) ? (hub, second) : (second, hub)
                            _ = try await one.devices.create(.init(id: id, name: "Pair \(index)"), by: admin)
                            _ = try await other.devices.perform(.accept, on: id, by: admin)
                            _ = try await one.devices.update(id, with: .init(name: "Renamed \(index)"), by: admin)
                            _ = try await other.devices.perform(.reject, on: id, by: admin)
                        }
                        try await waitUntil("every delivery to be taken", seconds: 60) {
                            try await hub.webhooks.deliveries(created.view.webhook.id, state: .pending, page: try PageRequest(), by: admin).items.isEmpty
                        }
                        // A moment more, for a second try of any delivery on its way.
                        try await Task.sleep(for: .seconds(1))
                    }
                }
            } catch {
                await second.store.shutdown()
                throw error
            }
            await second.store.shutdown()
            let requests = receiver.requests()
            #expect(requests.allSatisfy { ($0["verified"] as? [Bool]) == [true] })
            #expect(requests.count == ids.count * 4, "each event once: none lost, none twice")
            #expect(Set(requests.compactMap { $0["id"] as? String }).count == ids.count * 4)
            for id in ids {
                let types = Self.eventTypes(in: requests, of: id)
                #expect(types == ["device.created", "device.accepted", "device.updated", "device.rejected"], "\(id): \(types)")
            }
        }
    }

    @Test("410 Gone pauses the webhook and holds its deliveries; resuming sends them; Retry-After is honoured")
    func goneAndRetryAfter() async throws {
        let receiver = try Receiver()
        try await TestDatabase.sqlite.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["device.created", "device.updated"], by: admin)
            let id = created.view.webhook.id
            try await receiver.start(secrets: [created.secret], answers: [410, 503], retryAfter: 3)
            defer { receiver.stop() }
            try await Self.dispatching(hub) {
                _ = try await hub.devices.create(.init(id: "gone-1", name: "Gone"), by: admin)
                try await waitUntil("the webhook to be paused") { try await hub.webhooks.get(id, by: admin).webhook.pausedReason != nil }
                #expect(try await hub.webhooks.get(id, by: admin).webhook.pausedReason?.contains("410 Gone") == true)
                #expect(try await hub.events.list(filter: .init(type: EventType.webhookPaused), page: try PageRequest(), by: admin).items.count == 1)
                // Paused: more events wait, and nothing is sent.
                _ = try await hub.devices.update("gone-1", with: .init(name: "Gone again"), by: admin)
                try await Task.sleep(for: .seconds(1))
                #expect(receiver.requests().count == 1)
                #expect(try await hub.webhooks.get(id, by: admin).pending == 2)

                _ = try await hub.webhooks.update(id, paused: false, by: admin)
                try await waitUntil("both deliveries to be taken", seconds: 30) {
                    try await hub.webhooks.get(id, by: admin).pending == 0
                }
            }
            let log = try await hub.webhooks.deliveries(id, page: try PageRequest(), by: admin).items
            let first = try #require(log.first { $0.delivery.eventType == "device.created" })
            #expect(first.attempts.map(\.status) == [410, 503, 200])
            #expect(log.first { $0.delivery.eventType == "device.updated" }?.attempts.map(\.status) == [200])
            // The device's second event went after its first, never beside it.
            #expect(receiver.requests().compactMap { ($0["body"] as? [String: Any])?["type"] as? String }.last == "device.updated")
            // After the 503, the next try waited at least the 3 s the receiver asked for.
            let afterRetry = first.attempts[2].at.timeIntervalSince(first.attempts[1].at)
            #expect(afterRetry >= 2.9, "Retry-After: 3 was not honoured (\(afterRetry) s)")
            #expect(receiver.requests().compactMap { $0["id"] as? String }.count == 4)
        }
    }

    @Test("a failed delivery is kept and can be sent again with the same webhook-id; a rotated secret signs beside the new one")
    func resendAndRotation() async throws {
        let receiver = try Receiver()
        var environment = try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])
        environment.maximumAge = 0.5
        try await TestDatabase.sqlite.withHub(webhooks: environment) { hub in
            let admin = try await Self.admin(hub)
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["device.created"], by: admin)
            let id = created.view.webhook.id
            try await Self.dispatching(hub) {
                // Nobody listens, and deliveries are given up after half a second.
                _ = try await hub.devices.create(.init(id: "resend-1", name: "Resend"), by: admin)
                try await waitUntil("the delivery to be given up") {
                    try await hub.webhooks.deliveries(id, state: .failed, page: try PageRequest(), by: admin).items.count == 1
                }
                let failed = try #require(try await hub.webhooks.deliveries(id, page: try PageRequest(), by: admin).items.first)
                #expect(failed.attempts.allSatisfy { $0.status == nil && $0.error != nil })

                let rotated = try await hub.webhooks.rotateSecret(id, by: admin)
                #expect(rotated.secret != created.secret)
                try await receiver.start(secrets: [created.secret, rotated.secret])
                defer { receiver.stop() }
                let resent = try await hub.webhooks.resend(id, delivery: failed.delivery.sequence, by: admin)
                #expect(resent.delivery.messageID == failed.delivery.messageID)
                await #expect(throws: HubError.self) { try await hub.webhooks.resend(id, delivery: resent.delivery.sequence, by: admin) }
                try await waitUntil("the resent delivery to be taken") {
                    try await hub.webhooks.deliveries(id, state: .delivered, page: try PageRequest(), by: admin).items.count == 1
                }
            }
            let requests = receiver.requests()
            #expect(requests.count == 1)
            #expect(requests.first?["verified"] as? [Bool] == [true, true], "the old secret and the new one both verify it")
            #expect(requests.first?["signatures"] as? Int == 2)
        }
    }

    @Test("a rule's webhook action sends the firing to its webhook, once, signed")
    func ruleAction() async throws {
        let receiver = try Receiver()
        try await TestDatabase.sqlite.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            // It takes rule.fired events too: the firing still arrives once.
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["rule.fired"], by: admin)
            try await receiver.start(secrets: [created.secret])
            defer { receiver.stop() }
            _ = try await hub.devices.create(.init(id: "lamp-w", name: "Lamp", labels: ["fleet"]), by: admin)
            _ = try await hub.devices.perform(.accept, on: "lamp-w", by: admin)
            let rule = try await hub.rules.create(
                name: "lights",
                definition: RuleDefinition(
                    source: .init(all: true), subtopic: "up", value: "$.lightValue", states: ["Above": .init(above: 350), "Below": .init(below: 300)],
                    actions: [.init(on: .init(to: "Above"), webhook: .init(integrationId: created.view.webhook.id))]
                ),
                by: admin
            )
            try await Self.dispatching(hub) {
                for value in [100, 400] {
                    let message = MQTTBrokerMessage(topic: "devices/lamp-w/up", payload: ByteBuffer(string: #"{"lightValue": \#(value)}"#), qos: .atLeastOnce)
                    #expect(try await hub.messages.ingest(deviceID: "lamp-w", message: message) == .accepted)
                }
                try await waitUntil("the firing to arrive") { receiver.requests().count == 1 }
                try await Task.sleep(for: .milliseconds(500))
            }
            let requests = receiver.requests()
            #expect(requests.count == 1)
            let body = requests.first?["body"] as? [String: Any]
            let data = body?["data"] as? [String: Any]
            #expect(body?["type"] as? String == "rule.fired")
            #expect(data?["ruleId"] as? String == rule.id)
            #expect(data?["state"] as? String == "Above")
            #expect(data?["value"] as? String == "400")
            #expect(requests.first?["verified"] as? [Bool] == [true])
        }
    }

    @Test("a webhook made while rules run gets their next firing: ingest learns at once who takes rule.fired", arguments: TestDatabase.allCases)
    func subscribedWhileRunning(database: TestDatabase) async throws {
        let receiver = try Receiver()
        try await database.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            _ = try await hub.devices.create(.init(id: "lamp-s", name: "Lamp", labels: ["fleet"]), by: admin)
            _ = try await hub.devices.perform(.accept, on: "lamp-s", by: admin)
            _ = try await hub.rules.create(
                name: "lights",
                definition: RuleDefinition(
                    source: .init(all: true), subtopic: "up", value: "$.lightValue", states: ["Above": .init(above: 350), "Below": .init(below: 300)],
                    actions: [.init(on: .init(to: "Above"), downlink: .init(payload: .object(["lightStatus": .string("off")])))]
                ),
                by: admin
            )
            func reading(_ value: Int) async throws {
                let message = MQTTBrokerMessage(topic: "devices/lamp-s/up", payload: ByteBuffer(string: #"{"lightValue": \#(value)}"#), qos: .atLeastOnce)
                #expect(try await hub.messages.ingest(deviceID: "lamp-s", message: message) == .accepted)
            }
            // Rules have run, and fired, with no webhook taking their events.
            try await reading(100)
            try await reading(400)
            try await reading(100)
            let created = try await hub.webhooks.create(name: "ops", url: receiver.url, events: ["rule.fired"], by: admin)
            try await receiver.start(secrets: [created.secret])
            defer { receiver.stop() }
            try await Self.dispatching(hub) {
                try await reading(420)
                try await waitUntil("the firing to arrive") { receiver.requests().count == 1 }
            }
            let requests = receiver.requests()
            #expect(requests.count == 1)
            let body = requests.first?["body"] as? [String: Any]
            #expect(body?["type"] as? String == "rule.fired")
            #expect((body?["data"] as? [String: Any])?["value"] as? String == "420")
        }
    }

    @Test("a webhook that takes uplinks gets each device message, in order, as it was sent", arguments: TestDatabase.allCases)
    func uplinks(database: TestDatabase) async throws {
        let receiver = try Receiver()
        try await database.withHub(webhooks: try Self.environment(allowing: ["http://127.0.0.1:\(receiver.port)"])) { hub in
            let admin = try await Self.admin(hub)
            _ = try await hub.devices.create(.init(id: "up-1", name: "Up"), by: admin)
            _ = try await hub.devices.perform(.accept, on: "up-1", by: admin)
            // A message before the webhook existed goes to no one.
            let before = MQTTBrokerMessage(topic: "devices/up-1/up", payload: ByteBuffer(string: "before"), qos: .atLeastOnce)
            #expect(try await hub.messages.ingest(deviceID: "up-1", message: before) == .accepted)
            let created = try await hub.webhooks.create(name: "stream", url: receiver.url, events: ["uplink"], by: admin)
            try await receiver.start(secrets: [created.secret])
            defer { receiver.stop() }
            try await Self.dispatching(hub) {
                for payload in [#"{"t": 21.5}"#, "raw bytes", #"{"t": 22}"#] {
                    let message = MQTTBrokerMessage(topic: "devices/up-1/telemetry", payload: ByteBuffer(string: payload), qos: .atLeastOnce)
                    #expect(try await hub.messages.ingest(deviceID: "up-1", message: message) == .accepted)
                }
                try await waitUntil("three uplinks to arrive") { receiver.requests().count == 3 }
            }
            let requests = receiver.requests()
            #expect(requests.allSatisfy { ($0["verified"] as? [Bool]) == [true] })
            let bodies = requests.compactMap { $0["body"] as? [String: Any] }
            #expect(bodies.allSatisfy { $0["type"] as? String == "uplink" })
            let data = bodies.compactMap { $0["data"] as? [String: Any] }
            #expect(data.compactMap { $0["payloadText"] as? String } == [#"{"t": 21.5}"#, "raw bytes", #"{"t": 22}"#])
            #expect((data.first?["payloadJson"] as? [String: Any])?["t"] as? Double == 21.5)
            #expect(data.allSatisfy { $0["deviceId"] as? String == "up-1" && $0["topic"] as? String == "devices/up-1/telemetry" && $0["source"] as? String == "device" })
            #expect(Set(requests.compactMap { $0["id"] as? String }).count == 3)
        }
    }

    @Test("outbound rules, from the attacker's side: private, loopback and link-local targets are refused before any connection")
    func outboundRules() async throws {
        let (listener, port) = holdLoopbackPort()
        defer { close(listener) }
        // A host name that resolves to a public address when the webhook is made and to loopback
        // at delivery (DNS rebinding); no address here is ever connected to.
        let answers = AddressBook(["rebind.example": ["93.184.216.34"], "mixed.example": ["93.184.216.34", "10.0.0.7"]])
        let environment = try Self.environment(allowing: []) { host, _ in
            guard let addresses = answers.addresses(host) else { throw WebhookError.unresolvable(host, "unknown") }
            return addresses
        }
        try await TestDatabase.sqlite.withHub(webhooks: environment) { hub in
            let admin = try await Self.admin(hub)
            func refused(_ url: String) async throws -> String {
                do {
                    _ = try await hub.webhooks.create(name: "x", url: url, events: ["device.created"], by: admin)
                    Issue.record("\(url) was accepted")
                    return ""
                } catch let error as HubError {
                    #expect(error.field == "url")
                    return error.message
                }
            }
            #expect(try await refused("http://127.0.0.1:\(port)/hook").contains("must use https"))
            #expect(try await refused("https://127.0.0.1:\(port)/hook").contains("a loopback address"))
            #expect(try await refused("https://[::ffff:127.0.0.1]:\(port)/hook").contains("a loopback address"))
            #expect(try await refused("https://169.254.169.254/latest/meta-data").contains("link-local"))
            #expect(try await refused("https://10.1.2.3/hook").contains("a private address"))
            #expect(try await refused("https://[fd00::1]/hook").contains("private"))
            #expect(try await refused("https://mixed.example/hook").contains("10.0.0.7, a private address"))
            #expect(try await refused("https://user:pass@example.com/hook").contains("user info"))
            #expect(try await hub.webhooks.list(by: admin).isEmpty)

            // Made while the name resolved to a public address; at delivery it resolves to loopback.
            let created = try await hub.webhooks.create(name: "rebind", url: "https://rebind.example:\(port)/hook", events: ["device.created"], by: admin)
            answers.set("rebind.example", ["127.0.0.1"])
            _ = try await hub.devices.create(.init(id: "ssrf-1", name: "SSRF"), by: admin)
            try await Self.dispatching(hub) {
                try await waitUntil("a try to be recorded") {
                    try await hub.webhooks.deliveries(created.view.webhook.id, page: try PageRequest(), by: admin).items.first?.attempts.isEmpty == false
                }
            }
            let attempt = try #require(try await hub.webhooks.deliveries(created.view.webhook.id, page: try PageRequest(), by: admin).items.first?.attempts.first)
            #expect(attempt.status == nil)
            #expect(attempt.error?.contains("resolves to 127.0.0.1, a loopback address") == true, "\(attempt.error ?? "")")
            // Nothing came to the port the loopback address would have reached.
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            #expect(poll(&poller, 1, 0) == 0, "a connection reached the listener")
        }
    }

    @Test("addresses: public unicast only, IPv4 inside IPv6 judged as IPv4")
    func addressKinds() {
        for address in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "1.1.1.1"] {
            #expect(WebhookAddresses.nonPublicKind(address) == nil, "\(address)")
        }
        for address in [
            "127.0.0.1", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255",
            "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "ff02::1",
        ] {
            #expect(WebhookAddresses.nonPublicKind(address) != nil, "\(address)")
        }
    }
}

/// Names and their addresses, changeable mid-test.
final class AddressBook: Sendable {
    private let book: Mutex<[String: [String]]>

    init(_ book: [String: [String]]) { self.book = Mutex(book) }

    func addresses(_ host: String) -> [String]? { self.book.withLock { $0[host] } }
    func set(_ host: String, _ addresses: [String]) { self.book.withLock { $0[host] = addresses } }
}
