import Synchronization

/// Which shards of the uplink outbox this node forwards. A device's messages belong to one shard,
/// by its id, so that one node at a time publishes them and their order holds across nodes.
///
/// Until ``ClusterMembership`` runs, the node holds every shard: one process alone (the CLI, a
/// benchmark, a test) forwards everything. Once it runs, the node holds the shards whose leases it
/// has, each until a little before its lease lapses.
public final class UplinkShards: Sendable {
    /// Shards of the outbox: enough to spread over tens of nodes, few enough to lease each.
    public static let count = 64

    private struct State {
        var everything = true
        var heldUntil: [Int: ContinuousClock.Instant] = [:]
        /// Device queues being forwarded, per shard: a shard is given up only once none runs.
        var running: [Int: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// The shard of a device: FNV-1a of its id, the same on every node and every version.
    public static func shard(of deviceID: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in deviceID.utf8 {
            hash ^= UInt32(byte)
            hash = hash &* 16_777_619
        }
        return Int(hash % UInt32(Self.count))
    }

    /// True when this node forwards the device's messages now.
    public func holds(deviceID: String) -> Bool {
        let shard = Self.shard(of: deviceID)
        let now = ContinuousClock.now
        return self.state.withLock { state in
            state.everything || (state.heldUntil[shard].map { $0 > now } ?? false)
        }
    }

    /// A queue of the device starts: noted until ``ended(deviceID:)``.
    func began(deviceID: String) {
        self.state.withLock { $0.running[Self.shard(of: deviceID), default: 0] += 1 }
    }

    func ended(deviceID: String) {
        self.state.withLock { state in
            let shard = Self.shard(of: deviceID)
            state.running[shard, default: 1] -= 1
            if state.running[shard] == 0 { state.running[shard] = nil }
        }
    }

    /// From now on, only shards with leases: set by the membership before its first claim.
    func leasesOnly() {
        self.state.withLock { $0.everything = false }
    }

    /// Back to every shard, as one process alone.
    func everything() {
        self.state.withLock { state in
            state.everything = true
            state.heldUntil = [:]
        }
    }

    /// The shards held now, each until then.
    func hold(_ shards: [Int: ContinuousClock.Instant]) {
        self.state.withLock { $0.heldUntil = shards }
    }

    /// Stops starting queues of the shard; true once none of its queues runs any more.
    func letGo(_ shard: Int) -> Bool {
        self.state.withLock { state in
            state.heldUntil[shard] = nil
            return state.running[shard] == nil
        }
    }

    /// The shards held now.
    public var held: Set<Int> {
        let now = ContinuousClock.now
        return self.state.withLock { state in
            state.everything ? Set(0..<Self.count) : Set(state.heldUntil.filter { $0.value > now }.keys)
        }
    }
}
