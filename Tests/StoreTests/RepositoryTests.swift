import ConduitTesting
import Foundation
import SQLKit
import Store
import Testing

@Suite("Repositories")
struct RepositoryTests {
    static let now = Date(timeIntervalSince1970: 1_800_000_000.123)

    static func device(_ id: String, tenant: String, status: DeviceStatus = .pending, labels: [String] = []) -> Device {
        Device(
            id: id, tenantID: tenant, name: "Device \(id)", status: status, labels: labels, attributes: ["floor": "2"],
            secretHash: "sha256$salt$hash", createdAt: now, updatedAt: now, statusChangedAt: now
        )
    }

    static func tenants(_ session: StoreSession) async throws -> (Tenant, Tenant) {
        let a = Tenant(id: "tenant-a", name: "a", createdAt: now)
        let b = Tenant(id: "tenant-b", name: "b", createdAt: now)
        try await session.tenants.insert(a)
        try await session.tenants.insert(b)
        return (a, b)
    }

    @Test("tenant names are unique and insertIfAbsent keeps the first", arguments: TestDatabase.allCases)
    func tenants(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, _) = try await Self.tenants(store.session)
            await #expect(throws: StoreError.conflict("tenant 'a' exists already")) {
                try await store.session.tenants.insert(Tenant(id: "other", name: "a", createdAt: Self.now))
            }
            let kept = try await store.session.tenants.insertIfAbsent(Tenant(id: "other", name: "a", createdAt: Self.now))
            #expect(kept.tenant == a)
            #expect(!kept.inserted)
            let fresh = try await store.session.tenants.insertIfAbsent(Tenant(id: "c", name: "c", createdAt: Self.now))
            #expect(fresh.inserted)
            #expect(try await store.session.tenants.list().map(\.name) == ["a", "b", "c"])
        }
    }

    @Test("a device round-trips every field and is invisible to other tenants", arguments: TestDatabase.allCases)
    func deviceRoundTrip(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, b) = try await Self.tenants(store.session)
            let device = Self.device("dev-1", tenant: a.id, labels: ["lab", "roof"])
            try await store.session.devices.insert(device)
            #expect(try await store.session.devices.get(tenantID: a.id, id: "dev-1") == device.withStorePrecision)
            #expect(try await store.session.devices.get(tenantID: b.id, id: "dev-1") == nil)
            #expect(try await store.session.devices.list(tenantID: b.id, limit: 10).isEmpty)
            #expect(try await store.session.devices.delete(tenantID: b.id, id: "dev-1") == false)
            #expect(try await store.session.devices.get(id: "dev-1")?.tenantID == a.id)
        }
    }

    @Test("device ids are unique across tenants", arguments: TestDatabase.allCases)
    func deviceIDsAreGlobal(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, b) = try await Self.tenants(store.session)
            try await store.session.devices.insert(Self.device("dev-1", tenant: a.id))
            await #expect(throws: StoreError.conflict("device id 'dev-1' is in use")) {
                try await store.session.devices.insert(Self.device("dev-1", tenant: b.id))
            }
        }
    }

    @Test("lists filter by status and label and page by id", arguments: TestDatabase.allCases)
    func listing(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, _) = try await Self.tenants(store.session)
            for index in 0..<6 {
                try await store.session.devices.insert(
                    Self.device(
                        "dev-\(index)", tenant: a.id, status: index.isMultiple(of: 2) ? .accepted : .pending,
                        labels: index < 3 ? ["lab"] : ["roof"]
                    )
                )
            }
            let devices = store.session.devices
            #expect(try await devices.list(tenantID: a.id, limit: 3).map(\.id) == ["dev-0", "dev-1", "dev-2"])
            #expect(try await devices.list(tenantID: a.id, after: "dev-2", limit: 3).map(\.id) == ["dev-3", "dev-4", "dev-5"])
            #expect(try await devices.list(tenantID: a.id, filter: .init(status: .accepted), limit: 10).map(\.id) == ["dev-0", "dev-2", "dev-4"])
            #expect(try await devices.list(tenantID: a.id, filter: .init(label: "roof"), limit: 10).map(\.id) == ["dev-3", "dev-4", "dev-5"])
            #expect(
                try await devices.list(tenantID: a.id, filter: .init(status: .accepted, label: "lab"), limit: 10).map(\.id)
                    == ["dev-0", "dev-2"]
            )
            #expect(try await devices.countByStatus(tenantID: a.id) == [.accepted: 3, .pending: 3])
        }
    }

    @Test("an update replaces the labels the label filter sees", arguments: TestDatabase.allCases)
    func updateReplacesLabels(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, _) = try await Self.tenants(store.session)
            var device = Self.device("dev-1", tenant: a.id, labels: ["lab"])
            try await store.session.devices.insert(device)
            device.labels = ["roof"]
            device.status = .accepted
            try await store.session.devices.update(device)
            #expect(try await store.session.devices.list(tenantID: a.id, filter: .init(label: "lab"), limit: 10).isEmpty)
            #expect(try await store.session.devices.list(tenantID: a.id, filter: .init(label: "roof"), limit: 10).map(\.status) == [.accepted])
            #expect(try await store.session.devices.delete(tenantID: a.id, id: "dev-1"))
            let labels = try await store.session.sql.raw("SELECT COUNT(*) AS n FROM device_labels").first()
            #expect(try labels?.decode(column: "n", as: Int.self) == 0)
        }
    }

    @Test("a transaction that throws leaves nothing written", arguments: TestDatabase.allCases)
    func transactionRollsBack(database: TestDatabase) async throws {
        struct Boom: Error {}
        try await database.withStore { store in
            let (a, _) = try await Self.tenants(store.session)
            await #expect(throws: Boom.self) {
                try await store.transaction { session in
                    try await session.devices.insert(Self.device("dev-1", tenant: a.id, labels: ["lab"]))
                    try await session.events.append(
                        tenantID: a.id, type: "device.created", deviceID: "dev-1", actor: "test", data: "{}", at: Self.now
                    )
                    throw Boom()
                }
            }
            #expect(try await store.session.devices.get(tenantID: a.id, id: "dev-1") == nil)
            #expect(try await store.session.events.list(tenantID: a.id, limit: 10).isEmpty)
        }
    }

    @Test("events list newest first, filtered and paged, per tenant", arguments: TestDatabase.allCases)
    func events(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, b) = try await Self.tenants(store.session)
            let events = store.session.events
            for index in 0..<5 {
                try await events.append(
                    tenantID: a.id, type: index == 4 ? "device.accepted" : "device.created", deviceID: "dev-\(index % 2)",
                    actor: "test", data: #"{"n":\#(index)}"#, at: Self.now
                )
            }
            try await events.append(tenantID: b.id, type: "device.created", deviceID: "dev-0", actor: "test", data: "{}", at: Self.now)
            let all = try await events.list(tenantID: a.id, limit: 10)
            #expect(all.map(\.data) == (0..<5).reversed().map { #"{"n":\#($0)}"# })
            #expect(try await events.list(tenantID: a.id, filter: .init(deviceID: "dev-1"), limit: 10).count == 2)
            #expect(try await events.list(tenantID: a.id, filter: .init(type: "device.accepted"), limit: 10).count == 1)
            let older = try await events.list(tenantID: a.id, before: all[1].sequence, limit: 10)
            #expect(older.map(\.sequence) == Array(all[2...]).map(\.sequence))
            #expect(try await events.list(tenantID: b.id, limit: 10).count == 1)
        }
    }

    @Test("tokens are found by hash only, and touch records use", arguments: TestDatabase.allCases)
    func tokens(database: TestDatabase) async throws {
        try await database.withStore { store in
            let (a, _) = try await Self.tenants(store.session)
            let token = APIToken(
                id: "tok_1", tenantID: a.id, name: "ci", role: .operator, tokenHash: "abc", hint: "cdt_1234", createdAt: Self.now
            )
            try await store.session.tokens.insert(token)
            #expect(try await store.session.tokens.withHash("abc")?.role == .operator)
            #expect(try await store.session.tokens.withHash("abd") == nil)
            try await store.session.tokens.touch(id: "tok_1", at: Self.now.addingTimeInterval(120))
            #expect(try await store.session.tokens.get(tenantID: a.id, id: "tok_1")?.lastUsedAt != nil)
            #expect(try await store.session.tokens.count() == 1)
            #expect(try await store.session.tokens.delete(tenantID: a.id, id: "tok_1"))
            #expect(try await store.session.tokens.withHash("abc") == nil)
        }
    }
}

