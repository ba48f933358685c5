import Foundation
import Hub
import Hummingbird

/// Percent-decodes the values a route captured from its path (`{id}` and the like), for every
/// route added after it: the API's and the console's.
///
/// Hummingbird matches routes on the path as sent and hands captures over still encoded, so a
/// device `meter:7` that a client addresses as `/v1/devices/meter%3A7` (as most HTTP clients
/// write a colon) would otherwise be looked up as `meter%3A7` and not found. Decoding after the
/// match keeps an encoded `/` inside one segment. A capture that is not valid percent-encoding is
/// refused, naming the parameter.
struct PathParametersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard context.parameters.contains(where: { $0.value.contains("%") }) else { return try await next(request, context) }
        var context = context
        context.coreContext.parameters = Parameters(
            try context.parameters.map { name, value in
                guard value.contains("%") else { return (name, value) }
                guard let plain = value.removingPercentEncoding else {
                    throw HubError.invalidField(String(name), "is not valid percent-encoding (a % must be followed by two hex digits of UTF-8)")
                }
                return (name, plain[...])
            }
        )
        return try await next(request, context)
    }
}
