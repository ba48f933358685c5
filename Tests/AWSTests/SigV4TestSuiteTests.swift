import AWS
import Foundation
import Testing

/// The AWS signing test suite in ../shared/testdata/aws-sigv4: every case, both forms, byte for byte.
struct SigV4Case: Sendable, CustomTestStringConvertible {
    let name: String
    let directory: URL
    var testDescription: String { self.name }

    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("shared/testdata/aws-sigv4")

    static var all: [SigV4Case] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        return names.sorted().compactMap { name in
            let directory = root.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("context.json").path) else { return nil }
            return SigV4Case(name: name, directory: directory)
        }
    }

    func file(_ name: String) throws -> String {
        try String(contentsOf: self.directory.appendingPathComponent(name), encoding: .utf8)
    }

    struct Context: Decodable {
        struct Credentials: Decodable {
            let access_key_id: String
            let secret_access_key: String
            let token: String?
        }
        let credentials: Credentials
        let expiration_in_seconds: Int
        let normalize: Bool
        let region: String
        let service: String
        let sign_body: Bool
        let timestamp: String
        let omit_session_token: Bool?
    }

    func context() throws -> Context {
        try JSONDecoder().decode(Context.self, from: Data(self.file("context.json").utf8))
    }

    /// request.txt as a request: the request line, headers (continuation lines folded in), body.
    func request() throws -> AWSSigner.Request {
        let text = try self.file("request.txt")
        let (head, body) = text.range(of: "\n\n").map { (String(text[..<$0.lowerBound]), String(text[$0.upperBound...])) } ?? (text, "")
        var lines = head.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst()
        let words = requestLine.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        let target = words.dropFirst().dropLast().joined(separator: " ")
        let (path, query) = target.firstIndex(of: "?").map { (String(target[..<$0]), String(target[target.index(after: $0)...])) } ?? (target, "")
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
        }
        return AWSSigner.Request(method: words[0], path: path, query: query, headers: headers, body: Array(body.utf8))
    }
}

@Suite("SigV4: the AWS signing test suite")
struct SigV4TestSuiteTests {
    static let cases = SigV4Case.all

    static func signer(_ context: SigV4Case.Context) -> AWSSigner {
        AWSSigner(
            credentials: AWSCredentials(
                accessKeyID: context.credentials.access_key_id, secretAccessKey: context.credentials.secret_access_key,
                sessionToken: context.credentials.token
            ),
            region: context.region, service: context.service, normalizePath: context.normalize,
            payload: .signed(header: context.sign_body), omitSessionTokenFromSignature: context.omit_session_token ?? false
        )
    }

    static func date(_ timestamp: String) throws -> Date {
        try #require(try? Date(timestamp, strategy: .iso8601))
    }

    @Test("the suite is there")
    func suitePresent() {
        #expect(Self.cases.count == 38, "expected the AWS signing test suite at \(SigV4Case.root.path)")
    }

    @Test("header form: canonical request, string to sign, signature", arguments: cases)
    func headerForm(testCase: SigV4Case) throws {
        let context = try testCase.context()
        let signer = Self.signer(context)
        let date = try Self.date(context.timestamp)
        var request = try testCase.request()
        request.headers += signer.headersToSign(request, date: date)
        let canonical = signer.canonicalRequest(request, form: .header, date: date)
        #expect(canonical.text == (try testCase.file("header-canonical-request.txt")))
        #expect(signer.stringToSign(canonicalRequest: canonical.text, date: date) == (try testCase.file("header-string-to-sign.txt")))
        let signature = try testCase.file("header-signature.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(signer.signature(canonicalRequest: canonical.text, date: date) == signature)
        // And what signHeaders adds carries that signature.
        let added = signer.signHeaders(try testCase.request(), date: date)
        #expect(added.last?.name == "Authorization")
        #expect(added.last?.value.hasSuffix("Signature=\(signature)") == true)
        let signed = try testCase.file("header-signed-request.txt")
        for (name, value) in added {
            #expect(signed.contains("\(name):\(value)"), "\(name) missing from the signed request")
        }
    }

    @Test("query form: canonical request, string to sign, signature", arguments: cases)
    func queryForm(testCase: SigV4Case) throws {
        let context = try testCase.context()
        let signer = Self.signer(context)
        let date = try Self.date(context.timestamp)
        let request = try testCase.request()
        let canonical = signer.canonicalRequest(request, form: .query(expires: context.expiration_in_seconds), date: date)
        #expect(canonical.text == (try testCase.file("query-canonical-request.txt")))
        #expect(signer.stringToSign(canonicalRequest: canonical.text, date: date) == (try testCase.file("query-string-to-sign.txt")))
        let signature = try testCase.file("query-signature.txt").trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(signer.signature(canonicalRequest: canonical.text, date: date) == signature)
        let query = signer.presignedQuery(request, date: date, expires: context.expiration_in_seconds)
        #expect(query.hasSuffix("X-Amz-Signature=\(signature)"))
    }

    @Test("credentials never print their secret")
    func credentialsDescription() {
        let credentials = AWSCredentials(accessKeyID: "AKID", secretAccessKey: "very-secret", sessionToken: "token-secret")
        #expect(!"\(credentials)".contains("very-secret"))
        #expect(!"\(credentials)".contains("token-secret"))
        #expect("\(credentials)".contains("AKID"))
    }
}
