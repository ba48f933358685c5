import ConduitTesting
import Foundation
import Hub
import Hummingbird
import Store
import Testing

@Suite("Device lifecycle")
struct LifecycleTests {
    /// Every status a device can be in, and the actions that lead there from pending.
    static let pathTo: [DeviceStatus: [LifecycleAction]] = [
        .pending: [],
        .accepted: [.accept],
        .rejected: [.reject],
        .decommissioned: [.decommission],
    ]

    /// The legal transitions, exactly: pending -> accepted | rejected, accepted <-> rejected, any -> decommissioned.
    static let legal: Set<String> = [
        "pending-accept", "pending-reject", "pending-decommission",
        "accepted-reject", "accepted-decommission",
        "rejected-accept", "rejected-decommission",
    ]

    struct Case: Sendable, CustomTestStringConvertible {
        let from: DeviceStatus
        let action: LifecycleAction
        var testDescription: String { "\(action.rawValue) from \(from.rawValue)" }
    }

    static let cases: [Case] = DeviceStatus.allCases.flatMap { from in LifecycleAction.allCases.map { Case(from: from, action: $0) } }

    @Test("every action from every status: legal ones move and log, illegal ones are 409 and change nothing", arguments: TestDatabase.allCases)
    func everyTransition(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            for (index, testCase) in Self.cases.enumerated() {
                let id = "dev-\(index)"
                try await api.createDevice(id)
                for step in Self.pathTo[testCase.from]! {
                    #expect(try await api.call(.post, "/v1/devices/\(id)/\(step.rawValue)", token: api.operator).status == .ok)
                }
                let eventsBefore = try await api.call(.get, "/v1/events?deviceId=\(id)", token: api.reader).items.count
                let reply = try await api.call(.post, "/v1/devices/\(id)/\(testCase.action.rawValue)", token: api.operator)
                let after = try await api.call(.get, "/v1/devices/\(id)", token: api.reader)
                let events = try await api.call(.get, "/v1/events?deviceId=\(id)", token: api.reader).items
                if Self.legal.contains("\(testCase.from.rawValue)-\(testCase.action.rawValue)") {
                    #expect(reply.status == .ok, "\(testCase.testDescription)")
                    #expect(reply.json?["status"] as? String == testCase.action.target.rawValue)
                    #expect(after.json?["status"] as? String == testCase.action.target.rawValue)
                    #expect(events.count == eventsBefore + 1)
                    #expect(events.first?["type"] as? String == "device.\(testCase.action.target.rawValue)")
                    let data = events.first?["data"] as? [String: Any]
                    #expect(data?["from"] as? String == testCase.from.rawValue)
                    #expect(data?["to"] as? String == testCase.action.target.rawValue)
                } else {
                    #expect(reply.status == .conflict, "\(testCase.testDescription): \(reply.status)")
                    #expect(reply.errorCode == "invalid_transition")
                    #expect(reply.errorMessage?.contains(testCase.from.rawValue) == true)
                    #expect(after.json?["status"] as? String == testCase.from.rawValue)
                    #expect(events.count == eventsBefore)
                }
            }
        }
    }

    @Test("the transition table has exactly the seven legal moves")
    func table() throws {
        var legal: Set<String> = []
        for testCase in Self.cases {
            if (try? testCase.action.apply(to: testCase.from)) != nil {
                legal.insert("\(testCase.from.rawValue)-\(testCase.action.rawValue)")
            }
        }
        #expect(legal == Self.legal)
    }

    @Test("a decommissioned device is final: no action, no new secret", arguments: TestDatabase.allCases)
    func decommissionedIsFinal(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.createDevice("old")
            #expect(try await api.call(.post, "/v1/devices/old/decommission", token: api.operator).status == .ok)
            for action in LifecycleAction.allCases {
                #expect(try await api.call(.post, "/v1/devices/old/\(action.rawValue)", token: api.operator).status == .conflict)
            }
            #expect(try await api.call(.post, "/v1/devices/old/secret", token: api.operator).status == .conflict)
        }
    }

    @Test("an action on an unknown device is 404", arguments: TestDatabase.allCases)
    func unknownDevice(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let reply = try await api.call(.post, "/v1/devices/ghost/accept", token: api.operator)
            #expect(reply.status == .notFound)
            #expect(reply.errorMessage == "device 'ghost' not found")
        }
    }
}
