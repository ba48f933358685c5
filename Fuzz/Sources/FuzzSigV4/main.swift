import AWS
import CLibFuzzer
import Foundation
import Glibc

/// libFuzzer's entry: SigV4 canonicalisation and signing of an arbitrary request.
///
/// ```
/// +-------+-----------------+----------------------------------------------------------------+
/// | flags | date            | method 00 path 00 query 00 body 00 name 00 value 00 name ...    |
/// | 1     | 4 (big endian,  | (each field UTF-8, ill-formed bytes repaired as U+FFFD)        |
/// |       | seconds, 1970-) |                                                                |
/// +-------+-----------------+----------------------------------------------------------------+
/// flags: 0x01 normalize path, 0x02 presigned URL (else Authorization header), 0x04 session token,
///        0x08 token added after signing, 0x10 hash the body (else UNSIGNED-PAYLOAD),
///        0x20 x-amz-content-sha256 header, 0x40 signing-key cache
/// ```
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    guard bytes.count >= 5 else { return 0 }
    let flags = bytes[0]
    let seconds = bytes[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    let fields = bytes[5...].split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    func field(_ index: Int) -> String { index < fields.count ? fields[index] : "" }
    var headers: [(name: String, value: String)] = []
    var index = 4
    while index < fields.count {
        headers.append((fields[index], field(index + 1)))
        index += 2
    }
    let request = AWSSigner.Request(
        method: field(0), path: field(1), query: field(2), headers: headers, body: Array(field(3).utf8)
    )
    let credentials = AWSCredentials(
        accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        sessionToken: flags & 0x04 != 0 ? "IQoJb3JpZ2luX2VjEXAMPLE/token+with=odd&chars" : nil
    )
    let signer = AWSSigner(
        credentials: credentials, region: "eu-west-1", service: "iotdata", normalizePath: flags & 0x01 != 0,
        payload: flags & 0x10 != 0 ? .signed(header: flags & 0x20 != 0) : .unsigned,
        omitSessionTokenFromSignature: flags & 0x08 != 0, signingKeys: flags & 0x40 != 0 ? signingKeys : nil
    )
    let date = Date(timeIntervalSince1970: TimeInterval(seconds))
    let form: AWSSigner.Form = flags & 0x02 != 0 ? .query(expires: 300) : .header

    for text in [request.method, request.path, request.query] + headers.flatMap({ [$0.name, $0.value] }) {
        checkURIEncoding(text)
    }
    checkCanonicalRequest(signer: signer, request: request, form: form, date: date)
    switch form {
    case .header:
        checkHeaderSignature(signer: signer, request: request, date: date, seconds: seconds)
    case .query(let expires):
        let query = signer.presignedQuery(request, date: date, expires: expires)
        guard let range = query.range(of: "&X-Amz-Signature=", options: .backwards), isLowerHex(query[range.upperBound...], count: 64)
        else { fatal("presigned query does not end in a signature: \(query)", request) }
    }
    return 0
}

let signingKeys = AWSSigningKeyCache()
/// `CONDUIT_FUZZ_DEBUG=1 FuzzSigV4 file...` prints each input's canonical request.
let debug = getenv("CONDUIT_FUZZ_DEBUG") != nil

