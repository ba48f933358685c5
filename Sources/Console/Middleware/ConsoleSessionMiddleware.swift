import Hub
import Hummingbird
import HTTPAPI

/// Signs the request in from its session cookie, or sends the browser to sign in; and refuses
/// any POST whose form does not carry the session's CSRF token, before the route runs.
struct ConsoleSessionMiddleware: RouterMiddleware {
    let hub: Hub

    func handle(
        _ request: Request, context: ConduitRequestContext, next: (Request, ConduitRequestContext) async throws -> Response
    ) async throws -> Response {
        var request = request
        var context = context
        // A live view's stream reconnecting by itself is not the person at work: it must not keep an idle session alive.
        let isLiveStream = request.uri.path.hasSuffix("/live")
        guard let token = request.cookies[ConsoleCookies.session]?.value,
            let signedIn = try await self.hub.consoleAccounts.authenticate(sessionToken: token, recordingUse: !isLiveStream)
        else {
            // Back here after signing in, for a page; a form posted from an ended session is not replayed.
            var target = "/login"
            if request.method == .get, let path = request.uri.path.removingPercentEncoding, path != "/" {
                target += "?next=" + (request.uri.description.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
            }
            var response = redirect(to: target, flash: request.method == .get ? nil : .error("Your session had ended: sign in again."), request: request)
            if request.cookies[ConsoleCookies.session] != nil {
                response.setCookie(ConsoleCookies.clear(ConsoleCookies.session, request: request))
            }
            return response
        }
        context.signedIn = signedIn
        context.principal = signedIn.principal
        if request.method != .get && request.method != .head {
            let form = try await ConsoleForm(request: &request, context: context)
            guard ConsoleCSRF.matches(form.raw("csrf"), ConsoleCSRF.token(forSession: token)) else {
                throw HTTPError(.forbidden, message: "This form was refused: its CSRF token is missing or does not belong to your session. Nothing was changed; reload the page and try again.")
            }
        }
        return try await next(request, context)
    }
}
