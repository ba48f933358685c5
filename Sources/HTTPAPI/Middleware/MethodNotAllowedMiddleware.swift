import HTTPTypes
import Hummingbird

/// Answers 405 with `Allow` when a request's path is a route but its method is not.
///
/// Hummingbird sends a request whose path and method match no route to the router's
/// not-found responder, wrapped in every router middleware. A route's own chain is fixed when
/// the route is added, so this middleware, added after the last route, runs only on that
/// not-found path, where it looks the path up among the routes it was given.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: [(path: RouterPath, method: HTTPRequest.Method)]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let segments = request.uri.path.split(separator: "/", omittingEmptySubsequences: true)
            // Exactly the routes' methods: HEAD is not served for GET routes, so it is not offered.
            let allowed = Set(self.routes.filter { Self.matches($0.path, segments) }.map(\.method.rawValue))
            guard !allowed.isEmpty, !allowed.contains(request.method.rawValue) else { throw error }
            let list = allowed.sorted()
            throw APIError(
                status: .methodNotAllowed, code: "method_not_allowed",
                message: "\(request.method.rawValue) is not allowed on \(request.uri.path): use \(list.joined(separator: ", "))",
                allow: list
            )
        }
    }

    /// Whether a route's path pattern matches a request's path segments.
    static func matches(_ pattern: RouterPath, _ segments: [Substring]) -> Bool {
        var index = 0
        for element in pattern.components {
            if element == .recursiveWildcard { return true }
            guard index < segments.count, element ~= segments[index] else { return false }
            index += 1
        }
        return index == segments.count
    }
}