extension Device {
    var withStorePrecision: Device {
        var copy = self
        copy.createdAt = copy.createdAt.truncatedToStorePrecision
        copy.updatedAt = copy.updatedAt.truncatedToStorePrecision
        copy.statusChangedAt = copy.statusChangedAt.truncatedToStorePrecision
        return copy
    }
}

@Suite("Message history")
struct MessageHistoryTests {
    @Test("a device's history keeps its newest messages only, per device", arguments: TestDatabase.allCases)
    func bounded(database: TestDatabase) async throws {
        try await database.withStore { store in
            let tenant = Tenant(id: "t", name: "t", createdAt: RepositoryTests.now)
            try await store.session.tenants.insert(tenant)
            for index in 0..<7 {
                for device in ["d1", "d2"] {
                    try await store.session.messages.append(
                        DeviceMessage(
                            tenantID: "t", deviceID: device, topic: "devices/\(device)/up", payload: Data([UInt8(index), 0, 255]),
                            qos: 1, retain: false, receivedAt: RepositoryTests.now
                        ),
                        keep: 3
                    )
                }
            }
            let d1 = try await store.session.messages.list(tenantID: "t", deviceID: "d1", limit: 10)
            #expect(d1.map { $0.payload.first } == [6, 5, 4])
            #expect(d1.first?.payload == Data([6, 0, 255]))
            #expect(try await store.session.messages.list(tenantID: "t", deviceID: "d2", limit: 10).count == 3)
            #expect(try await store.session.messages.list(tenantID: "other", deviceID: "d1", limit: 10).isEmpty)
            let older = try await store.session.messages.list(tenantID: "t", deviceID: "d1", before: d1[0].sequence, limit: 10)
            #expect(older.map { $0.payload.first } == [5, 4])
        }
    }
}

