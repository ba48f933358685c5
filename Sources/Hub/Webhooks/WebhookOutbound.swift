import AWS
import Backoff
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// How the hub sends webhooks: which endpoints it may call, how it retries, how long it tries.
public struct WebhookEnvironment: Sendable {
    /// `scheme://host:port` entries the operator lets webhooks use beside public addresses
    /// (`--webhook-allowlist`): the only way to a private, loopback or link-local address.
    public var allowlist: AWSEndpointAllowlist
    /// The wait before each try again: doubling from `first` to `maximum`, with jitter.
    public var retry: Backoff
    /// How long a delivery is tried before it is given up (and kept, to be sent again).
    public var maximumAge: TimeInterval
    /// The longest `Retry-After` honoured; a longer one waits this long.
    public var maximumRetryAfter: TimeInterval
    /// One try's time limit.
    public var timeout: TimeInterval
    /// How long a rotated secret still signs beside the new one.
    public var previousSecretLifetime: TimeInterval
    /// The addresses a host name resolves to; the system's resolver by default.
    public var resolve: @Sendable (_ host: String, _ port: Int) async throws -> [String]

    public init(
        allowlist: AWSEndpointAllowlist = AWSEndpointAllowlist(), retry: Backoff = Backoff(first: 5, maximum: 3600, jitter: 0.5...1.5),
        maximumAge: TimeInterval = 3 * 86_400, maximumRetryAfter: TimeInterval = 6 * 3600, timeout: TimeInterval = 15,
        previousSecretLifetime: TimeInterval = 86_400,
        resolve: @escaping @Sendable (_ host: String, _ port: Int) async throws -> [String] = WebhookAddresses.resolve
    ) {
        self.allowlist = allowlist
        self.retry = retry
        self.maximumAge = maximumAge
        self.maximumRetryAfter = maximumRetryAfter
        self.timeout = timeout
        self.previousSecretLifetime = previousSecretLifetime
        self.resolve = resolve
    }
}

/// Which addresses a webhook may reach without the operator's say: public unicast ones only.
public enum WebhookAddresses {
    /// Why `address` is not a public unicast address (`loopback`, `private`...), or nil when it is.
    public static func nonPublicKind(_ address: String) -> String? {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return self.nonPublicKind(ipv4: UInt32(bigEndian: v4.s_addr))
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return "not an address" }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        let isZero = { (range: Range<Int>) in bytes[range].allSatisfy { $0 == 0 } }
        if isZero(0..<16) { return "unspecified" }
        if isZero(0..<15) && bytes[15] == 1 { return "loopback" }
        // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d) and NAT64 (64:ff9b::/96) reach the IPv4 address.
        let embedded = UInt32(bytes[12]) << 24 | UInt32(bytes[13]) << 16 | UInt32(bytes[14]) << 8 | UInt32(bytes[15])
        if isZero(0..<10) && bytes[10] == 0xFF && bytes[11] == 0xFF { return self.nonPublicKind(ipv4: embedded) }
        if isZero(0..<12) { return self.nonPublicKind(ipv4: embedded) }
        if bytes[0] == 0x00 && bytes[1] == 0x64 && bytes[2] == 0xFF && bytes[3] == 0x9B && isZero(4..<12) { return self.nonPublicKind(ipv4: embedded) }
        if bytes[0] & 0xFE == 0xFC { return "private (unique local)" }
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0x80 { return "link-local" }
        if bytes[0] == 0xFE && bytes[1] & 0xC0 == 0xC0 { return "site-local" }
        if bytes[0] == 0xFF { return "multicast" }
        if bytes[0] == 0x20 && bytes[1] == 0x01 && bytes[2] == 0x0D && bytes[3] == 0xB8 { return "documentation" }
        if bytes[0] == 0x01 && bytes[1] == 0x00 && isZero(2..<8) { return "discard-only" }
        // 6to4 (2002::/16) carries an IPv4 address in its next 32 bits.
        if bytes[0] == 0x20 && bytes[1] == 0x02 {
            let inner = UInt32(bytes[2]) << 24 | UInt32(bytes[3]) << 16 | UInt32(bytes[4]) << 8 | UInt32(bytes[5])
            return self.nonPublicKind(ipv4: inner)
        }
        return nil
    }

    static func nonPublicKind(ipv4 address: UInt32) -> String? {
        func within(_ base: UInt32, _ bits: UInt32) -> Bool {
            let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
            return address & mask == base & mask
        }
        let ranges: [(base: UInt32, bits: UInt32, kind: String)] = [
            (0x0000_0000, 8, "unspecified (0.0.0.0/8)"), (0x0A00_0000, 8, "private"), (0x6440_0000, 10, "shared (carrier-grade NAT)"),
            (0x7F00_0000, 8, "loopback"), (0xA9FE_0000, 16, "link-local (where cloud metadata services answer)"), (0xAC10_0000, 12, "private"),
            (0xC000_0000, 24, "IETF protocol assignments"), (0xC000_0200, 24, "documentation"), (0xC058_6300, 24, "6to4 relay"),
            (0xC0A8_0000, 16, "private"), (0xC612_0000, 15, "benchmarking"), (0xC633_6400, 24, "documentation"), (0xCB00_7100, 24, "documentation"),
            (0xE000_0000, 4, "multicast"), (0xF000_0000, 4, "reserved"),
        ]
        return ranges.first { within($0.base, $0.bits) }?.kind
    }

    /// Whether `text` is an IPv4 or IPv6 address (not a name).
    public static func isAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// The host's addresses from the system's resolver (an address resolves to itself).
    @Sendable public static func resolve(host: String, port: Int) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var result: UnsafeMutablePointer<addrinfo>?
                let status = getaddrinfo(host, String(port), &hints, &result)
                guard status == 0 else {
                    continuation.resume(throwing: WebhookError.unresolvable(host, String(cString: gai_strerror(status))))
                    return
                }
                defer { freeaddrinfo(result) }
                var addresses: [String] = []
                var cursor = result
                while let entry = cursor {
                    var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    if getnameinfo(entry.pointee.ai_addr, entry.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                        let address = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        if !addresses.contains(address) { addresses.append(address) }
                    }
                    cursor = entry.pointee.ai_next
                }
                continuation.resume(returning: addresses)
            }
        }
    }
}

