import ConduitTesting
import Foundation
import Testing

@Suite("Devices on the broker over mutual TLS")
struct DeviceTLSTests {
    /// A CA, a server certificate for 127.0.0.1, and client certificates with the given CNs, made by openssl.
    static func makeCertificates(in directory: URL, clients: [String]) async throws {
        var script = """
            set -e
            cd '\(directory.path)'
            printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > server.ext
            printf 'extendedKeyUsage=clientAuth\\n' > client.ext
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=Conduit Test CA' 2>/dev/null
            openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr -subj '/CN=127.0.0.1' 2>/dev/null
            openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile server.ext 2>/dev/null

            """
        for client in clients {
            script += """
                openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout \(client).key -out \(client).csr -subj '/CN=\(client)' 2>/dev/null
                openssl x509 -req -in \(client).csr -CA ca.pem -CAkey ca.key -CAcreateserial -out \(client).pem -days 2 -extfile client.ext 2>/dev/null

                """
        }
        let result = try await Subprocess.run(["sh", "-c", script])
        #expect(result.status == 0, "openssl: \(result.stderr)")
    }

    /// Publishes over TLS as `clientID` with the named certificate and key (files in `directory`).
    static func publish(_ tls: Int, in directory: URL, clientID: String, certificate: String?, key: String? = nil) async throws -> Subprocess.Result {
        let file = { (name: String) in directory.appendingPathComponent(name).path }
        var arguments = ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(tls)", "--cafile", file("ca.pem"), "-i", clientID, "-q", "1",
                         "-t", "devices/\(clientID)/up", "-m", "over tls"]
        if let certificate { arguments += ["--cert", file("\(certificate).pem"), "--key", file("\(key ?? certificate).key")] }
        return try await Subprocess.run(arguments, timeout: 10)
    }

    /// Enrols `pem` (a file in `directory`) as the device's certificate.
    static func enroll(_ http: Int, _ token: String, _ id: String, pem: String, in directory: URL) async throws -> (status: Int, body: [String: Any]) {
        let text = try String(contentsOf: directory.appendingPathComponent("\(pem).pem"), encoding: .utf8)
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["certificatePem": text]), as: UTF8.self)
        return try await ConduitCLITests.http("POST", http, "/v1/devices/\(id)/certificate", token: token, json: body)
    }

    @Test("only the certificate enrolled for a device logs it in; a CSR is signed by the device CA; TLS only, no plaintext port")
    func mutualTLS() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.makeCertificates(in: directory, clients: ["d1", "d2", "d2-rotated"])
        let file = { (name: String) in directory.appendingPathComponent(name).path }
        let (server, port) = try await ConduitServer.start(
            ["--http-port", "0", "--mqtt-port", "0", "--mqtt-tls-port", "0", "--mqtt-tls-cert", file("server.pem"),
             "--mqtt-tls-key", file("server.key"), "--mqtt-tls-ca", file("ca.pem"), "--mqtt-tls-ca-key", file("ca.key"),
             "--mqtt-tls-require-client-cert"],
            in: directory
        )
        do {
            let token = try #require(server.bootstrapToken)
            let tls = try #require(server.mqttTLSPort, "no TLS port in:\n\(server.output)")
            // --mqtt-port 0: TLS only, no plaintext listener at all.
            #expect(server.mqttPort == nil)
            #expect(listeningTCPPorts(of: server.process.processIdentifier) == [port, tls], "\(server.output)")
            for id in ["d1", "d2", "d3"] {
                #expect(try await http("POST", port, "/v1/devices", token: token, json: #"{"id":"\#(id)","name":"\#(id)"}"#).status == 201)
                #expect(try await http("POST", port, "/v1/devices/\(id)/accept", token: token).status == 200)
            }
            // Signed by the CA, CN = the client id, but not enrolled: refused.
            #expect(try await Self.publish(tls, in: directory, clientID: "d1", certificate: "d1").status != 0)
            let enrolled = try await Self.enroll(port, token, "d1", pem: "d1", in: directory)
            #expect(enrolled.status == 201, "\(enrolled.body)")
            #expect((enrolled.body["fingerprint"] as? String)?.count == 64)
            #expect(enrolled.body["subject"] as? String == "CN=d1")
            #expect(try await Self.enroll(port, token, "d2", pem: "d2", in: directory).status == 201)

            let ok = try await Self.publish(tls, in: directory, clientID: "d1", certificate: "d1")
            #expect(ok.status == 0, "\(ok.stderr)")
            let stored = try await http("GET", port, "/v1/devices/d1/messages", token: token).body["items"] as? [[String: Any]]
            #expect(stored?.first?["payload"] as? String == Data("over tls".utf8).base64EncodedString())
            // Another device's enrolled certificate, and none at all, are refused.
            #expect(try await Self.publish(tls, in: directory, clientID: "d2", certificate: "d1").status != 0)
            #expect(try await Self.publish(tls, in: directory, clientID: "d1", certificate: nil).status != 0)
            #expect((try await http("GET", port, "/v1/devices/d2/messages", token: token).body["items"] as? [[String: Any]])?.isEmpty == true)

            // A CSR: Conduit's device CA signs a certificate for d3, whatever subject the CSR asked for.
            let csrText = try String(contentsOf: directory.appendingPathComponent("d2-rotated.csr"), encoding: .utf8)
            let signed = try await ConduitCLITests.http(
                "POST", port, "/v1/devices/d3/certificate", token: token,
                json: String(decoding: try JSONSerialization.data(withJSONObject: ["csr": csrText]), as: UTF8.self)
            )
            #expect(signed.status == 201, "\(signed.body)")
            #expect(signed.body["subject"] as? String == "CN=d3" && signed.body["source"] as? String == "csr")
            try (try #require(signed.body["certificatePem"] as? String)).write(to: directory.appendingPathComponent("d3.pem"), atomically: true, encoding: .utf8)
            let viaCSR = try await Self.publish(tls, in: directory, clientID: "d3", certificate: "d3", key: "d2-rotated")
            #expect(viaCSR.status == 0, "\(viaCSR.stderr)")

            // Rotating d2's certificate retires the old one at once.
            #expect(try await Self.enroll(port, token, "d2", pem: "d2-rotated", in: directory).status == 201)
            #expect(try await Self.publish(tls, in: directory, clientID: "d2", certificate: "d2").status != 0)
            #expect(try await Self.publish(tls, in: directory, clientID: "d2", certificate: "d2-rotated").status == 0)
            // Rejecting the device ends certificate access too.
            #expect(try await http("POST", port, "/v1/devices/d2/reject", token: token).status == 200)
            #expect(try await Self.publish(tls, in: directory, clientID: "d2", certificate: "d2-rotated").status != 0)
        } catch {
            await server.stop()
            throw error
        }
        #expect(await server.stop() == 0)
    }

    @Test("a revoked certificate's connection ends at once; tenant A's old certificate for pump-1 cannot log in as tenant B's new pump-1")
    func revocationAndReuse() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.makeCertificates(in: directory, clients: ["pump-1", "pump-1-new"])
        let file = { (name: String) in directory.appendingPathComponent(name).path }
        let (server, port) = try await ConduitServer.start(
            ["--http-port", "0", "--mqtt-tls-port", "0", "--mqtt-tls-cert", file("server.pem"), "--mqtt-tls-key", file("server.key"),
             "--mqtt-tls-ca", file("ca.pem")],
            in: directory
        )
        do {
            let token = try #require(server.bootstrapToken)
            let tls = try #require(server.mqttTLSPort, "no TLS port in:\n\(server.output)")
            #expect(try await http("POST", port, "/v1/devices", token: token, json: #"{"id":"pump-1","name":"old"}"#).status == 201)
            #expect(try await http("POST", port, "/v1/devices/pump-1/accept", token: token).status == 200)
            #expect(try await Self.enroll(port, token, "pump-1", pem: "pump-1", in: directory).status == 201)

            // Connected with its certificate, then revoked: the connection ends, and it cannot come back.
            let (listener, _) = try Subprocess.start(
                ["timeout", "--signal=KILL", "20", "mosquitto_sub", "-h", "127.0.0.1", "-p", "\(tls)", "--cafile", file("ca.pem"),
                 "--cert", file("pump-1.pem"), "--key", file("pump-1.key"), "-i", "pump-1", "-V", "mqttv5", "-q", "1", "-t", "devices/pump-1/down"]
            )
            try await Task.sleep(for: .milliseconds(800))
            #expect(listener.isRunning, "connected with the enrolled certificate")
            #expect(try await http("DELETE", port, "/v1/devices/pump-1/certificate", token: token).status == 204)
            let deadline = ContinuousClock.now + .seconds(5)
            while listener.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
            #expect(!listener.isRunning, "the revoked certificate's connection was closed")
            if listener.isRunning { kill(listener.processIdentifier, SIGKILL) }
            await ConduitExecutable.waitForExit(listener)
            #expect(try await Self.publish(tls, in: directory, clientID: "pump-1", certificate: "pump-1").status != 0)

            // Enrolled again, then the device deleted; tenant B makes its own pump-1.
            #expect(try await Self.enroll(port, token, "pump-1", pem: "pump-1", in: directory).status == 201)
            #expect(try await Self.publish(tls, in: directory, clientID: "pump-1", certificate: "pump-1").status == 0)
            #expect(try await http("DELETE", port, "/v1/devices/pump-1", token: token).status == 204)
            #expect(try await ConduitExecutable.run(["tenants", "create", "acme"], in: directory).status == 0)
            let acme = try await ConduitExecutable.run(["tokens", "create", "--role", "admin", "--tenant", "acme"], in: directory)
            let tokenB = acme.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(acme.status == 0 && !tokenB.isEmpty, "\(acme.stderr)")
            #expect(try await http("POST", port, "/v1/devices", token: tokenB, json: #"{"id":"pump-1","name":"new"}"#).status == 201)
            #expect(try await http("POST", port, "/v1/devices/pump-1/accept", token: tokenB).status == 200)
            // Before B enrols anything, and after: A's old certificate (same CA, same CN) is refused.
            #expect(try await Self.publish(tls, in: directory, clientID: "pump-1", certificate: "pump-1").status != 0)
            #expect(try await Self.enroll(port, tokenB, "pump-1", pem: "pump-1-new", in: directory).status == 201)
            #expect(try await Self.publish(tls, in: directory, clientID: "pump-1", certificate: "pump-1").status != 0)
            #expect(try await Self.publish(tls, in: directory, clientID: "pump-1", certificate: "pump-1-new").status == 0)
            let items = try await http("GET", port, "/v1/devices/pump-1/messages", token: tokenB).body["items"] as? [[String: Any]]
            #expect(items?.count == 1, "only the new certificate's message reached tenant B's pump-1")
        } catch {
            await server.stop()
            throw error
        }
        #expect(await server.stop() == 0)
    }
}
