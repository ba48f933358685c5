import Foundation
import Hub
import Hummingbird
import Mustache

/// The console's templates and assets, loaded once at start-up from the target's resources.
struct ConsoleRenderer: Sendable {
    let library: MustacheLibrary
    /// `/assets/{name}` → its bytes and content type.
    let assets: [String: (bytes: ByteBuffer, contentType: String)]

    static func load() async throws -> ConsoleRenderer {
        guard let templates = Bundle.module.url(forResource: "Templates", withExtension: nil),
            let assets = Bundle.module.url(forResource: "Assets", withExtension: nil)
        else {
            throw ConsoleSetupError("the console's templates are missing from the build (Console's resources)")
        }
        let library = try await MustacheLibrary(directory: templates.path)
        var loaded: [String: (ByteBuffer, String)] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: assets.path) {
            let data = try Data(contentsOf: assets.appendingPathComponent(name))
            let type = switch (name as NSString).pathExtension {
            case "css": "text/css; charset=utf-8"
            case "js": "text/javascript; charset=utf-8"
            case "svg": "image/svg+xml"
            case "png": "image/png"
            default: "application/octet-stream"
            }
            loaded[name] = (ByteBuffer(bytes: data), type)
        }
        return ConsoleRenderer(library: library, assets: loaded)
    }

    /// The page `template` rendered with `view`, as an HTML response.
    func page(_ template: String, _ view: some Sendable, status: HTTPResponse.Status = .ok, noStore: Bool = false) throws -> Response {
        guard let html = self.library.render(view, withTemplate: template) else {
            throw ConsoleSetupError("no console template named \(template)")
        }
        var headers: HTTPFields = [.contentType: "text/html; charset=utf-8"]
        // A page that shows a secret must not be kept by the browser or any cache.
        headers[.cacheControl] = noStore ? "no-store" : "no-cache"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }
}

struct ConsoleSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a button's action, then redirects to `back` with its message, or with the hub's refusal
/// (a 403 stays an error page: the button should not have been there).
func act(_ request: Request, back: String, _ body: () async throws -> String) async throws -> Response {
    do {
        return redirect(to: back, flash: .ok(try await body()), request: request)
    } catch let error as HubError where error.kind != .unauthenticated && error.kind != .forbidden {
        return redirect(to: back, flash: .error(error.message), request: request)
    }
}

/// A link to `path` with the query parameters that have a value, in order: a list page's
/// filters and cursor, kept across its pages.
func pageLink(_ path: String, _ parameters: [(String, String?)]) -> String {
    var components = URLComponents()
    components.path = path
    let items = parameters.compactMap { name, value in value.map { URLQueryItem(name: name, value: $0) } }
    components.queryItems = items.isEmpty ? nil : items
    return components.string ?? path
}

/// A 303 to `location` (POST → redirect → GET), with a message for the next page.
func redirect(to location: String, flash: Flash? = nil, request: Request) -> Response {
    var response = Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    if let flash {
        response.setCookie(ConsoleCookies.make(ConsoleCookies.flash, value: flash.cookieValue, maxAge: 60, request: request))
    }
    return response
}
