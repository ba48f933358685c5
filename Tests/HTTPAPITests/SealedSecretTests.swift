import ConduitTesting
import Crypto
import Foundation
import Hub
import Store
import Testing

/// Secrets at rest are bound to their rows: someone who can write the database but holds no
/// master key cannot make one tenant's integration use another's AWS key.
@Suite("Sealed secrets stay with their rows")
struct SealedSecretTests {
    @Test("tenant A's sealed AWS key copied into tenant B's integration does not open there", arguments: TestDatabase.allCases)
    func copiedToAnotherRow(database: TestDatabase) async throws {
        let key = SymmetricKey(size: .bits256)
        try await database.withStore { store in
            let hub = Hub(store: store, logger: .quiet, secrets: SecretBox(key: key), aws: try MotoPeer.environment())
            let a = Principal(tenantID: try await hub.access.ensureDefaultTenant().id, role: .admin, actor: "test")
            let b = Principal(tenantID: try await hub.access.createTenant(name: "b").id, role: .admin, actor: "test")
            func create(_ name: String, by principal: Principal) async throws -> Integration {
                var draft = IntegrationDraft()
                draft.name = name
                draft.region = "us-east-1"
                draft.endpointURL = .some(try MotoPeer.url().absoluteString)
                draft.credentials = .init(accessKeyID: "AKIACONDUITSEALED\(name.uppercased())", secretAccessKey: "secret-of-\(name)")
                draft.policy = .init(perThing: true)
                draft.bind = .init(labels: ["fleet"])
                return try await hub.integrations.create(draft, by: principal)
            }
            let mine = try await create("a", by: a)
            let theirs = try await create("b", by: b)
            #expect(mine.credentials.sealedSecretAccessKey?.hasPrefix("v2:") == true)
            #expect(try await hub.integrations.reconcile(theirs.id, by: b).isEmpty)

            // The attacker writes A's sealed key into B's row (and B's updatedAt, so it is read anew).
            var tampered = try #require(try await store.session.integrations.get(id: theirs.id))
            tampered.credentials.sealedSecretAccessKey = mine.credentials.sealedSecretAccessKey
            tampered.updatedAt = tampered.updatedAt.addingTimeInterval(1)
            try await store.session.integrations.update(tampered)
            let error = await #expect(throws: HubError.self) { try await hub.integrations.reconcile(theirs.id, by: b) }
            #expect(error?.code == "unreadable_secret", "\(String(describing: error))")
            // Where it belongs, it still opens.
            #expect(try await hub.integrations.reconcile(mine.id, by: a).isEmpty)

            // A value sealed before rows were bound (v1) is sealed again, bound, at start.
            var legacy = try #require(try await store.session.integrations.get(id: mine.id))
            legacy.credentials.sealedSecretAccessKey = "v1:" + (try AES.GCM.seal(Data("secret-of-a".utf8), using: key).combined!).base64EncodedString()
            legacy.updatedAt = legacy.updatedAt.addingTimeInterval(1)
            try await store.session.integrations.update(legacy)
            #expect(try await hub.sealLegacySecretsAgain() == 1)
            let resealed = try #require(try await store.session.integrations.get(id: mine.id)?.credentials.sealedSecretAccessKey)
            #expect(resealed.hasPrefix("v2:"))
            #expect(try SecretBox(key: key).open(resealed, for: .awsSecretKey(tenantID: a.tenantID, integrationID: mine.id)) == "secret-of-a")
            #expect(try await hub.sealLegacySecretsAgain() == 0)
        }
    }
}
