import Foundation
import Store

/// What must reach a device held by another node: which node holds each device's connection (the
/// newest connection wins), and mail to that node for a downlink, a revocation, a takeover or
/// its shadow's messages (and to every node when a device is deleted: what it retained goes).
/// A node is woken by a notification (PostgreSQL's NOTIFY, ids only) and reads its mail every
/// second besides, since a missed notification is gone for good; one process alone (no ``ClusterMembership``
/// running) keeps no registry and sends no mail.
public struct ClusterRouting: Sendable {
    let hub: Hub

    /// The device's connection was accepted on this node: it holds the device now, and the node
    /// that held it closes its connection. Throws when the store cannot note it: a node the
    /// others do not know holds a device would get none of its mail, and could write none of its
    /// session (``StoreMQTTSessions``), so the connection is refused instead.
    func deviceConnected(_ deviceID: String) async throws {
        guard let me = self.hub.clusterNode.withLock({ $0 }) else { return }
        let (epoch, previous) = try await self.hub.store.session.deviceSessions.connected(deviceID: deviceID, nodeID: me, now: self.hub.now())
        self.hub.localEpochs.withLock { $0[deviceID] = epoch }
        guard let previous else { return }
        do {
            try await self.post(.takeover, deviceID: deviceID, epoch: epoch, to: previous)
        } catch {
            // Its writes of the session are fenced off already; its connection ends by keep-alive.
            self.hub.logger.warning(
                "cannot tell the node that held a device to close its connection", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"]
            )
        }
    }

    /// Where a device is, as far as telling it something goes.
    enum Told {
        /// Another node holds it, and has mail.
        case elsewhere
        /// No other node holds it: this one, or none (one process alone, or never connected).
        case notElsewhere
        /// The store could not say, or take the mail (logged).
        case failed
    }

    /// Tells the node holding the device, if another, what it must do.
    @discardableResult
    func tell(_ deviceID: String, _ kind: NodeMail.Kind, body: String? = nil) async -> Told {
        guard let me = self.hub.clusterNode.withLock({ $0 }) else { return .notElsewhere }
        do {
            guard let holder = try await self.hub.store.session.deviceSessions.holder(deviceID: deviceID), holder.nodeID != me else {
                return .notElsewhere
            }
            try await self.post(kind, deviceID: deviceID, epoch: holder.epoch, body: body, to: holder.nodeID)
            return .elsewhere
        } catch {
            self.hub.logger.warning(
                "cannot tell the node holding a device", metadata: [LogKey.deviceID: "\(deviceID)", "conduit.kind": "\(kind.rawValue)", "error": "\(error)"]
            )
            return .failed
        }
    }

    /// Tells every other node (what a device left may be on any of them, not only its holder's),
    /// with the device's latest connection's epoch: a node holding a newer connection (a new
    /// device of the same id, connected since) leaves it alone.
    func tellEveryNode(_ deviceID: String, _ kind: NodeMail.Kind) async {
        guard let me = self.hub.clusterNode.withLock({ $0 }) else { return }
        do {
            let epoch = try await self.hub.store.session.deviceSessions.holder(deviceID: deviceID)?.epoch ?? 0
            for node in try await self.hub.store.session.cluster.nodes() where node.id != me {
                try await self.post(kind, deviceID: deviceID, epoch: epoch, to: node.id)
            }
        } catch {
            self.hub.logger.warning(
                "cannot tell the other nodes of a device", metadata: [LogKey.deviceID: "\(deviceID)", "conduit.kind": "\(kind.rawValue)", "error": "\(error)"]
            )
        }
    }

    /// The channel a node listens on for news of its mail: named by a hash of its id, so that
    /// any id makes a valid channel name.
    static func mailChannel(_ nodeID: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in nodeID.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return "conduit_mail_" + String(hash, radix: 16)
    }

    /// Leaves mail for a node and wakes it (the notification carries ids only; a missed one is
    /// made up by the node's next read of its mail).
    private func post(_ kind: NodeMail.Kind, deviceID: String, epoch: Int, body: String? = nil, to nodeID: String) async throws {
        try await self.hub.store.session.deviceSessions.post(kind, deviceID: deviceID, epoch: epoch, body: body, to: nodeID, now: self.hub.now())
        try? await self.hub.store.notify(Self.mailChannel(nodeID), payload: "\(kind.rawValue):\(deviceID)")
    }

    /// Does what another node asked of this one.
    func handle(_ mail: NodeMail) async {
        switch mail.kind {
        case .downlink:
            await self.hub.downlinks.sendPending(to: mail.deviceID)
        case .revoke:
            self.hub.broker?.disconnectDevice(mail.deviceID)
        case .forget:
            // A connection newer than the forgotten device's is a new device of its id: it stays.
            if self.hub.localEpochs.withLock({ $0[mail.deviceID] ?? 0 }) <= mail.epoch {
                self.hub.broker?.disconnectDevice(mail.deviceID)
            }
            self.hub.broker?.forgetRetainedMessages(ofDevice: mail.deviceID)
        case .shadow:
            self.hub.deviceShadows.deliver(mailBody: mail.body, to: mail.deviceID)
        case .takeover:
            let mine = self.hub.localEpochs.withLock { $0[mail.deviceID] ?? 0 }
            guard mine < mail.epoch else { return }
            if self.hub.broker?.handOver(mail.deviceID) == true {
                self.hub.logger.info("device connected to another node: handed over", metadata: [LogKey.deviceID: "\(mail.deviceID)"])
            }
        }
    }
}
