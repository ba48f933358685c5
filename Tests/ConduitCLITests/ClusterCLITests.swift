import ConduitTesting
import Foundation
import Testing

@Suite("GET /v1/cluster")
struct ClusterCLITests {
    @Test("a node shows itself: its id, alive, forwarding every shard of the outbox; readers may not look")
    func oneNode() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (server, http) = try await ConduitServer.start(["--http-port", "0", "--mqtt-port", "0", "--node-id", "node-a"], in: directory)
        do {
            let token = try #require(server.bootstrapToken)
            var cluster: [String: Any] = [:]
            try await waitUntil("the node to hold the outbox's shards") {
                cluster = try await ConduitCLITests.http("GET", http, "/v1/cluster", token: token).body
                return ((cluster["nodes"] as? [[String: Any]])?.first?["uplinkShards"] as? Int) == cluster["uplinkShards"] as? Int
            }
            let nodes = try #require(cluster["nodes"] as? [[String: Any]])
            #expect(nodes.count == 1)
            #expect(nodes.first?["id"] as? String == "node-a")
            #expect(nodes.first?["alive"] as? Bool == true)
            #expect(cluster["uplinkShards"] as? Int == 64)
            let reader = try await ConduitCLITests.http("POST", http, "/v1/tokens", token: token, json: #"{"role": "reader", "name": "looker"}"#)
            let readerToken = try #require(reader.body["token"] as? String)
            #expect(try await ConduitCLITests.http("GET", http, "/v1/cluster", token: readerToken).status == 403)
        } catch {
            _ = await server.stop()
            throw error
        }
        _ = await server.stop()
    }
}
