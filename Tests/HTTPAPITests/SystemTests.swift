import ConduitTesting
import Foundation
import Logging
import HTTPAPI
import Hummingbird
import HummingbirdTesting
import Metrics
import Prometheus
import Testing

@Suite("Health, metrics and the API document")
struct SystemTests {
    @Test("healthz and readyz answer without a token", arguments: TestDatabase.allCases)
    func health(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let health = try await api.call(.get, "/healthz", token: nil)
            #expect(health.status == .ok)
            #expect(health.json?["status"] as? String == "ok")
            let ready = try await api.call(.get, "/readyz", token: nil)
            #expect(ready.status == .ok)
            #expect(ready.json?["status"] as? String == "ready")
        }
    }

    @Test("readyz is 503 once the database is gone")
    func notReady() async throws {
        try await TestDatabase.sqlite.withHub { hub in
            let app = Application(router: ConduitAPI.router(hub: hub), logger: .quiet)
            await hub.store.shutdown()
            try await app.test(.router) { client in
                let status = try await client.execute(uri: "/readyz", method: .get) { $0.status }
                #expect(status == .serviceUnavailable)
            }
        }
    }

    @Test("an unknown route is a JSON 404", arguments: [TestDatabase.sqlite])
    func unknownRoute(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            let reply = try await api.call(.get, "/v1/nothing-here", token: api.reader)
            #expect(reply.status == .notFound)
            #expect(reply.errorCode == "not_found")
        }
    }

    @Test("a known path with a wrong method is a 405 that says which methods it takes", arguments: [TestDatabase.sqlite])
    func wrongMethod(database: TestDatabase) async throws {
        try await APIHarness.run(database) { api in
            try await api.call(.post, "/v1/devices", token: api.admin, json: #"{"id": "m1", "name": "Meter"}"#)
            let put = try await api.call(.put, "/v1/devices/m1", token: api.admin, json: #"{"name": "x"}"#)
            #expect(put.status == .methodNotAllowed)
            #expect(put.headers[.allow] == "DELETE, GET, PATCH")
            #expect(put.errorCode == "method_not_allowed")
            #expect(put.errorMessage == "PUT is not allowed on /v1/devices/m1: use DELETE, GET, PATCH")
            // What Allow offers is served: HEAD, which is not, is refused and not offered.
            let head = try await api.call(.head, "/v1/devices/m1", token: api.admin)
            #expect(head.status == .methodNotAllowed)
            #expect(head.headers[.allow] == "DELETE, GET, PATCH")
            // The device is as it was.
            #expect(try await api.call(.get, "/v1/devices/m1", token: api.admin).json?["name"] as? String == "Meter")

            let accept = try await api.call(.get, "/v1/devices/m1/accept", token: api.admin)
            #expect(accept.status == .methodNotAllowed)
            #expect(accept.headers[.allow] == "POST")
            // A path that no route has stays a 404, and so does a route's method on a longer path.
            #expect(try await api.call(.put, "/v1/devices/m1/nothing", token: api.admin).status == .notFound)
            #expect(try await api.call(.get, "/v1/devices/m1/accept/again", token: api.admin).status == .notFound)
        }
    }

    @Test("the OpenAPI document lists exactly the routes the router serves")
    func openAPIMatchesRouter() async throws {
        try await TestDatabase.sqlite.withHub { hub in
            let router = ConduitAPI.router(hub: hub)
            let served = Set(router.routes.map { "\($0.method.rawValue.lowercased()) \(Self.normalise("\($0.path)"))" })
            let app = Application(router: router, logger: .quiet)
            let document = try await app.test(.router) { client in
                try await client.execute(uri: "/openapi.yaml", method: .get) { String(buffer: $0.body) }
            }
            #expect(document.hasPrefix("openapi: 3.1.0"))
            let documented = Self.operations(inOpenAPI: document)
            #expect(!served.isEmpty)
            #expect(documented.subtracting(served).isEmpty, "documented but not served: \(documented.subtracting(served).sorted())")
            #expect(served.subtracting(documented).isEmpty, "served but not documented: \(served.subtracting(documented).sorted())")
        }
    }

    @Test("the served document is valid OpenAPI 3.1 (openapi-spec-validator)")
    func openAPIIsValid() async throws {
        try await TestDatabase.sqlite.withHub { hub in
            let app = Application(router: ConduitAPI.router(hub: hub), logger: .quiet)
            let document = try await app.test(.router) { client in
                try await client.execute(uri: "/openapi.yaml", method: .get) { String(buffer: $0.body) }
            }
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-openapi-\(UUID().uuidString).yaml")
            try Data(document.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [
                "python3", "-c",
                "import sys, yaml; from openapi_spec_validator import validate; validate(yaml.safe_load(open(sys.argv[1])))",
                file.path,
            ]
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let output = await withCheckedContinuation { continuation in
                DispatchQueue.global().async {
                    let data = errors.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: String(decoding: data, as: UTF8.self))
                }
            }
            #expect(process.terminationStatus == 0, "openapi-spec-validator (installed by scripts/test) refused it:\n\(output)")
        }
    }

    /// `/v1/devices/{id}` and `/v1/devices/:id` both become `/v1/devices/{}`.
    static func normalise(_ path: String) -> String {
        let trimmed = path.hasPrefix("/") ? path : "/" + path
        return trimmed.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix(":") || (segment.hasPrefix("{") && segment.hasSuffix("}")) ? "{}" : String(segment)
        }.joined(separator: "/")
    }

    /// The `method path` pairs under `paths:` of the document (two-space paths, four-space methods).
    static func operations(inOpenAPI yaml: String) -> Set<String> {
        let methods: Set<String> = ["get", "post", "put", "patch", "delete", "head", "options"]
        var result: Set<String> = []
        var inPaths = false
        var path: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if !line.hasPrefix(" ") && !line.isEmpty {
                inPaths = line == "paths:"
                continue
            }
            guard inPaths else { continue }
            if line.hasPrefix("  /"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if line.hasPrefix("    "), !line.hasPrefix("     "), let path {
                let key = String(line.dropFirst(4).prefix { $0 != ":" })
                if methods.contains(key) { result.insert("\(key) \(normalise(path))") }
            }
        }
        return result
    }

    @Test("metrics count requests by their real status, client errors included")
    func metrics() async throws {
        try await TestDatabase.sqlite.withHub { hub in
            let registry = TestMetrics.registry
            let app = Application(router: ConduitAPI.router(hub: hub, metrics: registry), logger: .quiet)
            try await app.test(.router) { client in
                _ = try await client.execute(uri: "/v1/devices/none", method: .get) { $0.status }
                try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
                    let text = String(buffer: response.body)
                    #expect(text.contains("http_response_status_code=\"401\""), "\(text)")
                    #expect(!text.contains("http_response_status_code=\"500\""), "\(text)")
                }
            }
        }
    }
}

/// The process's metrics system, bootstrapped once (swift-metrics allows one bootstrap a process).
enum TestMetrics {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}
