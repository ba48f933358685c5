import Crypto
import Foundation

/// Random secrets and their stored forms. API tokens and device secrets are 256-bit random
/// values made here, so a fast hash is enough: no password-guessing attack applies to them.
public enum Secrets {
    /// A new random secret with a recognisable prefix, e.g. `cdt_…` for API tokens.
    public static func generate(prefix: String, bytes: Int = 32) -> String {
        prefix + base64URL(randomBytes(bytes))
    }

    /// A random id with a prefix, e.g. `tok_3f9c…`.
    public static func identifier(prefix: String) -> String {
        prefix + hex(randomBytes(10))
    }

    /// The hex SHA-256 of a token: what is stored, and what a presented token is looked up by.
    public static func tokenHash(_ token: String) -> String {
        hex(SHA256.hash(data: Data(token.utf8)))
    }

    /// A salted hash of a device secret, `sha256$salt$hash`.
    public static func secretHash(_ secret: String) -> String {
        let salt = base64URL(randomBytes(16))
        return "sha256$\(salt)$\(saltedDigest(salt: salt, secret: secret))"
    }

    /// True when `secret` is the one `stored` was made from; compares in constant time.
    public static func verify(secret: String, against stored: String) -> Bool {
        let parts = stored.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "sha256" else { return false }
        return self.constantTimeEqual(String(parts[2]), saltedDigest(salt: String(parts[1]), secret: secret))
    }

    /// True when the two are equal, in a time that does not depend on where they differ.
    public static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        guard a.count == b.count else { return false }
        return zip(a, b).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }

    private static func saltedDigest(salt: String, secret: String) -> String {
        hex(SHA256.hash(data: Data((salt + "$" + secret).utf8)))
    }

    static func randomBytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
