import Hummingbird
import Logging

/// Renders every error as `{"error": {"code", "message"}}`; an unexpected one is logged and
/// answered with a 500 that leaks nothing.
struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            if let apiError = APIError.from(error) {
                throw apiError
            }
            context.logger.error(
                "request failed", metadata: ["error": "\(String(reflecting: error))", "conduit.path": "\(request.uri.path)"]
            )
            throw APIError(status: .internalServerError, code: "internal", message: "internal error; see the server log")
        }
    }
}
