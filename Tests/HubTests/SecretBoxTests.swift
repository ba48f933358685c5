import Crypto
import Foundation
import Hub
import Testing

@Suite("Secrets at rest")
struct SecretBoxTests {
    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("conduit-key-\(UUID().uuidString)/master.key").path
    }

    @Test("sealed secrets open again, differ each time, and never contain the plaintext")
    func roundTrip() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        let first = try box.seal(secret)
        let second = try box.seal(secret)
        #expect(first != second)
        #expect(first.hasPrefix("v1:") && !first.contains(secret))
        #expect(try box.open(first) == secret)
        #expect(try box.open(second) == secret)
    }

    @Test("another key, a changed byte or a foreign value cannot be opened")
    func tampering() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal("private key")
        #expect(throws: SecretBoxError.unreadable) { try SecretBox(key: SymmetricKey(size: .bits256)).open(sealed) }
        var bytes = Array(Data(base64Encoded: String(sealed.dropFirst(3)))!)
        bytes[bytes.count / 2] ^= 0x01
        #expect(throws: SecretBoxError.unreadable) { try box.open("v1:" + Data(bytes).base64EncodedString()) }
        #expect(throws: SecretBoxError.unreadable) { try box.open("plain text") }
    }

    @Test("the key file is made once, owner-only, and reused; a readable one is refused")
    func keyFile() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let sealed = try SecretBox.loadOrCreate(keyFile: path).seal("s3cret")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(try SecretBox.loadOrCreate(keyFile: path).open(sealed) == "s3cret")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: HubError.self) { try SecretBox.loadOrCreate(keyFile: path) }
    }

    @Test("a configured master key must be 32 bytes of base64")
    func configuredKey() throws {
        let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let box = try SecretBox(base64: key)
        #expect(try box.open(try box.seal("x")) == "x")
        #expect(throws: HubError.invalidField("master key", "must be 32 bytes in base64 (openssl rand -base64 32)")) {
            try SecretBox(base64: "c2hvcnQ=")
        }
    }
}
