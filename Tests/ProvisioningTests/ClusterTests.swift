import ConduitTesting
import Foundation
import Hub
import MQTT
import MQTTBroker
import NIOCore
import Store
import Synchronization
import Testing

@Suite("Nodes on one PostgreSQL: the uplink outbox's shards, against moto")
struct ClusterTests {
    static func membership(_ hub: Hub, _ id: String) -> ClusterMembership {
        ClusterMembership(hub: hub, configuration: .init(nodeID: id, heartbeatInterval: .milliseconds(200), leaseDuration: .seconds(2)))
    }

    @Test("two nodes share the outbox's shards and publish each message once, in each device's order; when one stops, the other takes its shards and forwards the rest")
    func twoNodesShareTheOutbox() async throws {
        try await ProvisioningFixture.run(.postgres) { fixture in
            _ = try await fixture.createIntegration { $0.thingGroup = .some(nil) }
            let run = UUID().uuidString.prefix(6).lowercased()
            let ids = (0..<40).map { "node-\(run)-\($0)" }
            for id in ids {
                try await fixture.createDevice(id)
                _ = try await fixture.hub.devices.perform(.accept, on: id, by: fixture.admin)
            }
            try await Provisioner(hub: fixture.hub).drain()

            // A second node: the same database and master key, a hub of its own.
            let second = try await fixture.hub.anotherNode(aws: try MotoPeer.environment())
            let nodes = [fixture.hub, second]
            var members = nodes.enumerated().map { index, hub in Task { await Self.membership(hub, "node-\(run)-\(index)").run() } }
            var forwarders = nodes.map { hub in Task { await UplinkForwarder(hub: hub).run() } }
            func shutdown() async {
                for task in forwarders + members { task.cancel() }
                for task in forwarders + members { await task.value }
                await second.store.shutdown()
            }
            do {
                try await waitUntil("each node to hold half of the shards", seconds: 60) {
                    fixture.hub.uplinkShards.held.count == UplinkShards.count / 2 && second.uplinkShards.held.count == UplinkShards.count / 2
                        && fixture.hub.uplinkShards.held.isDisjoint(with: second.uplinkShards.held)
                }
                // Both nodes have work: devices in the shards of each.
                let shardsOfDevices = Set(ids.map(UplinkShards.shard(of:)))
                #expect(!shardsOfDevices.isDisjoint(with: fixture.hub.uplinkShards.held) && !shardsOfDevices.isDisjoint(with: second.uplinkShards.held))
                // The devices publish to the first node, whatever shard they are in.
                for index in 0..<25 {
                    for id in ids {
                        #expect(try await fixture.hub.messages.ingest(deviceID: id, message: UplinkTests.message(id, "up", "\(id)#\(index)")) == .accepted)
                    }
                }
                try await Self.waitForPublishes(run: run, count: ids.count * 25)

                // The second node stops: its shards move to the first, which forwards what comes next.
                forwarders[1].cancel()
                await forwarders[1].value
                members[1].cancel()
                await members[1].value
                try await waitUntil("the first node to hold every shard", seconds: 60) {
                    fixture.hub.uplinkShards.held.count == UplinkShards.count
                }
                for index in 25..<35 {
                    for id in ids {
                        #expect(try await fixture.hub.messages.ingest(deviceID: id, message: UplinkTests.message(id, "up", "\(id)#\(index)")) == .accepted)
                    }
                }
                let publishes = try await Self.waitForPublishes(run: run, count: ids.count * 35)
                for id in ids {
                    let mine = publishes.filter { $0.topic == "conduit/\(id)/up" }.map { String(decoding: $0.payload, as: UTF8.self) }
                    #expect(mine == (0..<35).map { "\(id)#\($0)" }, "each once, in order: \(id)")
                }
                let nodesSeen = try await fixture.hub.cluster.nodes(by: fixture.admin)
                #expect(nodesSeen.map(\.id) == ["node-\(run)-0"], "the stopped node left")
                #expect(nodesSeen.first?.uplinkShards == UplinkShards.count)
                members = [members[0]]
                forwarders = [forwarders[0]]
            } catch {
                await shutdown()
                throw error
            }
            await shutdown()
        }
    }

