import Crypto
import Foundation
import Store
#if canImport(Glibc)
import Glibc
#endif

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
    ///
    /// The file is made in one step, `open(O_CREAT | O_EXCL, 0600)`: it never exists with a wider
    /// mode, and of two processes starting at once on a new file, one makes the key and the other
    /// reads it (neither seals under a key the other then replaces).
    public static func loadOrCreate(keyFile path: String) throws -> SecretBox {
        if FileManager.default.fileExists(atPath: path) { return try self.load(keyFile: path) }
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let key = SymmetricKey(size: .bits256)
        let text = Array((key.withUnsafeBytes { Data($0).base64EncodedString() } + "\n").utf8)
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            let error = errno
            if error == EEXIST { return try self.load(keyFile: path) }
            throw HubError.invalidField("master key file", "cannot create \(path): \(String(cString: strerror(error)))")
        }
        var written = 0
        var failure: Int32?
        while written < text.count {
            let count = text[written...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                failure = errno
                break
            }
            written += count
        }
        if failure == nil, fsync(descriptor) != 0 { failure = errno }
        Glibc.close(descriptor)
        if let failure {
            // A key half written is no key: nothing may be sealed under it.
            unlink(path)
            throw HubError.invalidField("master key file", "cannot write \(path): \(String(cString: strerror(failure)))")
        }
        return SecretBox(key: key)
    }

    /// Reads an existing key file. One shorter than a key may be another process's, made a moment
    /// ago and still being written: it is read again for up to 5 s.
    private static func load(keyFile path: String) throws -> SecretBox {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let permissions = attributes[.posixPermissions] as? NSNumber, permissions.intValue & 0o077 != 0 {
            throw HubError.invalidField(
                "master key file", "\(path) must be readable by its owner only (chmod 600); it is \(String(permissions.intValue, radix: 8))"
            )
        }
        let deadline = Date().addingTimeInterval(5)
        while true {
            let text = try String(contentsOfFile: path, encoding: .utf8)
            do {
                return try SecretBox(base64: text)
            } catch {
                // 32 bytes are 44 characters of base64.
                guard text.utf8.count < 44, Date() < deadline else { throw error }
                usleep(10_000)
            }
        }
    }

    /// Seals a secret for the row it is stored in; each call uses a fresh random nonce. The
    /// binding is AES-GCM's additional data: the value opens only for the same tenant, row and
    /// purpose, so a sealed value copied into another row (another tenant's integration, another
    /// device's job) does not open there.
    public func seal(_ plaintext: String, for binding: SecretBinding) throws -> String {
        let box = try AES.GCM.seal(Data(plaintext.utf8), using: self.key, authenticating: binding.additionalData)
        guard let combined = box.combined else { throw HubError.invalidField("secret", "could not be sealed") }
        return "v2:" + combined.base64EncodedString()
    }

    /// Opens a sealed secret for the row it was read from; a wrong key, a changed byte or
    /// another row is an error, never garbage. A `v1:` value (sealed before values were bound
    /// to their rows) opens without a binding; ``isLegacy(_:)`` finds those to seal again.
    public func open(_ sealed: String, for binding: SecretBinding) throws -> String {
        let bound = sealed.hasPrefix("v2:")
        guard bound || sealed.hasPrefix("v1:"), let data = Data(base64Encoded: String(sealed.dropFirst(3))) else {
            throw SecretBoxError.unreadable
        }
        do {
            let box = try AES.GCM.SealedBox(combined: data)
            let plaintext = bound ? try AES.GCM.open(box, using: self.key, authenticating: binding.additionalData) : try AES.GCM.open(box, using: self.key)
            return String(decoding: plaintext, as: UTF8.self)
        } catch {
            throw SecretBoxError.unreadable
        }
    }

    /// A value sealed in the first format, bound to no row.
    public static func isLegacy(_ sealed: String) -> Bool { sealed.hasPrefix("v1:") }
}

/// The row a sealed value belongs to: its purpose, its tenant and the row's key.
public struct SecretBinding: Sendable, Equatable {
    public let purpose: String
    public let tenantID: String
    public let row: String

    public init(purpose: String, tenantID: String, row: String) {
        self.purpose = purpose
        self.tenantID = tenantID
        self.row = row
    }

    /// An integration's AWS secret access key.
    public static func awsSecretKey(tenantID: String, integrationID: String) -> SecretBinding {
        SecretBinding(purpose: "integration.secretAccessKey", tenantID: tenantID, row: integrationID)
    }

    /// The private key of an integration's own gateway certificate.
    public static func gatewayKey(tenantID: String, integrationID: String) -> SecretBinding {
        SecretBinding(purpose: "integration.gatewayPrivateKey", tenantID: tenantID, row: integrationID)
    }

    /// The private key Conduit made for a device's (or a gateway's) thing in an integration.
    public static func thingKey(tenantID: String, integrationID: String, deviceID: String) -> SecretBinding {
        SecretBinding(purpose: "awsThing.privateKey", tenantID: tenantID, row: "\(integrationID)/\(deviceID)")
    }

    /// A webhook's signing secret, and the one before it while it still signs.
    public static func webhookSecret(tenantID: String, webhookID: String) -> SecretBinding {
        SecretBinding(purpose: "webhook.secret", tenantID: tenantID, row: webhookID)
    }

    public static func thingKey(_ job: ProvisioningJob) -> SecretBinding {
        self.thingKey(tenantID: job.tenantID, integrationID: job.integrationID, deviceID: job.deviceID)
    }

    /// NUL-separated, so that no two bindings read alike.
    var additionalData: Data { Data("conduit.sealed.v2\u{0}\(self.purpose)\u{0}\(self.tenantID)\u{0}\(self.row)".utf8) }
}

/// A sealed secret that cannot be opened: not ours, changed, or sealed under another master key.
public enum SecretBoxError: Error, Equatable {
    case unreadable
}