/// Why a webhook could not be called.
public enum WebhookError: Error, Sendable, Equatable, CustomStringConvertible {
    case unresolvable(String, String)
    /// Refused by the outbound rules, before any connection.
    case refused(String)

    public var description: String {
        switch self {
        case .unresolvable(let host, let reason): "cannot resolve \(host): \(reason)"
        case .refused(let reason): reason
        }
    }
}

/// A webhook URL checked against the outbound rules, and the address it is to be reached at.
struct WebhookTarget: Sendable {
    var url: URL
    var endpoint: AWSEndpointRules.Endpoint
    /// The address to connect to, for a host name: checked public (or the endpoint is
    /// allowlisted, and the system's resolver decides).
    var address: String?

    /// Checks `url`, then resolves its host and checks every address it has: a name that
    /// resolves to one private address among public ones could be steered there.
    static func resolve(_ url: String, environment: WebhookEnvironment) async throws -> WebhookTarget {
        let checked: (url: URL, endpoint: AWSEndpointRules.Endpoint, allowlisted: Bool)
        do {
            checked = try AWSEndpointRules.webhookURL(url, allowlist: environment.allowlist)
        } catch {
            throw WebhookError.refused(error.reason)
        }
        if checked.allowlisted { return WebhookTarget(url: checked.url, endpoint: checked.endpoint, address: nil) }
        let host = checked.endpoint.host
        // An address is its own answer; a name is asked of the resolver.
        let addresses = WebhookAddresses.isAddress(host) ? [host] : try await environment.resolve(host, checked.endpoint.port)
        guard let first = addresses.first else { throw WebhookError.unresolvable(host, "no address") }
        for address in addresses {
            if let kind = WebhookAddresses.nonPublicKind(address) {
                throw WebhookError.refused(
                    "\(host) resolves to \(address), a \(kind) address: webhooks go to public addresses, or to a scheme://host:port the operator allowlisted (--webhook-allowlist)"
                )
            }
        }
        return WebhookTarget(url: checked.url, endpoint: checked.endpoint, address: first == host ? nil : first)
    }
}
