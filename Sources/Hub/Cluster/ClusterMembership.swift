import Foundation
import Logging
import Store

/// This node's place among the nodes on one database: a heartbeat in the store, and its share
/// of the uplink outbox's shards, held by lease.
///
/// Each node takes about an equal share (the shards over the nodes alive), lets go of what is
/// over its share once the queues it is forwarding of those shards have ended (so that no
/// device's messages are published by two nodes at once), and takes free or lapsed shards up to
/// its share. A node that dies stops renewing: its leases lapse and the others take its shards.
public final class ClusterMembership: Sendable {
    public struct Configuration: Sendable {
        /// This node's name: the same across its restarts.
        public var nodeID: String
        /// Between heartbeats and lease renewals.
        public var heartbeatInterval: Duration
        /// How long a lease lasts unrenewed, and how long a silent node counts as alive.
        public var leaseDuration: Duration
        /// The longest between reads of the mail other nodes left this one (downlinks,
        /// revocations and takeovers of the devices it holds); a notification wakes it at once.
        public var mailInterval: Duration

        public init(
            nodeID: String, heartbeatInterval: Duration = .seconds(5), leaseDuration: Duration = .seconds(15), mailInterval: Duration = .seconds(1)
        ) {
            self.nodeID = nodeID
            self.heartbeatInterval = heartbeatInterval
            self.leaseDuration = leaseDuration
            self.mailInterval = mailInterval
        }
    }

    let hub: Hub
    let configuration: Configuration
    let startedAt: Date

    public init(hub: Hub, configuration: Configuration) {
        self.hub = hub
        self.configuration = configuration
        self.startedAt = hub.now()
    }

    /// Beats, keeps this node's shards and reads its mail until cancelled; then gives the shards
    /// up and leaves.
    public func run() async {
        // One SQLite file has one node: no other node to hold devices or to leave mail.
        let shared = self.hub.store.dialect == .postgres
        if shared { self.hub.clusterNode.withLock { $0 = self.configuration.nodeID } }
        await withDiscardingTaskGroup { group in
            if shared { group.addTask { await self.readMail() } }
            await self.beat()
            group.cancelAll()
        }
    }

    /// What other nodes ask of this one: read when a notification says there is some, and every
    /// ``Configuration/mailInterval`` besides. A missed notification loses nothing: the mail
    /// waits in the store.
    private func readMail() async {
        let sessions = self.hub.store.session.deviceSessions
        let routing = self.hub.clusterRouting
        let bell = Doorbell()
        await withDiscardingTaskGroup { group in
            group.addTask { [store = self.hub.store, channel = ClusterRouting.mailChannel(self.configuration.nodeID)] in
                await store.listen(channel) { _ in bell.ring() }
            }
            while !Task.isCancelled {
                let generation = bell.generation
                do {
                    for mail in try await sessions.take(for: self.configuration.nodeID, limit: 500) {
                        await routing.handle(mail)
                    }
                } catch {
                    self.hub.logger.notice("cannot read this node's mail", metadata: ["error": "\(error)"])
                }
                await bell.wait(since: generation, timeout: self.configuration.mailInterval)
            }
            group.cancelAll()
        }
    }

    private func beat() async {
        let shards = self.hub.uplinkShards
        let cluster = self.hub.store.session.cluster
        let me = self.configuration.nodeID
        let lease = Double(self.configuration.leaseDuration.components.seconds) + Double(self.configuration.leaseDuration.components.attoseconds) / 1e18
        shards.leasesOnly()
        var held: Set<Int> = []
        var lettingGo: Set<Int> = []
        var lastSweep: ContinuousClock.Instant?
        while !Task.isCancelled {
            do {
                let now = self.hub.now()
                let until = now.addingTimeInterval(lease)
                // Trusted in memory for one interval less than the lease: renewed before it lapses.
                let trustedUntil = ContinuousClock.now + self.configuration.leaseDuration - self.configuration.heartbeatInterval
                try await cluster.heartbeat(nodeID: me, startedAt: self.startedAt, now: now)
                let alive = try await cluster.nodes().filter { $0.heartbeatAt >= now.addingTimeInterval(-lease) || $0.id == me }
                let share = (UplinkShards.count + alive.count - 1) / max(1, alive.count)
                held = try await cluster.renewShards(owner: me, now: now, until: until)
                if held.count > share {
                    lettingGo.formUnion(held.sorted().suffix(held.count - share))
                }
                lettingGo.formIntersection(held)
                let released = lettingGo.filter { shards.letGo($0) }
                if !released.isEmpty {
                    try await cluster.releaseShards(released.sorted(), owner: me)
                    lettingGo.subtract(released)
                    held.subtract(released)
                }
                var keep = held.subtracting(lettingGo)
                if keep.count < share && lettingGo.isEmpty {
                    let leases = try await cluster.shardLeases()
                    // Starting where this node's name points, so that nodes starting together
                    // do not all race for the same shards.
                    let start = UplinkShards.shard(of: me)
                    for offset in 0..<UplinkShards.count where keep.count < share {
                        let shard = (start + offset) % UplinkShards.count
                        guard !keep.contains(shard), leases[shard].map({ $0.until < now }) ?? true else { continue }
                        if try await cluster.acquireShard(shard, owner: me, now: now, until: until) {
                            keep.insert(shard)
                            held.insert(shard)
                        }
                    }
                }
                shards.hold(Dictionary(uniqueKeysWithValues: keep.map { ($0, trustedUntil) }))
                self.hub.uplinkDoorbell.ring()
                // A node silent for a day is gone for good.
                try await cluster.forget(nodeID: nil, silentSince: now.addingTimeInterval(-86_400))
                try await self.hub.store.session.deviceSessions.dropMail(except: try await cluster.nodes().map(\.id))
                // Sessions live in the store between connections: their expiry is kept there, by
                // whichever node looks (once a minute each).
                if lastSweep.map({ ContinuousClock.now - $0 >= .seconds(60) }) ?? true {
                    lastSweep = .now
                    let expired = try await self.hub.store.session.mqttSessions.deleteExpired(now: now, aliveSince: now.addingTimeInterval(-lease))
                    if expired > 0 { self.hub.logger.info("persistent sessions expired", metadata: ["conduit.sessions": "\(expired)"]) }
                }
            } catch {
                // What is held stays held until its time in memory runs out.
                self.hub.logger.notice("cannot renew this node's place in the cluster", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: self.configuration.heartbeatInterval)
        }
        // A clean stop: no more forwarding here; the shards and the node's row go at once, from a
        // task of its own (this one is cancelled), so that the others take over without waiting.
        shards.hold([:])
        let toRelease = held
        await Task {
            try? await cluster.releaseShards(toRelease.sorted(), owner: me)
            try? await cluster.forget(nodeID: me, silentSince: .distantPast)
        }.value
    }
}