@Suite("Downlink gateway leases")
struct GatewayLeaseTests {
    @Test("one node holds a gateway at a time; it renews its own lease, another takes it only once lapsed or released", arguments: TestDatabase.allCases)
    func leases(database: TestDatabase) async throws {
        try await database.withStore { store in
            let now = RepositoryTests.now
            try await store.session.tenants.insert(Tenant(id: "t", name: "t", createdAt: now))
            try await store.session.integrations.insert(
                Integration(
                    id: "int_1", tenantID: "t", name: "prod", type: "aws-iot-core",
                    settings: IntegrationSettings(
                        region: "eu-west-1", endpointURL: nil, policyName: nil, perThingPolicy: true, thingGroup: nil, thingAttributes: [],
                        uplinkTopic: "up/{deviceId}", payloadFormat: "raw", downlinkPrefix: "down", binding: IntegrationBinding(all: true)
                    ),
                    credentials: IntegrationCredentials(kind: .default), active: true, status: .active, dataEndpoint: nil, createdGroups: [],
                    createdAt: now, updatedAt: now
                )
            )
            let leases = store.session.gatewayLeases
            let later = now.addingTimeInterval(30)
            #expect(try await leases.acquire(integrationID: "int_1", owner: "a", now: now, until: later))
            #expect(try await !leases.acquire(integrationID: "int_1", owner: "b", now: now.addingTimeInterval(10), until: later.addingTimeInterval(10)))
            #expect(try await leases.acquire(integrationID: "int_1", owner: "a", now: now.addingTimeInterval(10), until: later.addingTimeInterval(10)))
            #expect(try await leases.holder(integrationID: "int_1")?.owner == "a")
            // a stops renewing: once the lease lapses, b takes it, and a has lost it.
            #expect(try await leases.acquire(integrationID: "int_1", owner: "b", now: later.addingTimeInterval(11), until: later.addingTimeInterval(41)))
            #expect(try await !leases.acquire(integrationID: "int_1", owner: "a", now: later.addingTimeInterval(12), until: later.addingTimeInterval(42)))
            // Released by its holder (not by another), it is free at once.
            try await leases.release(integrationID: "int_1", owner: "a")
            #expect(try await leases.holder(integrationID: "int_1")?.owner == "b")
            try await leases.release(integrationID: "int_1", owner: "b")
            #expect(try await leases.acquire(integrationID: "int_1", owner: "a", now: later.addingTimeInterval(13), until: later.addingTimeInterval(43)))
            // The lease goes with its integration.
            try await store.session.integrations.delete(id: "int_1")
            #expect(try await leases.holder(integrationID: "int_1") == nil)
        }
    }
}

