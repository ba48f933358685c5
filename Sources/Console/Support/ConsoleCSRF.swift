import Crypto
import Foundation

/// CSRF tokens. A signed-in form carries an HMAC of the session's secret, which only a page of
/// that session can know and nothing needs to store; the sign-in and setup forms, before any
/// session, carry a random value that must equal their pre-session cookie (a double submit).
enum ConsoleCSRF {
    /// The token of a session's forms.
    static func token(forSession sessionToken: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("conduit-console-csrf".utf8), using: SymmetricKey(data: Data(sessionToken.utf8)))
        return Data(mac).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// A fresh random value for a pre-session cookie.
    static func random() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<24).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Compares in constant time.
    static func matches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented, !expected.isEmpty else { return false }
        let a = Array(presented.utf8)
        let b = Array(expected.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