/// The canonical request is a function of the request: the same twice, and the same whatever the
/// order of headers of different names. Its path and query lines are URI-encoded, the query's
/// pairs sorted; its header lines are lower-case names, sorted, with trimmed values.
func checkCanonicalRequest(signer: AWSSigner, request: AWSSigner.Request, form: AWSSigner.Form, date: Date) {
    let canonical = signer.canonicalRequest(request, form: form, date: date)
    if debug { print("canonical request:\n\(canonical.text)\n") }
    let again = signer.canonicalRequest(request, form: form, date: date)
    guard canonical.text == again.text, canonical.query == again.query, canonical.signedHeaders == again.signedHeaders else {
        fatal("canonicalRequest is not deterministic", request)
    }
    let names = request.headers.map { $0.name.lowercased() }
    if Set(names).count == names.count {
        var reordered = request
        reordered.headers.reverse()
        guard signer.canonicalRequest(reordered, form: form, date: date).text == canonical.text else {
            fatal("the order of the headers changed the canonical request", request)
        }
    }

    // Read as bytes: a method or value that ends in CR would join the next line break into one
    // Character.
    let text = Array(canonical.text.utf8)
    let method = Array(request.method.uppercased().utf8) + [newline]
    guard text.starts(with: method) else { fatal("the canonical request does not start with the method", request) }
    let lines = text[method.count...].split(separator: newline, maxSplits: 2, omittingEmptySubsequences: false)
    guard lines.count == 3 else { fatal("the canonical request has no path and query lines", request) }
    let path = String(decoding: lines[0], as: UTF8.self)
    let query = String(decoding: lines[1], as: UTF8.self)
    guard isURIEncoded(path.utf8, slashes: true) else { fatal("canonical path '\(path)' is not URI-encoded", request) }
    if signer.normalizePath {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard path.hasPrefix("/"), !segments.dropFirst().dropLast().contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }),
            segments.last != ".", segments.last != ".."
        else { fatal("canonical path '\(path)' is not normalized", request) }
    }
    guard query == canonical.query else { fatal("the query line is not the canonical query", request) }
    let pairs = query.isEmpty ? [] : query.split(separator: "&", omittingEmptySubsequences: false).map {
        $0.split(separator: "=", omittingEmptySubsequences: false)
    }
    for pair in pairs where pair.count != 2 || !isURIEncoded(pair[0].utf8) || !isURIEncoded(pair[1].utf8) {
        fatal("canonical query pair '\(pair.joined(separator: "="))' is not name=value, URI-encoded", request)
    }
    for (left, right) in zip(pairs, pairs.dropFirst()) where (right[0], right[1]) < (left[0], left[1]) {
        fatal("canonical query is not sorted: \(query)", request)
    }

    // Then the header lines, a blank line, the signed headers, and the payload hash.
    let rest = lines[2]
    guard let lastBreak = rest.lastIndex(of: newline) else { fatal("the canonical request has no payload hash", request) }
    let payloadHash = String(decoding: rest[(lastBreak + 1)...], as: UTF8.self)
    guard signer.payload == .unsigned ? payloadHash == "UNSIGNED-PAYLOAD" : isLowerHex(payloadHash[...], count: 64) else {
        fatal("payload hash '\(payloadHash)' is neither a SHA-256 nor UNSIGNED-PAYLOAD", request)
    }
    let signedHeaders = [newline] + Array(canonical.signedHeaders.utf8)
    guard rest[..<lastBreak].reversed().starts(with: signedHeaders.reversed()) else {
        fatal("the canonical request does not end with its signed headers and payload hash", request)
    }
    // Header names are HTTP tokens wherever they come from; with such names the header block can
    // be read back line by line.
    guard request.headers.allSatisfy({ isToken($0.name) }) else { return }
    let block = rest[..<lastBreak].dropLast(signedHeaders.count)
    guard block.isEmpty || block.last == newline else { fatal("header block does not end in a line break", request) }
    let headerLines = block.split(separator: newline, omittingEmptySubsequences: false).dropLast()
    let distinct = Set(names).sorted()
    guard headerLines.count == distinct.count else {
        fatal("\(distinct.count) header names gave \(headerLines.count) canonical header lines", request)
    }
    for (line, name) in zip(headerLines, distinct) {
        let prefix = Array(name.utf8) + [UInt8(ascii: ":")]
        guard line.starts(with: prefix) else {
            fatal("canonical header line '\(String(decoding: line, as: UTF8.self))' is not for '\(name)'", request)
        }
        let value = String(decoding: line.dropFirst(prefix.count), as: UTF8.self).unicodeScalars
        let blank: Set<Unicode.Scalar> = [" ", "\t", "\r", "\n"]
        guard value.first.map({ !blank.contains($0) }) ?? true, value.last.map({ !blank.contains($0) }) ?? true,
            !value.contains("\t"), !value.contains("\r"),
            !zip(value, value.dropFirst()).contains(where: { $0 == " " && $1 == " " })
        else { fatal("canonical value of '\(name)' is not trimmed and collapsed: \(Array(value))", request) }
    }
    guard canonical.signedHeaders == distinct.joined(separator: ";") else {
        fatal("signed headers '\(canonical.signedHeaders)' are not the sorted lower-case names", request)
    }
}

