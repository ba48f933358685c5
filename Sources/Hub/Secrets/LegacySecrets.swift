import Foundation
import Store

extension Hub {
    /// Seals again, bound to their rows, the values sealed before values were bound (`v1:`):
    /// integrations' secret keys and gateway keys, and things' private keys. `serve` runs it at
    /// start; a value that does not open is left as it is (its use reports it). Returns how many
    /// were sealed again.
    @discardableResult
    public func sealLegacySecretsAgain() async throws -> Int {
        var count = 0
        for status in [IntegrationStatus.active, .deleting] {
            for integration in try await self.store.session.integrations.list(status: status) {
                var credentials = integration.credentials
                if let sealed = credentials.sealedSecretAccessKey, SecretBox.isLegacy(sealed) {
                    let binding = SecretBinding.awsSecretKey(tenantID: integration.tenantID, integrationID: integration.id)
                    if let plain = try? self.secrets.open(sealed, for: binding) {
                        credentials.sealedSecretAccessKey = try self.secrets.seal(plain, for: binding)
                    }
                }
                if let sealed = credentials.sealedGatewayPrivateKey, SecretBox.isLegacy(sealed) {
                    let binding = SecretBinding.gatewayKey(tenantID: integration.tenantID, integrationID: integration.id)
                    if let plain = try? self.secrets.open(sealed, for: binding) {
                        credentials.sealedGatewayPrivateKey = try self.secrets.seal(plain, for: binding)
                    }
                }
                guard credentials != integration.credentials else { continue }
                let resealed = credentials
                try await self.store.transaction { session in
                    // Only if nobody changed it meanwhile; a change seals anew anyway.
                    guard var current = try await session.integrations.get(id: integration.id, forUpdate: true),
                        current.credentials == integration.credentials
                    else { return }
                    current.credentials = resealed
                    try await session.integrations.update(current)
                }
                count += 1
            }
        }
        for job in try await self.store.session.awsThings.withLegacySealedKeys() {
            guard let sealed = job.sealedPrivateKey, let plain = try? self.secrets.open(sealed, for: .thingKey(job)) else { continue }
            try await self.store.session.awsThings.replaceSealedKey(
                integrationID: job.integrationID, deviceID: job.deviceID, expected: sealed, with: try self.secrets.seal(plain, for: .thingKey(job))
            )
            count += 1
        }
        return count
    }
}
