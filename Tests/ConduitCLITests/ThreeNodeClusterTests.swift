import ConduitTesting
import Foundation
import Testing

/// Issue 19's whole promise, end to end: three `conduit serve` on one PostgreSQL, a fleet reaching
/// them through HAProxy, AWS as moto (control plane and uplinks) and mosquitto (the data endpoint
/// the downlink gateway connects to).
@Suite("Three nodes on one PostgreSQL")
struct ThreeNodeClusterTests {
    static let fleetScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/fleet_devices.py").path

    /// What `fleet_devices.py` wrote of one device.
    struct DeviceProgress: Decodable {
        var acked: Int
        var sessionPresent: [Bool]
        var downlinks: [String]
    }

    /// The fleet script running: its progress file, its stop file, and the process.
    struct Fleet {
        let progress: String
        let stop: String
        let run: Task<(Int32, String, String), any Error>

        func read() -> [String: DeviceProgress] {
            guard let data = FileManager.default.contents(atPath: self.progress) else { return [:] }
            return (try? JSONDecoder().decode([String: DeviceProgress].self, from: data)) ?? [:]
        }

        /// Lets it end (once every message is acknowledged) and waits for it.
        func finish() async throws -> (Int32, String, String) {
            _ = FileManager.default.createFile(atPath: self.stop, contents: Data())
            return try await self.run.value
        }
    }

