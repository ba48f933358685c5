import Crypto
import Foundation

/// Encrypts secrets at rest (AWS secret keys, device private keys) with AES-256-GCM under a
/// master key: from configuration, or a key file made on first use and readable by its owner only.
///
/// Sealed values read `v1:<base64 of nonce | ciphertext | tag>`; the version lets the format
/// change without losing what was sealed before.
public struct SecretBox: Sendable {
    private let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    /// The master key from base64 text (32 bytes), as `--master-key` or `CONDUIT_MASTER_KEY` give it.
    public init(base64 text: String) throws {
        guard let data = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), data.count == 32 else {
            throw HubError.invalidField("master key", "must be 32 bytes in base64 (openssl rand -base64 32)")
        }
        self.key = SymmetricKey(data: data)
    }

    /// The key in `path`, made there (mode 0600, folder 0700) when missing. A key file others can
    /// read is refused: it would expose every secret it protects.
    public static func loadOrCreate(keyFile path: String) throws -> SecretBox {
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            let attributes = try manager.attributesOfItem(atPath: path)
            if let permissions = attributes[.posixPermissions] as? NSNumber, permissions.intValue & 0o077 != 0 {
                throw HubError.invalidField(
                    "master key file", "\(path) must be readable by its owner only (chmod 600); it is \(String(permissions.intValue, radix: 8))"
                )
            }
            return try SecretBox(base64: String(contentsOfFile: path, encoding: .utf8))
        }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let key = SymmetricKey(size: .bits256)
        let text = key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n"
        // Created with its final mode, so there is no moment at which others could read it.
        guard manager.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw HubError.invalidField("master key file", "cannot create \(path)")
        }
        return SecretBox(key: key)
    }

    /// Seals a secret; each call uses a fresh random nonce.
    public func seal(_ plaintext: String) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: self.key)
        guard let combined = box.combined else { throw HubError.invalidField("secret", "could not be sealed") }
        return "v1:" + combined.base64EncodedString()
    }

    /// Opens a sealed secret; a wrong key or a changed byte is an error, never garbage.
    public func open(_ sealed: String) throws -> String {
        guard sealed.hasPrefix("v1:"), let data = Data(base64Encoded: String(sealed.dropFirst(3))) else {
            throw SecretBoxError.unreadable
        }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            return String(decoding: try AES.GCM.open(box, using: self.key), as: UTF8.self)
        } catch {
            throw SecretBoxError.unreadable
        }
    }
}

/// A sealed secret that cannot be opened: not ours, changed, or sealed under another master key.
public enum SecretBoxError: Error, Equatable {
    case unreadable
}
