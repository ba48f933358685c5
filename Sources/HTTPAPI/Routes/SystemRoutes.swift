import Hub
import Hummingbird
import NIOCore
import Prometheus

/// Unauthenticated routes for operators and their tools: health, readiness, metrics, the API document.
struct SystemRoutes {
    let hub: Hub
    let metrics: PrometheusCollectorRegistry?

    func register(on router: Router<ConduitRequestContext>) {
        router.get("healthz") { _, _ in
            Self.json(#"{"status":"ok"}"#, status: .ok)
        }
        router.get("readyz") { _, _ in
            await self.hub.storeAnswers()
                ? Self.json(#"{"status":"ready"}"#, status: .ok)
                : Self.json(#"{"status":"unavailable","reason":"database does not answer"}"#, status: .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            var bytes: [UInt8] = []
            self.metrics?.emit(into: &bytes)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
        router.get("openapi.yaml") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "application/yaml; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml))
            )
        }
    }

    static func json(_ text: String, status: HTTPResponse.Status) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: text))
        )
    }
}