    static func startFleet(port: Int, count: Int, prefix: String, devices: [(String, String)], in directory: URL) -> Fleet {
        let progress = directory.appendingPathComponent("fleet-\(prefix).json").path
        let stop = directory.appendingPathComponent("fleet-\(prefix).stop").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.fleetScript, "\(port)", "\(count)", prefix, progress, stop] + devices.map { "\($0.0):\($0.1)" }
        return Fleet(progress: progress, stop: stop, run: Task { try await Subprocess.runCapturing(process) })
    }

    /// How many times each (device, payload) of these devices reached moto.
    static func arrivals(_ moto: MotoServer, devices: [String], prefix: String) throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for publish in try MotoPeer.recordedPublishes(file: moto.recording, containing: "/topics/") {
            let payload = String(decoding: publish.payload, as: UTF8.self)
            guard payload.hasPrefix("\(prefix)-"), let device = publish.topic.split(separator: "/").map(String.init).first(where: devices.contains)
            else { continue }
            counts["\(device) \(payload)", default: 0] += 1
        }
        return counts
    }

    /// The node's connected MQTT clients, from its metrics.
    static func connections(_ http: Int) async throws -> Int {
        let text = try await LoopbackHTTP.text(port: http, path: "/metrics")
        let line = text.split(separator: "\n").first { $0.hasPrefix("conduit_mqtt_connections{") }
        return line.flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }.map { Int($0) } ?? 0
    }

    static func nodes(_ http: Int, _ token: String) async throws -> [String: [String: Any]] {
        let nodes = try await ConduitCLITests.http("GET", http, "/v1/cluster", token: token).body["nodes"] as? [[String: Any]] ?? []
        return Dictionary(nodes.map { ($0["id"] as? String ?? "", $0) }) { first, _ in first }
    }

    @Test(
        "three nodes behind HAProxy: a downlink through node 1 reaches a device on node 3, a device rejected on node 2 is disconnected from node 3, 10,000 uplinks from devices on every node reach AWS once each; node 3 killed mid-run: its devices resume their sessions on nodes 1 and 2, no acknowledged uplink and no queued downlink is lost, and its gateway moves"
    )
    func threeNodes() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (databaseURL, dropDatabase) = try await TestDatabase.makePostgresDatabase()
        let moto = MotoServer(recording: directory.appendingPathComponent("moto-recording.jsonl").path)
        let pki = try await TestPKI.make(in: directory)
        let mosquitto = try TLSMosquitto(pki: pki)
        var servers: [Int: ConduitServer] = [:]
        var haproxy: HAProxy?
        func stopAll() async {
            for server in servers.values { await server.stop() }
            await haproxy?.stop()
            await mosquitto.stop()
            await moto.stop()
            await dropDatabase()
        }
        do {
            try await moto.start()
            try await mosquitto.start()
            let account = MotoPeer.Account()
            let environment = [
                "AWS_ACCESS_KEY_ID": "AKIACONDUITCLUSTER01", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": moto.url.absoluteString,
                "CONDUIT_AWS_ENDPOINT_ALLOWLIST": "http://127.0.0.1:\(moto.port),mqtts://localhost:\(mosquitto.port)",
            ]
            let mqtt = [1: freeLoopbackPort(), 2: freeLoopbackPort(), 3: freeLoopbackPort()]
            var http: [Int: Int] = [:]
            func start(_ node: Int) async throws {
                // One data dir: the same master key on every node, as a cluster needs.
                let (server, port) = try await ConduitServer.start(
                    ["--http-port", "0", "--mqtt-port", "\(mqtt[node]!)", "--database-url", databaseURL, "--node-id", "node-\(node)"],
                    in: directory, environment: environment
                )
                servers[node] = server
                http[node] = port
            }

            // Node 3 comes first, so that it takes the integration's gateway.
            try await start(3)
            let token = try #require(servers[3]?.bootstrapToken)
            let fleetIDs = (0..<10).map { "f-\($0)" }
            var secrets: [String: String] = [:]
            for id in ["probe", "shadowed", "leaver"] + fleetIDs {
                let created = try await ConduitCLITests.http("POST", http[3]!, "/v1/devices", token: token, json: #"{"id":"\#(id)","name":"\#(id)"}"#)
                secrets[id] = try #require(created.body["secret"] as? String, "\(created.body)")
                #expect(try await ConduitCLITests.http("POST", http[3]!, "/v1/devices/\(id)/accept", token: token).status == 200)
            }
            let integration: [String: Any] = [
                "name": "cluster", "region": "us-east-1", "endpointUrl": moto.url.absoluteString,
                "credentials": ["roleArn": account.roleARN, "externalId": "conduit-test"], "bind": ["all": true],
                "mqttEndpoint": "localhost:\(mosquitto.port)", "mqttTrustRoots": try pki.read("ca.pem"),
                "gateway": ["certificatePem": try pki.read("gateway.pem"), "privateKey": try pki.read("gateway.key")],
            ]
            let created = try await ConduitCLITests.http("POST", http[3]!, "/v1/integrations", token: token, json: try DownlinkGatewayTests.json(integration))
            #expect(created.status == 201, "\(created.body)")
            let integrationID = try #require(created.body["id"] as? String)
            try await waitUntil("the gateway connected on node 3 and every device provisioned", seconds: 120) {
                let body = try await ConduitCLITests.http("GET", http[3]!, "/v1/integrations/\(integrationID)", token: token).body
                let states = (body["devices"] as? [String: Any])?["states"] as? [String: Int]
                return (body["gateway"] as? [String: Any])?["connected"] as? Bool == true && states?["provisioned"] == 13
            }
            try await start(1)
            try await start(2)
            try await waitUntil("three nodes alive, each forwarding shards, the gateway on node 3") {
                let nodes = try await Self.nodes(http[1]!, token)
                return nodes.count == 3 && nodes.values.allSatisfy { $0["alive"] as? Bool == true && ($0["uplinkShards"] as? Int ?? 0) > 0 }
                    && nodes["node-3"]?["gateways"] as? [String] == [integrationID]
            }

            // A downlink queued through node 1 reaches the device on node 3.
            let probe = DownlinkGatewayTests.receive(mqtt[3]!, "probe", secrets["probe"]!, count: 1)
            try await waitUntil("the probe connected to node 3") { try await Self.connections(http[3]!) == 1 }
            try await Task.sleep(for: .milliseconds(300))  // its SUBSCRIBE, after the CONNECT
            let queued = ContinuousClock.now
            let downlink = try await ConduitCLITests.http(
                "POST", http[1]!, "/v1/devices/probe/downlinks", token: token, json: #"{"payload_raw": "\#(Data("via node 1".utf8).base64EncodedString())"}"#
            )
            #expect(downlink.status == 201, "\(downlink.body)")
            let received = try await probe.value
            print("three nodes: a downlink queued through node 1 reached the device on node 3 after \(ContinuousClock.now - queued)")
            #expect(received.stdout == "via node 1\n", "\(received.stderr)")

            // Rejected through node 2 while connected to node 3: node 3 disconnects it.
            try await waitUntil("the probe gone from node 3") { try await Self.connections(http[3]!) == 0 }
            let connected = ClusterCLITests.connectUntilDisconnected(mqtt[3]!, "probe", secrets["probe"]!)
            try await waitUntil("the probe connected to node 3 again") { try await Self.connections(http[3]!) == 1 }
            let rejected = Date()
            #expect(try await ConduitCLITests.http("POST", http[2]!, "/v1/devices/probe/reject", token: token).status == 200)
            let disconnect = try await connected.value
            #expect(disconnect.code == 0x87, "not authorized: rejected")
            print("three nodes: a device rejected through node 2 was disconnected from node 3 \(disconnect.at.map { $0.timeIntervalSince(rejected) } ?? .nan) s after the reject was sent to node 2")

            // Desired state changed through node 1 reaches the device on node 2 as AWS's delta.
            let delta = Task {
                try await Subprocess.run(
                    ["mosquitto_sub", "-p", "\(mqtt[2]!)", "-i", "shadowed", "-u", "shadowed", "-P", secrets["shadowed"]!, "-q", "1", "-C", "1",
                     "-t", "$aws/things/shadowed/shadow/update/delta"],
                    timeout: 40
                )
            }
            try await waitUntil("the shadowed device connected to node 2") { try await Self.connections(http[2]!) == 1 }
            // Changed again each second until the delta comes: the SUBSCRIBE follows the CONNECT.
            let patching = Task { [node1 = http[1]!] in
                for attempt in 1... {
                    let patched = try await ConduitCLITests.http(
                        "PATCH", node1, "/v1/devices/shadowed/shadow", token: token, json: #"{"desired": {"power": "on-\#(attempt)"}}"#
                    )
                    #expect(patched.status == 200, "\(patched.body)")
                    try await Task.sleep(for: .seconds(1))
                }
            }
            let deltaSeen = try await delta.value
            patching.cancel()
            let deltaBody = (try? JSONSerialization.jsonObject(with: Data(deltaSeen.stdout.utf8))) as? [String: Any]
            let power = (deltaBody?["state"] as? [String: Any])?["power"] as? String
            #expect(power?.hasPrefix("on-") == true, "\(deltaSeen.stdout)\(deltaSeen.stderr)")

            // A device deleted through node 1 leaves no retained message on node 3, where it
            // published one, though node 2 held it last: a new device of its id finds none there.
            let retained = try await Subprocess.run(
                ["mosquitto_pub", "-p", "\(mqtt[3]!)", "-i", "leaver", "-u", "leaver", "-P", secrets["leaver"]!, "-q", "1", "-r",
                 "-t", "devices/leaver/state", "-m", "old-owner-secret-state"],
                timeout: 10
            )
            #expect(retained.status == 0, "\(retained.stderr)")
            let kept = try await DeviceSafetyTests.subscribe(mqtt[3]!, version: "5", id: "leaver", secret: secrets["leaver"]!, wait: 0.5, [("devices/leaver/state", 1)])
            #expect(kept.messages == ["message devices/leaver/state 1 old-owner-secret-state"], "retained on node 3: the check below can fail")
            _ = try await DeviceSafetyTests.subscribe(mqtt[2]!, version: "5", id: "leaver", secret: secrets["leaver"]!, wait: 0.2, [("devices/leaver/down", 1)])
            #expect(try await ConduitCLITests.http("DELETE", http[1]!, "/v1/devices/leaver", token: token).status == 204)
            let again = try await ConduitCLITests.http("POST", http[1]!, "/v1/devices", token: token, json: #"{"id":"leaver","name":"new leaver"}"#)
            let newSecret = try #require(again.body["secret"] as? String)
            let accepted = try await ConduitCLITests.http("POST", http[1]!, "/v1/devices/leaver/accept", token: token)
            #expect(accepted.status == 200, "\(accepted.body)\n\(servers[1]?.output.suffix(3000) ?? "")")
            try await DeviceSafetyTests.queueDownlink(http[1]!, token, "leaver", "welcome")
            let found = try await DeviceSafetyTests.subscribe(mqtt[3]!, version: "5", id: "leaver", secret: newSecret, [("devices/leaver/#", 1)])
            #expect(found.messages == ["message devices/leaver/down 1 welcome"])

            // The fleet, through HAProxy: 10 devices x 1,000 uplinks, spread over the three nodes.
            let balancer = try HAProxy(in: directory, nodes: [1, 2, 3].map { (mqtt[$0]!, http[$0]!) })
            haproxy = balancer
            try await balancer.start()
            let fleetDevices = fleetIDs.map { ($0, secrets[$0]!) }
            let first = Self.startFleet(port: balancer.port, count: 1_000, prefix: "a", devices: fleetDevices, in: directory)
            try await waitUntil("fleet devices on every node") {
                var counts: [Int] = []
                for node in [1, 2, 3] { counts.append(try await Self.connections(http[node]!)) }
                return counts.allSatisfy { $0 > 0 } && counts.reduce(0, +) == 10
            }
            let began = ContinuousClock.now
            try await waitUntil("every uplink acknowledged", seconds: 300) { first.read().values.map(\.acked).reduce(0, +) == 10_000 }
            let firstRun = try await first.finish()
            #expect(firstRun.0 == 0, "\(firstRun.1)\(firstRun.2)")
            do {
                try await waitUntil("10,000 uplinks in moto", seconds: 300, interval: .seconds(1)) {
                    try Self.arrivals(moto, devices: fleetIDs, prefix: "a").count >= 10_000
                }
            } catch {
                let publishes = try MotoPeer.recordedPublishes(file: moto.recording)
                Issue.record("\(try Self.arrivals(moto, devices: fleetIDs, prefix: "a").count) of 10,000 in moto; its publishes: \(publishes.count), the last: \(publishes.suffix(3))")
                throw error
            }
            print("three nodes: 10,000 uplinks acknowledged and in moto after \(ContinuousClock.now - began)")
            let once = try Self.arrivals(moto, devices: fleetIDs, prefix: "a")
            let expected = Set(fleetIDs.flatMap { device in (0..<1_000).map { "\(device) a-\($0)" } })
            #expect(Set(once.keys) == expected, "lost: \(expected.subtracting(once.keys).sorted().prefix(10))")
            #expect(once.filter { $0.value > 1 }.isEmpty, "twice: \(once.filter { $0.value > 1 }.keys.sorted().prefix(10))")

            // Node 3 killed mid-run. Downlinks are queued for every device while its devices are
            // away; its devices come back through HAProxy to node 1 or 2.
            let second = Self.startFleet(port: balancer.port, count: 300, prefix: "b", devices: fleetDevices, in: directory)
            try await waitUntil("the fleet on every node again") {
                var counts: [Int] = []
                for node in [1, 2, 3] { counts.append(try await Self.connections(http[node]!)) }
                return counts.allSatisfy { $0 > 0 } && counts.reduce(0, +) == 10
            }
            try await waitUntil("a third of the second run in moto", seconds: 120, interval: .milliseconds(300)) {
                try Self.arrivals(moto, devices: fleetIDs, prefix: "b").count >= 1_000
            }
            let onNodeThree = try await Self.connections(http[3]!)
            await servers[3]!.kill()
            let killed = ContinuousClock.now
            for device in fleetIDs {
                let queued = try await ConduitCLITests.http(
                    "POST", http[1]!, "/v1/devices/\(device)/downlinks", token: token,
                    json: #"{"payload_raw": "\#(Data("after-kill-\(device)".utf8).base64EncodedString())"}"#
                )
                #expect(queued.status == 201, "\(queued.body)")
            }
            try await waitUntil("every device of node 3 back on node 1 or 2") {
                try await Self.connections(http[1]!) + Self.connections(http[2]!) == 10
            }
            print("three nodes: node 3's \(onNodeThree) devices were back on nodes 1 and 2 \(ContinuousClock.now - killed) after its SIGKILL")
            var holder = ""
            try await waitUntil("the gateway taken over", seconds: 90) {
                let nodes = try await Self.nodes(http[1]!, token)
                holder = nodes.first { ($0.value["gateways"] as? [String])?.contains(integrationID) == true }?.key ?? ""
                return holder == "node-1" || holder == "node-2"
            }
            print("three nodes: node 3's gateway was taken over by \(holder) \(ContinuousClock.now - killed) after its SIGKILL (bound: 30 s lease + 10 s poll)")
            // The new holder's gateway brings downlinks from AWS: one for each device.
            try await waitUntil("the gateway connected on \(holder)") {
                let node = holder == "node-1" ? http[1]! : http[2]!
                let body = try await ConduitCLITests.http("GET", node, "/v1/integrations/\(integrationID)", token: token).body
                return (body["gateway"] as? [String: Any])?["connected"] as? Bool == true
            }
            for device in fleetIDs {
                try await DownlinkGatewayTests.publishFromAWS(
                    mosquitto, "conduit/devices/\(device)/down", #"{"payload_raw": "\#(DownlinkGatewayTests.base64("from-aws-\(device)"))"}"#
                )
            }
            try await waitUntil("every uplink of the second run acknowledged", seconds: 300) {
                second.read().values.map(\.acked).reduce(0, +) == 3_000
            }
            try await waitUntil("both downlinks at every device", seconds: 120) {
                let progress = second.read()
                return fleetIDs.allSatisfy { device in
                    Set(progress[device]?.downlinks ?? []).isSuperset(of: ["after-kill-\(device)", "from-aws-\(device)"])
                }
            }
            try await waitUntil("every uplink of the second run in moto", seconds: 300, interval: .seconds(1)) {
                try Self.arrivals(moto, devices: fleetIDs, prefix: "b").count >= 3_000
            }
            let progress = second.read()
            let secondRun = try await second.finish()
            #expect(secondRun.0 == 0, "\(secondRun.1)\(secondRun.2)")
            let arrived = try Self.arrivals(moto, devices: fleetIDs, prefix: "b")
            let all = Set(fleetIDs.flatMap { device in (0..<300).map { "\(device) b-\($0)" } })
            #expect(Set(arrived.keys) == all, "lost: \(all.subtracting(arrived.keys).sorted().prefix(10))")
            print("three nodes: after the SIGKILL, \(arrived.values.filter { $0 > 1 }.count) of 3,000 uplinks reached moto twice, none was lost")
            // Node 3's devices came back to a session: each CONNACK of this run found one.
            let moved = progress.filter { $0.value.sessionPresent.count > 1 }
            #expect(onNodeThree > 0 && moved.count >= onNodeThree, "\(progress.mapValues(\.sessionPresent))")
            #expect(progress.values.allSatisfy { !$0.sessionPresent.contains(false) }, "a session lost: \(progress.mapValues(\.sessionPresent))")
            // No downlink came twice either.
            #expect(progress.values.allSatisfy { Set($0.downlinks).count == $0.downlinks.count }, "\(progress.mapValues(\.downlinks))")
        } catch {
            for (node, server) in servers.sorted(by: { $0.key < $1.key }) {
                print("node-\(node)'s log ends:\n\(server.output.suffix(3000))")
            }
            await stopAll()
            throw error
        }
        await stopAll()
    }
}
