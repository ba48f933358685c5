import ConduitTesting
import Foundation
import Testing

@Suite("GET /v1/cluster")
struct ClusterCLITests {
    @Test("a node shows itself: its id, alive, forwarding every shard of the outbox, its metrics labelled with it; readers may not look")
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
            // Its metrics carry its id, so that several nodes' figures stay apart in one Prometheus.
            let text = try await LoopbackHTTP.text(port: http, path: "/metrics")
            #expect(text.contains(#"node="node-a""#), "\(text.prefix(2000))")
            #expect(!text.split(separator: "\n").contains { $0.hasPrefix("conduit_") && !$0.contains(#"node="node-a""#) }, "every conduit_ metric has its node")
            let reader = try await ConduitCLITests.http("POST", http, "/v1/tokens", token: token, json: #"{"role": "reader", "name": "looker"}"#)
            let readerToken = try #require(reader.body["token"] as? String)
            #expect(try await ConduitCLITests.http("GET", http, "/v1/cluster", token: readerToken).status == 403)
        } catch {
            _ = await server.stop()
            throw error
        }
        _ = await server.stop()
    }

    /// A paho-mqtt 5.0 device connected to `mqtt` until the broker disconnects it: the
    /// DISCONNECT's reason code, or -1 when its CONNACK refused it, or nil when nothing ended it;
    /// and when the device saw it end.
    static func connectUntilDisconnected(_ mqtt: Int, _ id: String, _ secret: String) -> Task<(code: Int?, at: Date?), any Error> {
        Task {
            let script = """
                import sys, threading, time
                import paho.mqtt.client as mqtt
                done, result = threading.Event(), {}
                def on_connect(client, userdata, flags, reason, properties):
                    if reason.is_failure:
                        result["code"] = -1
                        done.set()
                    else:
                        print("connected", flush=True)
                def on_disconnect(client, userdata, flags, reason, properties):
                    result.setdefault("code", reason.value)
                    result.setdefault("at", time.time())
                    done.set()
                client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=sys.argv[2], protocol=mqtt.MQTTv5)
                client.username_pw_set(sys.argv[2], sys.argv[3])
                client.on_connect, client.on_disconnect = on_connect, on_disconnect
                client.connect("127.0.0.1", int(sys.argv[1]), keepalive=60)
                client.loop_start()
                done.wait(120)
                client.loop_stop()
                print(result.get("code"), result.get("at"))
                """
            let run = try await Subprocess.run(["python3", "-c", script, "\(mqtt)", id, secret], timeout: 300)
            let last = run.stdout.split(separator: "\n").last?.split(separator: " ").map(String.init) ?? []
            return (last.first.flatMap { Int($0) }, last.last.flatMap { Double($0) }.map { Date(timeIntervalSince1970: $0) })
        }
    }

    @Test("two nodes on one PostgreSQL: a downlink queued through one reaches a device on the other; a device rejected on one is disconnected from the other; a device connecting to one is taken over from the other")
    func twoNodesRouteToDevices() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (url, cleanup) = try await TestDatabase.makePostgresDatabase()
        let mqtt = (freeLoopbackPort(), freeLoopbackPort())
        // One data dir: the same master key on both nodes, as every node of a cluster needs.
        let (first, http) = try await ConduitServer.start(
            ["--http-port", "0", "--mqtt-port", "\(mqtt.0)", "--database-url", url, "--node-id", "node-1"], in: directory
        )
        var second: ConduitServer?
        do {
            let token = try #require(first.bootstrapToken)
            let started = try await ConduitServer.start(
                ["--http-port", "0", "--mqtt-port", "\(mqtt.1)", "--database-url", url, "--node-id", "node-2"], in: directory
            )
            second = started.server
            let http2 = started.port
            let created = try await ConduitCLITests.http("POST", http, "/v1/devices", token: token, json: #"{"id":"roam-1","name":"Roaming"}"#)
            let secret = try #require(created.body["secret"] as? String)
            #expect(try await ConduitCLITests.http("POST", http, "/v1/devices/roam-1/accept", token: token).status == 200)

            // A downlink queued through node 1 reaches the device on node 2.
            let receiver = DownlinkGatewayTests.receive(mqtt.1, "roam-1", secret, count: 1)
            try await waitUntil("node 2 to hold the device") {
                let nodes = try await ConduitCLITests.http("GET", http, "/v1/cluster", token: token).body["nodes"] as? [[String: Any]] ?? []
                return nodes.first { $0["id"] as? String == "node-2" }?["devices"] as? Int == 1
            }
            try await Task.sleep(for: .milliseconds(500))  // the SUBSCRIBE after the CONNECT
            let queued = ContinuousClock.now
            let downlink = try await ConduitCLITests.http(
                "POST", http, "/v1/devices/roam-1/downlinks", token: token, json: #"{"payload_raw": "\#(Data("to node 2".utf8).base64EncodedString())"}"#
            )
            #expect(downlink.status == 201, "\(downlink.body)")
            let received = try await receiver.value
            print("cluster: downlink through node 1 reached the device on node 2 after \(ContinuousClock.now - queued)")
            #expect(received.stdout == "to node 2\n", "\(received.stderr)")

            // A device on node 2 connects to node 1: node 2 closes its connection, session taken over.
            try await waitUntil("the receiver gone from node 2") { try await ThreeNodeClusterTests.connections(http2) == 0 }
            let onSecond = Self.connectUntilDisconnected(mqtt.1, "roam-1", secret)
            try await waitUntil("the device connected to node 2 again") { try await ThreeNodeClusterTests.connections(http2) == 1 }
            let onFirst = Self.connectUntilDisconnected(mqtt.0, "roam-1", secret)
            #expect(try await onSecond.value.code == 0x8E)

            // Rejected through node 2 while connected to node 1: node 1 disconnects it.
            #expect(try await ConduitCLITests.http("POST", http2, "/v1/devices/roam-1/reject", token: token).status == 200)
            #expect(try await onFirst.value.code == 0x87, "not authorized: rejected")
        } catch {
            _ = await first.stop()
            _ = await second?.stop()
            await cleanup()
            throw error
        }
        _ = await first.stop()
        _ = await second?.stop()
        await cleanup()
    }
}
