import Foundation
import Store

/// What must reach a device held by another node: which node holds each device's connection (the
/// newest connection wins), and mail to that node for a downlink, a revocation or a takeover.
/// Nodes read their mail several times a second; one process alone (no ``ClusterMembership``
/// running) keeps no registry and sends no mail.
public struct ClusterRouting: Sendable {
    let hub: Hub

    /// The device's connection was accepted on this node: it holds the device now, and the node
    /// that held it closes its connection.
    func deviceConnected(_ deviceID: String) async {
        guard let me = self.hub.clusterNode.withLock({ $0 }) else { return }
        do {
            let (epoch, previous) = try await self.hub.store.session.deviceSessions.connected(deviceID: deviceID, nodeID: me, now: self.hub.now())
            self.hub.localEpochs.withLock { $0[deviceID] = epoch }
            if let previous {
                try await self.hub.store.session.deviceSessions.post(.takeover, deviceID: deviceID, epoch: epoch, to: previous, now: self.hub.now())
            }
        } catch {
            self.hub.logger.warning("cannot note which node holds a device", metadata: [LogKey.deviceID: "\(deviceID)", "error": "\(error)"])
        }
    }

    /// Tells the node holding the device, if another, what it must do.
    func tell(_ deviceID: String, _ kind: NodeMail.Kind) async {
        guard let me = self.hub.clusterNode.withLock({ $0 }) else { return }
        do {
            guard let holder = try await self.hub.store.session.deviceSessions.holder(deviceID: deviceID), holder.nodeID != me else { return }
            try await self.hub.store.session.deviceSessions.post(kind, deviceID: deviceID, epoch: holder.epoch, to: holder.nodeID, now: self.hub.now())
        } catch {
            self.hub.logger.warning(
                "cannot tell the node holding a device", metadata: [LogKey.deviceID: "\(deviceID)", "conduit.kind": "\(kind.rawValue)", "error": "\(error)"]
            )
        }
    }

    /// Does what another node asked of this one.
    func handle(_ mail: NodeMail) async {
        switch mail.kind {
        case .downlink:
            await self.hub.downlinks.sendPending(to: mail.deviceID)
        case .revoke:
            self.hub.broker?.disconnectDevice(mail.deviceID)
        case .takeover:
            let mine = self.hub.localEpochs.withLock { $0[mail.deviceID] ?? 0 }
            guard mine < mail.epoch else { return }
            if self.hub.broker?.handOver(mail.deviceID) == true {
                self.hub.logger.info("device connected to another node: handed over", metadata: [LogKey.deviceID: "\(mail.deviceID)"])
            }
        }
    }
}
