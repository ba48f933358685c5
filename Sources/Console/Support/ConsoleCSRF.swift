import Crypto
import Foundation
import Hub

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
    static func random() -> String { Secrets.generate(prefix: "", bytes: 24) }

    /// Compares in constant time.
    static func matches(_ presented: String?, _ expected: String) -> Bool {
        guard let presented, !expected.isEmpty else { return false }
        return Secrets.constantTimeEqual(presented, expected)
    }
}
