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

    @Test("a device connects with a certificate whose CN is its id; another CN, or no certificate, is refused")
    func mutualTLS() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.makeCertificates(in: directory, clients: ["d1", "d2"])
        let file = { (name: String) in directory.appendingPathComponent(name).path }
        let (server, port) = try await ConduitServer.start(
            ["--http-port", "0", "--mqtt-port", "0", "--mqtt-tls-port", "0", "--mqtt-tls-cert", file("server.pem"),
             "--mqtt-tls-key", file("server.key"), "--mqtt-tls-ca", file("ca.pem"), "--mqtt-tls-require-client-cert"],
            in: directory
        )
        do {
            let token = try #require(server.bootstrapToken)
            let tls = try #require(server.mqttTLSPort, "no TLS port in:\n\(server.output)")
            // --mqtt-port 0: TLS only, no plaintext listener at all.
            #expect(server.mqttPort == nil)
            #expect(listeningTCPPorts(of: server.process.processIdentifier) == [port, tls], "\(server.output)")
            for id in ["d1", "d2"] {
                #expect(try await http("POST", port, "/v1/devices", token: token, json: #"{"id":"\#(id)","name":"\#(id)"}"#).status == 201)
                #expect(try await http("POST", port, "/v1/devices/\(id)/accept", token: token).status == 200)
            }
            func publish(clientID: String, certificate: String?) async throws -> Subprocess.Result {
                var arguments = ["mosquitto_pub", "-h", "127.0.0.1", "-p", "\(tls)", "--cafile", file("ca.pem"), "-i", clientID, "-q", "1",
                                 "-t", "devices/\(clientID)/up", "-m", "over tls"]
                if let certificate { arguments += ["--cert", file("\(certificate).pem"), "--key", file("\(certificate).key")] }
                return try await Subprocess.run(arguments, timeout: 10)
            }
            let ok = try await publish(clientID: "d1", certificate: "d1")
            #expect(ok.status == 0, "\(ok.stderr)")
            let stored = try await http("GET", port, "/v1/devices/d1/messages", token: token).body["items"] as? [[String: Any]]
            #expect(stored?.first?["payload"] as? String == Data("over tls".utf8).base64EncodedString())

            let wrongCN = try await publish(clientID: "d2", certificate: "d1")
            #expect(wrongCN.status != 0)
            let noCertificate = try await publish(clientID: "d1", certificate: nil)
            #expect(noCertificate.status != 0)
            #expect((try await http("GET", port, "/v1/devices/d2/messages", token: token).body["items"] as? [[String: Any]])?.isEmpty == true)

            // Rejecting the device ends certificate access too.
            #expect(try await http("POST", port, "/v1/devices/d1/reject", token: token).status == 200)
            #expect(try await publish(clientID: "d1", certificate: "d1").status != 0)
        } catch {
            await server.stop()
            throw error
        }
        #expect(await server.stop() == 0)
    }
}
