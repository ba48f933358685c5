import ConduitTesting
import Foundation
import Testing

@Suite("conduit devices")
struct DevicesCLITests {
    @Test("create, list, and accept every device of a label; illegal moves by id are errors")
    func lifecycle() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func conduit(_ arguments: String...) async throws -> ConduitExecutable.Result {
            try await ConduitExecutable.run(Array(arguments), in: directory)
        }
        let created = try await conduit("devices", "create", "--id", "boiler-1", "--name", "Boiler 1", "--label", "plant-a")
        #expect(created.status == 0, "\(created.stderr)")
        let fields = created.stdout.trimmingCharacters(in: .newlines).split(separator: "\t")
        #expect(fields.first == "boiler-1")
        #expect((fields.last?.count ?? 0) >= 32)
        for index in 2...4 {
            #expect(try await conduit("devices", "create", "--id", "boiler-\(index)", "--name", "Boiler \(index)", "--label", "plant-a").status == 0)
        }
        #expect(try await conduit("devices", "decommission", "boiler-4").status == 0)
        #expect(try await conduit("devices", "reject", "boiler-3").status == 0)

        // By label: the three it applies to (pending or rejected); the decommissioned one is left.
        let accepted = try await conduit("devices", "accept", "--label", "plant-a")
        #expect(accepted.status == 0, "\(accepted.stderr)")
        #expect(accepted.stdout == "accepted 3 devices\n")
        #expect(accepted.stderr.contains("accept: 3/3"))

        let list = try await conduit("devices", "list", "--status", "accepted")
        #expect(list.stdout.split(separator: "\n").map { String($0.split(separator: "\t")[0]) } == ["boiler-1", "boiler-2", "boiler-3"])

        let again = try await conduit("devices", "accept", "boiler-1", "boiler-4")
        #expect(again.status != 0)
        #expect(again.stderr.contains("boiler-1: cannot accept a device that is accepted"))
        #expect(again.stderr.contains("boiler-4: cannot accept a device that is decommissioned"))

        let bad = try await conduit("devices", "create", "--id", "no spaces", "--name", "x")
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("id: must match [a-zA-Z0-9:_-]{1,128}"))
        let neither = try await conduit("devices", "accept")
        #expect(neither.status != 0)
        #expect(neither.stderr.contains("give device ids or --label"))
    }
}