    @Test("two nodes' provisioners work one fleet: each device's thing and policy are made once, by one node, whichever node accepted it")
    func twoNodesProvisionOnce() async throws {
        try await ProvisioningFixture.run(.postgres) { fixture in
            let integration = try await fixture.createIntegration { $0.thingGroup = .some(nil) }
            let run = UUID().uuidString.prefix(6).lowercased()
            let ids = (0..<30).map { "prov-\(run)-\($0)" }
            let second = try await fixture.hub.anotherNode(aws: try MotoPeer.environment())
            // The whole fleet is accepted first, through either node, so that both provisioners start
            // on the same due jobs at once: the claims, not the timing, must keep them apart.
            for (index, id) in ids.enumerated() {
                try await fixture.createDevice(id)
                _ = try await (index.isMultiple(of: 2) ? fixture.hub : second).devices.perform(.accept, on: id, by: fixture.admin)
            }
            let configuration = Provisioner.Configuration(concurrency: 4, pollInterval: 0.05, reconcileInterval: nil)
            let workers = [fixture.hub, second].map { hub in Task { await Provisioner(hub: hub, configuration: configuration).run() } }
            func shutdown() async {
                for task in workers { task.cancel() }
                for task in workers { await task.value }
                await second.store.shutdown()
            }
            do {
                try await waitUntil("every device provisioned", seconds: 120) {
                    for id in ids where try await fixture.record(id, in: integration)?.state != .provisioned { return false }
                    return true
                }
            } catch {
                await shutdown()
                throw error
            }
            await shutdown()
            let requests = try MotoPeer.recordedRequests().map { "\($0.method) \($0.path)" }
            for id in ids {
                #expect(requests.filter { $0 == "POST /things/\(id)" }.count == 1, "\(id)'s thing made once")
                #expect(requests.filter { $0 == "POST /policies/conduit-\(id)" }.count == 1, "\(id)'s policy made once")
                #expect(try await fixture.iot.listThingPrincipals(thing: id).count == 1, "\(id) has one certificate")
            }
            #expect(try await fixture.certificates().count == ids.count, "no certificate made twice")
        }
    }

    /// Waits until moto recorded `count` uplinks of the run's devices (and a moment more, for any
    /// duplicate on its way); returns them.
    @discardableResult
    static func waitForPublishes(run: String, count: Int) async throws -> [MotoPeer.RecordedPublish] {
        var found: [MotoPeer.RecordedPublish] = []
        try await waitUntil("\(count) uplinks in moto's recorder", seconds: 240, interval: .milliseconds(500)) {
            found = try MotoPeer.recordedPublishes(containing: "node-\(run)-").filter { $0.topic.hasSuffix("/up") }
            return found.count >= count
        }
        try await Task.sleep(for: .seconds(1))
        found = try MotoPeer.recordedPublishes(containing: "node-\(run)-").filter { $0.topic.hasSuffix("/up") }
        #expect(found.count == count, "no message twice")
        return found
    }