let newline = UInt8(ascii: "\n")

/// The header form adds X-Amz-Date (the date, in UTC) and ends with the Authorization header,
/// whose signature does not depend on the signing-key cache.
func checkHeaderSignature(signer: AWSSigner, request: AWSSigner.Request, date: Date, seconds: UInt32) {
    let added = signer.signHeaders(request, date: date)
    guard let authorization = added.last, authorization.name == "Authorization",
        let range = authorization.value.range(of: ", Signature="), isLowerHex(authorization.value[range.upperBound...], count: 64)
    else { fatal("signHeaders does not end with an Authorization header and its signature", request) }
    var time = time_t(seconds)
    var parts = tm()
    gmtime_r(&time, &parts)
    let expected = String(
        format: "%04d%02d%02dT%02d%02d%02dZ", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour, parts.tm_min,
        parts.tm_sec
    )
    guard added.contains(where: { $0.name == "X-Amz-Date" && $0.value == expected }) else {
        fatal("X-Amz-Date for \(seconds) is not \(expected): \(added)", request)
    }
    var uncached = signer
    uncached.signingKeys = uncached.signingKeys == nil ? signingKeys : nil
    guard uncached.signHeaders(request, date: date).last?.value == authorization.value else {
        fatal("the signing-key cache changed the signature", request)
    }
}

/// uriEncode leaves only unreserved characters and %XX escapes, and decodes back to its input.
func checkURIEncoding(_ text: String) {
    let encoded = AWSSigner.uriEncode(text)
    guard isURIEncoded(encoded.utf8) else { fatal("uriEncode(\(text.debugDescription)) = \(encoded) has other characters") }
    guard encoded.removingPercentEncoding == text else { fatal("uriEncode(\(text.debugDescription)) = \(encoded) does not decode back") }
}

/// Only `A-Z a-z 0-9 - _ . ~` and `%XX` (upper-case hex), and `/` too when `slashes`.
func isURIEncoded(_ text: some Sequence<UInt8>, slashes: Bool = false) -> Bool {
    var bytes = text.makeIterator()
    while let byte = bytes.next() {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
            continue
        case UInt8(ascii: "%"):
            for _ in 0..<2 {
                guard let digit = bytes.next(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(digit)
                    || (UInt8(ascii: "A")...UInt8(ascii: "F")).contains(digit)
                else { return false }
            }
        case UInt8(ascii: "/") where slashes: continue
        default: return false
        }
    }
    return true
}

func isLowerHex(_ text: Substring, count: Int) -> Bool {
    text.utf8.count == count && text.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
}

/// An HTTP header name: RFC 9110's `token`.
func isToken(_ name: String) -> Bool {
    !name.isEmpty && name.utf8.allSatisfy { byte in
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || "!#$%&'*+-.^_`|~".utf8.contains(byte)
    }
}

func fatal(_ message: String, _ request: AWSSigner.Request? = nil) -> Never {
    if let request {
        fatalError("\(message)\nrequest: \(request.method.debugDescription) \(request.path.debugDescription) ?\(request.query.debugDescription) \(request.headers)")
    }
    fatalError(message)
}

var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
