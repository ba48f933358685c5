import Hub
import Hummingbird
import HTTPAPI
import Logging

/// Renders errors on console pages as pages, not JSON: a 403 says what the role may not do, a
/// 404 what is missing; anything unexpected is logged and shown without detail.
struct ConsoleErrorMiddleware: RouterMiddleware {
    let renderer: ConsoleRenderer

    struct ErrorPage: Sendable {
        var chrome: Chrome
        var status: Int
        var message: String
    }

    func handle(
        _ request: Request, context: ConduitRequestContext, next: (Request, ConduitRequestContext) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let (status, message) = Self.describe(error)
            if status == .internalServerError {
                context.logger.error(
                    "console request failed", metadata: ["error": "\(String(reflecting: error))", "conduit.path": "\(request.uri.path)"]
                )
            }
            let chrome = Chrome(title: status.reasonPhrase, section: .none, signedIn: context.signedIn, flash: nil)
            return try self.renderer.page("error", ErrorPage(chrome: chrome, status: status.code, message: message), status: status)
        }
    }

    static func describe(_ error: any Error) -> (HTTPResponse.Status, String) {
        if let error = error as? HubError { return (error.httpStatus, error.message) }
        if let error = error as? HTTPError {
            return (error.status, error.body ?? error.status.reasonPhrase)
        }
        return (.internalServerError, "Something went wrong on the server; it is in the server's log.")
    }
}