    @Test("a node that lost a device to another writes nothing more of its session; a takeover noted while a node writes a session waits for the write")
    func sessionWritesFollowTheHolder() async throws {
        try await TestDatabase.postgres.withHub { hub in
            let admin = Principal(tenantID: try await hub.access.tenant(named: Tenant.defaultName).id, role: .admin, actor: "test")
            let second = try await hub.anotherNode()
            let (first, other) = ("fence-1", "fence-2")
            let members = [(hub, first), (second, other)].map { node, id in Task { await Self.membership(node, id).run() } }
            func shutdown() async {
                for task in members { task.cancel() }
                for task in members { await task.value }
                await second.store.shutdown()
            }
            do {
                try await waitUntil("both nodes in the cluster", seconds: 30) { try await hub.cluster.nodes(by: admin).count == 2 }
                let (one, two) = (StoreMQTTSessions(hub: hub), StoreMQTTSessions(hub: second))
                @Sendable func record(_ id: String, _ filter: String) throws -> MQTTSessionRecord {
                    try JSONDecoder().decode(
                        MQTTSessionRecord.self,
                        from: Data(
                            #"{"clientIdentifier": "\#(id)", "principal": "\#(id)", "expiryInterval": 3600, "subscriptions": [{"filter": "\#(filter)", "qos": 1, "noLocal": false, "retainAsPublished": false, "retainHandling": 0}], "messages": []}"#.utf8
                        )
                    )
                }
                let message = try JSONDecoder().decode(
                    MQTTSessionRecord.Message.self,
                    from: Data(#"{"sequence": 1, "topic": "devices/d/down", "payload": "", "qos": 1, "retain": false, "properties": "", "subscriptionIdentifiers": []}"#.utf8)
                )
                let holders = hub.store.session.deviceSessions
                // The device on node 1, which stores its session.
                _ = try await holders.connected(deviceID: "d", nodeID: first, now: Date())
                try await one.save([.saveSession(try record("d", "old/#"))])
                // Taken over by node 2, which resumes the session and adds to it.
                _ = try await holders.connected(deviceID: "d", nodeID: other, now: Date())
                try await two.save([.saveSession(try record("d", "new/#")), .addMessage(clientIdentifier: "d", message)])
                // Node 1's last writes of the session it lost, late: none lands.
                try await one.save([.saveSession(try record("d", "old/#")), .removeMessage(clientIdentifier: "d", sequence: 1)])
                try await one.save([.deleteSession(clientIdentifier: "d")])
                let stored = try #require(try await two.storedSession(clientIdentifier: "d"), "the new holder's session stays")
                #expect(stored.subscriptions.map(\.filter) == ["new/#"])
                #expect(stored.messages.map(\.sequence) == [1])
                // A device node 1 still holds, and one no node holds yet, are written as ever.
                _ = try await holders.connected(deviceID: "e", nodeID: first, now: Date())
                try await one.save([.saveSession(try record("e", "e/#")), .saveSession(try record("f", "f/#"))])
                #expect(try await one.storedSession(clientIdentifier: "e")?.subscriptions.map(\.filter) == ["e/#"])
                #expect(try await one.storedSession(clientIdentifier: "f") != nil)

                // Node 1 writes e's session while e connects to node 2: the takeover is noted only once
                // the write is in, so node 2 then reads it.
                final class Steps: Sendable {
                    let locked = Mutex(false)
                    let written = Mutex(false)
                }
                let steps = Steps()
                let late = String(decoding: try JSONEncoder().encode(try record("e", "late/#")), as: UTF8.self)
                let takeover = Task {
                    while !steps.locked.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                    _ = try await second.store.session.deviceSessions.connected(deviceID: "e", nodeID: other, now: Date())
                    return steps.written.withLock { $0 }
                }
                try await hub.store.transaction { session in
                    #expect(try await session.deviceSessions.heldElsewhere(["e"], than: first).isEmpty)
                    steps.locked.withLock { $0 = true }
                    // Time for the takeover to run ahead of the write, were it not held back.
                    try await Task.sleep(for: .milliseconds(500))
                    try await session.mqttSessions.save(clientID: "e", record: late, now: Date())
                    steps.written.withLock { $0 = true }
                }
                #expect(try await takeover.value, "the takeover was noted only after node 1's write was in")
                #expect(try await holders.holder(deviceID: "e")?.nodeID == other)
                #expect(try await two.storedSession(clientIdentifier: "e")?.subscriptions.map(\.filter) == ["late/#"])
            } catch {
                await shutdown()
                throw error
            }
            await shutdown()
        }
    }

    @Test("a persistent session whose time ran out while no node held it leaves the store; one still in time, one without expiry, and one whose device a live node holds stay")
    func storedSessionsExpire() async throws {
        try await TestDatabase.postgres.withHub { hub in
            let store = StoreMQTTSessions(hub: hub)
            #expect(store.isShared)
            let now = Date()
            func record(_ id: String, expiry: UInt32, disconnectedAgo: TimeInterval?) throws -> MQTTSessionRecord {
                var record = try JSONDecoder().decode(
                    MQTTSessionRecord.self,
                    from: Data(#"{"clientIdentifier": "\#(id)", "principal": "\#(id)", "expiryInterval": \#(expiry), "subscriptions": [], "messages": []}"#.utf8)
                )
                record.disconnectedAt = disconnectedAgo.map { now.addingTimeInterval(-$0) }
                return record
            }
            try await store.save([
                .saveSession(try record("gone", expiry: 60, disconnectedAgo: 120)),
                .saveSession(try record("in-time", expiry: 3_600, disconnectedAgo: 120)),
                .saveSession(try record("forever", expiry: .max, disconnectedAgo: 1_000_000)),
                // Their node died under them: no end noted, their last change two minutes old.
                .saveSession(try record("orphan", expiry: 60, disconnectedAgo: nil)),
                .saveSession(try record("held", expiry: 60, disconnectedAgo: nil)),
            ])
            let message = try JSONDecoder().decode(
                MQTTSessionRecord.Message.self,
                from: Data(#"{"sequence": 1, "topic": "devices/gone/down", "payload": "", "qos": 1, "retain": false, "properties": "", "subscriptionIdentifiers": []}"#.utf8)
            )
            try await store.save([.addMessage(clientIdentifier: "gone", message)])
            try await hub.store.session.sql.raw(
                "UPDATE mqtt_sessions SET updated_at = \(bind: Int(now.addingTimeInterval(-120).timeIntervalSince1970 * 1000)) WHERE client_id IN ('orphan', 'held')"
            ).run()
            // "held" is connected to a node that beats; "orphan"'s node is silent.
            try await hub.store.session.cluster.heartbeat(nodeID: "alive", startedAt: now, now: now)
            try await hub.store.session.cluster.heartbeat(nodeID: "dead", startedAt: now, now: now.addingTimeInterval(-600))
            _ = try await hub.store.session.deviceSessions.connected(deviceID: "held", nodeID: "alive", now: now)
            _ = try await hub.store.session.deviceSessions.connected(deviceID: "orphan", nodeID: "dead", now: now.addingTimeInterval(-600))

            #expect(try await hub.store.session.mqttSessions.deleteExpired(now: now, aliveSince: now.addingTimeInterval(-15)) == 2)
            #expect(try await store.storedSession(clientIdentifier: "gone") == nil)
            #expect(try await store.storedSession(clientIdentifier: "orphan") == nil)
            #expect(try await hub.store.session.sql.raw("SELECT client_id FROM mqtt_session_messages").all().isEmpty, "its messages went with it")
            #expect(Set(try await store.storedSessions().map(\.clientIdentifier)) == ["in-time", "forever", "held"])
        }
    }
}
