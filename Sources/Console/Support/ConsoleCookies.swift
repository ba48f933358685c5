import Foundation
import HTTPAPI
import Hummingbird

/// The console's cookies: the session, the sign-in form's CSRF secret, and the one-shot flash message.
enum ConsoleCookies {
    static let session = "conduit_session"
    static let preSession = "conduit_presession"
    static let flash = "conduit_flash"

    /// `Secure` when the browser reached Conduit over TLS (through a proxy that says so).
    static func isSecure(_ request: Request) -> Bool {
        if request.headers[.init("X-Forwarded-Proto")!]?.lowercased() == "https" { return true }
        if let forwarded = request.headers[.init("Forwarded")!]?.lowercased(), forwarded.contains("proto=https") { return true }
        return request.uri.scheme == .https
    }

    static func make(_ name: String, value: String, maxAge: Int?, request: Request) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: self.isSecure(request), httpOnly: true, sameSite: .lax)
    }

    static func clear(_ name: String, request: Request) -> Cookie {
        self.make(name, value: "", maxAge: 0, request: request)
    }
}

/// A message shown once on the next page, after a redirect.
struct Flash: Sendable {
    enum Kind: String, Sendable {
        case ok, error
    }

    var kind: Kind
    var text: String

    static func ok(_ text: String) -> Flash { Flash(kind: .ok, text: text) }
    static func error(_ text: String) -> Flash { Flash(kind: .error, text: text) }

    /// As a cookie value: `ok:` or `error:`, then the text percent-encoded. Cut to 300
    /// characters, so that it stays well inside a browser's 4 KB per cookie even when each
    /// character takes nine bytes encoded (a cookie past the limit is dropped, message and all).
    var cookieValue: String {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let text = self.text.count > 300 ? String(self.text.prefix(299)) + "…" : self.text
        return "\(self.kind.rawValue):" + (text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")
    }

    init(kind: Kind, text: String) {
        self.kind = kind
        self.text = text
    }

    init?(cookieValue: String) {
        guard let colon = cookieValue.firstIndex(of: ":"), let kind = Kind(rawValue: String(cookieValue[..<colon])),
            let text = String(cookieValue[cookieValue.index(after: colon)...]).removingPercentEncoding
        else { return nil }
        self.init(kind: kind, text: text)
    }
}

/// The address a request came from, for per-address limits: the TCP peer, or, when the peer is
/// a proxy on this machine (loopback), the address it says it forwarded for (the last entry of
/// `X-Forwarded-For`, the one that proxy added). Conduit listens on loopback by default, so a
/// reverse proxy in front of it is the usual way in; without this, every person would share the
/// proxy's address and one could lock out all.
func clientAddress(_ request: Request, _ context: ConduitRequestContext) -> String {
    let peer = context.remoteAddress
    guard peer.hasPrefix("127.") || peer == "::1",
        let forwarded = request.headers[.init("X-Forwarded-For")!]?.split(separator: ",").last?.trimmingCharacters(in: .whitespaces),
        !forwarded.isEmpty, forwarded.utf8.count <= 64
    else { return peer }
    return forwarded
}
