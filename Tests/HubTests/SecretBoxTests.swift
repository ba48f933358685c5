import Crypto
import Foundation
import Hub
import Synchronization
import Testing

@Suite("Secrets at rest")
struct SecretBoxTests {
    /// The row the tests' values are sealed for.
    static let row = SecretBinding.awsSecretKey(tenantID: "ten_a", integrationID: "int_1")

    static func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("conduit-key-\(UUID().uuidString)/master.key").path
    }

    @Test("sealed secrets open again, differ each time, and never contain the plaintext")
    func roundTrip() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
        let first = try box.seal(secret, for: Self.row)
        let second = try box.seal(secret, for: Self.row)
        #expect(first != second)
        #expect(first.hasPrefix("v2:") && !first.contains(secret))
        #expect(try box.open(first, for: Self.row) == secret)
        #expect(try box.open(second, for: Self.row) == secret)
    }

    @Test("another key, a changed byte or a foreign value cannot be opened")
    func tampering() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal("private key", for: Self.row)
        #expect(throws: SecretBoxError.unreadable) { try SecretBox(key: SymmetricKey(size: .bits256)).open(sealed, for: Self.row) }
        var bytes = Array(Data(base64Encoded: String(sealed.dropFirst(3)))!)
        bytes[bytes.count / 2] ^= 0x01
        #expect(throws: SecretBoxError.unreadable) { try box.open("v2:" + Data(bytes).base64EncodedString(), for: Self.row) }
        #expect(throws: SecretBoxError.unreadable) { try box.open("plain text", for: Self.row) }
    }

    @Test("a sealed value copied into another row, tenant or purpose does not open; a value sealed before rows were bound still does")
    func boundToItsRow() throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let sealed = try box.seal("AKIA secret of tenant A", for: Self.row)
        for elsewhere in [
            SecretBinding.awsSecretKey(tenantID: "ten_b", integrationID: "int_1"),  // the same row id in another tenant
            SecretBinding.awsSecretKey(tenantID: "ten_a", integrationID: "int_2"),  // another integration of the tenant
            SecretBinding.gatewayKey(tenantID: "ten_a", integrationID: "int_1"),  // the same row, another column
            SecretBinding.thingKey(tenantID: "ten_a", integrationID: "int_1", deviceID: "pump-1"),
        ] {
            #expect(throws: SecretBoxError.unreadable, "\(elsewhere)") { try box.open(sealed, for: elsewhere) }
        }
        // Fields that run together differently are different rows.
        let joined = try box.seal("x", for: SecretBinding(purpose: "p", tenantID: "a", row: "b/c"))
        #expect(throws: SecretBoxError.unreadable) { try box.open(joined, for: SecretBinding(purpose: "p", tenantID: "a/b", row: "c")) }
        // A v1 value (AES-GCM without additional data) opens, and is marked for sealing again.
        let key = SymmetricKey(size: .bits256)
        let legacy = "v1:" + (try AES.GCM.seal(Data("old".utf8), using: key).combined!).base64EncodedString()
        #expect(try SecretBox(key: key).open(legacy, for: Self.row) == "old")
        #expect(SecretBox.isLegacy(legacy) && !SecretBox.isLegacy(sealed))
    }

    @Test("the key file is made once, owner-only, and reused; a readable one is refused")
    func keyFile() throws {
        let path = Self.temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: (path as NSString).deletingLastPathComponent) }
        let sealed = try SecretBox.loadOrCreate(keyFile: path).seal("s3cret", for: Self.row)
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        #expect(try SecretBox.loadOrCreate(keyFile: path).open(sealed, for: Self.row) == "s3cret")
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: HubError.self) { try SecretBox.loadOrCreate(keyFile: path) }
    }

    @Test("starts racing on a new key file agree on one key: none overwrites a key another already uses")
    func concurrentFirstStart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-keys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var lost: [String] = []
        for round in 0..<30 {
            let path = directory + "/master-\(round).key"
            let go = Mutex(false)
            let boxes = Mutex<[SecretBox]>([])
            let threads = (0..<4).map { _ in
                Thread {
                    while !go.withLock({ $0 }) {}
                    if let box = try? SecretBox.loadOrCreate(keyFile: path) { boxes.withLock { $0.append(box) } }
                }
            }
            for thread in threads { thread.start() }
            go.withLock { $0 = true }
            while threads.contains(where: { !$0.isFinished }) { usleep(100) }
            // A secret sealed by any of them opens with the key in the file: none of them sealed
            // under a key that another start then replaced.
            let kept = try SecretBox.loadOrCreate(keyFile: path)
            let all = boxes.withLock { $0 }
            if all.count != 4 { lost.append("round \(round): \(4 - all.count) starts failed") }
            for box in all where (try? kept.open(try box.seal("probe", for: Self.row), for: Self.row)) != "probe" {
                lost.append("round \(round): a start's key is not the file's")
            }
        }
        #expect(lost.isEmpty)
    }

    @Test("the key file is readable by others at no moment, not even while it is being written")
    func neverReadable() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("conduit-keys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let exposed = Mutex<[String]>([])
        for attempt in 0..<40 {
            let path = directory + "/master-\(attempt).key"
            let done = Mutex(false)
            // The attacker: another user's process looking at the file as soon as it exists.
            let watcher = Thread {
                var status = stat()
                while !done.withLock({ $0 }) {
                    if stat(path, &status) == 0, status.st_mode & 0o077 != 0 {
                        exposed.withLock { $0.append("\(path): \(String(status.st_mode & 0o777, radix: 8))") }
                        return
                    }
                }
            }
            watcher.start()
            _ = try SecretBox.loadOrCreate(keyFile: path)
            done.withLock { $0 = true }
            while !watcher.isFinished { usleep(100) }
        }
        #expect(exposed.withLock { $0 }.isEmpty)
    }

    @Test("a configured master key must be 32 bytes of base64")
    func configuredKey() throws {
        let key = Data((0..<32).map { UInt8($0) }).base64EncodedString()
        let box = try SecretBox(base64: key)
        #expect(try box.open(try box.seal("x", for: Self.row), for: Self.row) == "x")
        #expect(throws: HubError.invalidField("master key", "must be 32 bytes in base64 (openssl rand -base64 32)")) {
            try SecretBox(base64: "c2hvcnQ=")
        }
    }
}
