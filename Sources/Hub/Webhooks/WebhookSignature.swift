import Crypto
import Foundation

/// Standard Webhooks' signing: `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`
/// with the secret's key, space-separated signatures when more than one key signs.
public enum WebhookSignature {
    /// Secrets are `whsec_` and 32 random bytes in base64, as Standard Webhooks' libraries take them.
    public static let secretPrefix = "whsec_"

    public static func newSecret() -> String {
        self.secretPrefix + Data(SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }).base64EncodedString()
    }

    /// The key a secret stands for; nil when it is not one of ours.
    static func key(of secret: String) -> SymmetricKey? {
        guard secret.hasPrefix(self.secretPrefix), let bytes = Data(base64Encoded: String(secret.dropFirst(self.secretPrefix.count))), bytes.count >= 24 else {
            return nil
        }
        return SymmetricKey(data: bytes)
    }

    /// The `webhook-signature` header's value: one `v1,` signature per secret.
    public static func header(id: String, timestamp: Int, body: String, secrets: [String]) -> String {
        let content = Data("\(id).\(timestamp).\(body)".utf8)
        return secrets.compactMap(self.key).map { key in
            "v1," + Data(HMAC<SHA256>.authenticationCode(for: content, using: key)).base64EncodedString()
        }.joined(separator: " ")
    }
}