@Suite("Persistent MQTT sessions in the store")
struct MQTTSessionRepositoryTests {
    @Test("sessions and their messages are saved, changed, read back in order and removed", arguments: TestDatabase.allCases)
    func roundTrip(database: TestDatabase) async throws {
        try await database.withStore { store in
            let now = RepositoryTests.now
            try await store.transaction { session in
                let sessions = session.mqttSessions
                try await sessions.save(clientID: "b", record: "{\"v\":1}", now: now)
                try await sessions.save(clientID: "a", record: "{\"v\":1}", now: now)
                try await sessions.save(clientID: "a", record: "{\"v\":2}", now: now)
                for sequence in [3, 1, 2] { try await sessions.addMessage(clientID: "a", sequence: sequence, record: "m\(sequence)") }
                try await sessions.addMessage(clientID: "b", sequence: 1, record: "b1")
                try await sessions.removeMessage(clientID: "a", sequence: 2)
            }
            let all = try await store.session.mqttSessions.all()
            #expect(all.map(\.clientID) == ["a", "b"])
            #expect(all.first?.record == "{\"v\":2}")
            #expect(all.first?.messages == ["m1", "m3"])
            #expect(all.last?.messages == ["b1"])
            try await store.session.mqttSessions.delete(clientID: "a")
            let left = try await store.session.mqttSessions.all()
            #expect(left.map(\.clientID) == ["b"])
            #expect(left.first?.messages == ["b1"])
        }
    }

    @Test("each connection of a device gets a newer epoch and names the node that held the device before, if another", arguments: TestDatabase.allCases)
    func deviceSessionsTakeOver(database: TestDatabase) async throws {
        try await database.withStore { store in
            let sessions = store.session.deviceSessions
            var seen: [String] = []
            for (device, node) in [("d", "n1"), ("d", "n2"), ("d", "n2"), ("e", "n1")] {
                let (epoch, previous) = try await sessions.connected(deviceID: device, nodeID: node, now: RepositoryTests.now)
                seen.append("\(device)@\(node): \(epoch) after \(previous ?? "-")")
            }
            #expect(seen == ["d@n1: 1 after -", "d@n2: 2 after n1", "d@n2: 3 after -", "e@n1: 1 after -"])
            #expect(try await sessions.holder(deviceID: "d")?.nodeID == "n2")
            #expect(try await sessions.countByNode() == ["n1": 1, "n2": 1])
        }
    }
}

