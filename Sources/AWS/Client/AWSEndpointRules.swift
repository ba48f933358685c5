import Foundation

/// Where a tenant's integration may send Conduit's requests: AWS's own hosts for its region, or
/// an endpoint the operator of the installation listed. A tenant admin chooses `endpointUrl` and
/// `mqttEndpoint`; without this rule Conduit would POST device payloads to any host:port it names
/// (an internal service, the cloud's metadata address) and show what came back.
///
/// The rule is applied to the text as written, before any name is resolved or any connection
/// made: a refused endpoint costs nothing and reaches nothing.
public enum AWSEndpointRules {
    /// An endpoint as Conduit connects to it.
    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        /// `https` or `http` (for a control- or data-plane URL), `mqtts` (the MQTT data endpoint).
        public var scheme: String
        /// Lowercased; an IPv6 address without its brackets.
        public var host: String
        public var port: Int

        public init(scheme: String, host: String, port: Int) {
            self.scheme = scheme
            self.host = host
            self.port = port
        }

        /// `scheme://host:port`, the form allowlist entries take.
        public var description: String {
            "\(self.scheme)://\(self.host.contains(":") ? "[\(self.host)]" : self.host):\(self.port)"
        }
    }

    /// Why an endpoint is refused, worded to follow the field's name.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { self.reason }
    }

    /// The DNS suffix of the region's partition: `amazonaws.com.cn` for China, else `amazonaws.com`.
    public static func dnsSuffix(region: String) -> String {
        region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
    }

    /// An `endpointUrl`: `https://host[:port][/]`, nothing more (no user info, path, query,
    /// fragment or percent-escape, which could cut off or redirect the operation's path). It is
    /// accepted when it is an AWS IoT host of `region` over HTTPS on 443, or listed in `allowlist`.
    public static func httpEndpoint(_ value: String, region: String, allowlist: AWSEndpointAllowlist) throws(Refusal) -> URL {
        let endpoint = try self.parseURL(value, schemes: ["https", "http"])
        guard allowlist.contains(endpoint) || self.isAWSIoTHost(endpoint.host, region: region, data: false) && endpoint.scheme == "https" && endpoint.port == 443
        else {
            throw Refusal(
                reason:
                    "\(endpoint) is not AWS IoT's for region \(region) (https://iot.\(region).\(self.dnsSuffix(region: region)), its -ats data endpoint, FIPS or VPC endpoints, on port 443) and is not in the operator's --aws-endpoint-allowlist"
            )
        }
        // Built from the parts checked, never from the text as written; a scheme's own port is
        // left out, so that the Host header (and what SigV4 signs) is the bare host, as AWS expects.
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        let isDefaultPort = (endpoint.scheme == "https" && endpoint.port == 443) || (endpoint.scheme == "http" && endpoint.port == 80)
        return URL(string: "\(endpoint.scheme)://\(host)\(isDefaultPort ? "" : ":\(endpoint.port)")")!
    }

    /// An MQTT data endpoint `host:port` (always TLS): an AWS IoT data host of `region` on 8883 or
    /// 443, or `mqtts://host:port` listed in `allowlist`.
    public static func mqttEndpoint(host rawHost: String, port: Int, region: String, allowlist: AWSEndpointAllowlist) throws(Refusal) {
        let host = try self.host(rawHost)
        let endpoint = Endpoint(scheme: "mqtts", host: host, port: port)
        guard allowlist.contains(endpoint) || self.isAWSIoTHost(host, region: region, data: true) && (port == 8883 || port == 443) else {
            throw Refusal(
                reason:
                    "\(host.contains(":") ? "[\(host)]" : host):\(port) is not an AWS IoT data endpoint for region \(region) (such as a1b2c3d4e5f6g7-ats.iot.\(region).\(self.dnsSuffix(region: region)), on port 8883 or 443) and mqtts://\(host):\(port) is not in the operator's --aws-endpoint-allowlist"
            )
        }
    }

    /// True for an AWS IoT host of the region: the control plane (`iot.R.S`, `iot-fips.R.S`),
    /// an account's data endpoint (`x-ats.iot.R.S`, FIPS `data.iot-fips.R.S`), and VPC
    /// interface endpoints (`vpce-….iot.R.vpce.S`). With `data`, the control plane is excluded.
    public static func isAWSIoTHost(_ host: String, region: String, data: Bool) -> Bool {
        let suffix = self.dnsSuffix(region: region)
        let host = host.lowercased()
        if !data, host == "iot.\(region).\(suffix)" || host == "iot-fips.\(region).\(suffix)" { return true }
        if host == "data.iot-fips.\(region).\(suffix)" { return true }
        for tail in [".iot.\(region).\(suffix)", ".iot.\(region).vpce.\(suffix)", ".iot-fips.\(region).vpce.\(suffix)"] where host.hasSuffix(tail) {
            let labels = host.dropLast(tail.count).split(separator: ".", omittingEmptySubsequences: false)
            // One label for a data endpoint (two in China: `prefix.ats.iot.cn-north-1...`); a VPC
            // endpoint's name may have two (vpce-id.data).
            let most = tail.contains(".vpce.") || suffix == "amazonaws.com.cn" ? 2 : 1
            return (1...most).contains(labels.count) && labels.allSatisfy(self.isDNSLabel)
        }
        return false
    }

    /// True for a host under an AWS partition's DNS suffix: its error answers are AWS's own.
    public static func isAWSHost(_ host: String) -> Bool {
        let host = host.lowercased()
        return (host.hasSuffix(".amazonaws.com") || host.hasSuffix(".amazonaws.com.cn"))
            && host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(self.isDNSLabel)
    }

    /// `scheme://host[:port][/]` and nothing else.
    static func parseURL(_ value: String, schemes: Set<String>) throws(Refusal) -> Endpoint {
        try self.parseURLNotingPort(value, schemes: schemes).endpoint
    }

    /// ``parseURL(_:schemes:)``, and whether the port was written out.
    static func parseURLNotingPort(_ value: String, schemes: Set<String>) throws(Refusal) -> (endpoint: Endpoint, portGiven: Bool) {
        guard let separator = value.range(of: "://") else {
            throw Refusal(reason: "must be a URL such as https://iot.eu-west-1.amazonaws.com")
        }
        let scheme = value[..<separator.lowerBound].lowercased()
        guard schemes.contains(scheme) else {
            throw Refusal(reason: "must use \(schemes.sorted().reversed().joined(separator: " or ")), not '\(scheme)'")
        }
        var rest = Substring(value[separator.upperBound...])
        for (character, what) in [("@", "user info"), ("?", "a query"), ("#", "a fragment"), ("%", "percent-escapes"), ("\\", "backslashes")]
        where rest.contains(character) {
            throw Refusal(reason: "must not contain \(what) ('\(character)'): give scheme://host[:port] only")
        }
        if rest.hasSuffix("/") { rest = rest.dropLast() }
        guard !rest.contains("/") else { throw Refusal(reason: "must not have a path: give scheme://host[:port] only") }
        let defaultPort = ["https": 443, "http": 80, "mqtts": 8883][scheme] ?? 443
        var hostText = rest
        var port = defaultPort
        var portGiven = false
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw Refusal(reason: "has an IPv6 address without its ']'") }
            hostText = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let number = Int(after.dropFirst()) else { throw Refusal(reason: "has a malformed port") }
                port = number
                portGiven = true
            }
        } else if let colon = rest.lastIndex(of: ":") {
            hostText = rest[..<colon]
            guard let number = Int(rest[rest.index(after: colon)...]) else { throw Refusal(reason: "has a malformed port") }
            port = number
            portGiven = true
        }
        guard (1...65535).contains(port) else { throw Refusal(reason: "has a port outside 1-65535") }
        return (Endpoint(scheme: scheme, host: try self.host(String(hostText)), port: port), portGiven)
    }

    /// A DNS name, an IPv4 address or an IPv6 address (without brackets), lowercased.
    static func host(_ value: String) throws(Refusal) -> String {
        let host = value.lowercased()
        guard !host.isEmpty, host.utf8.count <= 253 else { throw Refusal(reason: "must name a host") }
        if host.contains(":") {
            guard host.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { throw Refusal(reason: "has a malformed IPv6 address") }
            return host
        }
        guard host.split(separator: ".", omittingEmptySubsequences: false).allSatisfy(self.isDNSLabel) else {
            throw Refusal(reason: "has a malformed host name '\(value)': letters, digits and '-' in dot-separated labels")
        }
        return host
    }

    static func isDNSLabel(_ label: Substring) -> Bool {
        (1...63).contains(label.utf8.count) && label.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "-")
        } && !label.hasPrefix("-") && !label.hasSuffix("-")
    }
}

/// The endpoints other than AWS's own that the operator of the installation lets integrations
/// use (moto in tests, a proxy): exact `scheme://host:port` entries, from
/// `--aws-endpoint-allowlist` or `CONDUIT_AWS_ENDPOINT_ALLOWLIST`. Tenants cannot extend it.
public struct AWSEndpointAllowlist: Sendable, Equatable {
    public private(set) var entries: [AWSEndpointRules.Endpoint]

    public init() {
        self.entries = []
    }

    /// Entries separated by commas or spaces, each `https://host:port`, `http://host:port` or
    /// `mqtts://host:port`, the port always written out.
    public init(parsing text: String) throws(AWSEndpointRules.Refusal) {
        self.entries = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\n" }) {
            try self.add(String(item))
        }
    }

    public mutating func add(_ entry: String) throws(AWSEndpointRules.Refusal) {
        let parsed: (endpoint: AWSEndpointRules.Endpoint, portGiven: Bool)
        do {
            parsed = try AWSEndpointRules.parseURLNotingPort(entry, schemes: ["https", "http", "mqtts"])
        } catch {
            throw AWSEndpointRules.Refusal(reason: "'\(entry)' \(error.reason)")
        }
        guard parsed.portGiven else { throw AWSEndpointRules.Refusal(reason: "'\(entry)' must give its port: scheme://host:port") }
        let endpoint = parsed.endpoint
        if !self.entries.contains(endpoint) { self.entries.append(endpoint) }
    }

    public func contains(_ endpoint: AWSEndpointRules.Endpoint) -> Bool {
        self.entries.contains(endpoint)
    }

    public var isEmpty: Bool { self.entries.isEmpty }
}

extension AWSEndpointRules {
    /// A webhook's URL: `https://host[:port]/path[?query]` at a public address (which the hub checks
    /// by resolving the host, at each delivery), or any URL whose `scheme://host:port` the operator
    /// allowlisted (`http` too). No user info, no fragment, no backslashes; at most 2048 bytes.
    /// Returns the URL and its endpoint.
    public static func webhookURL(_ value: String, allowlist: AWSEndpointAllowlist) throws(Refusal) -> (url: URL, endpoint: Endpoint, allowlisted: Bool) {
        guard value.utf8.count <= 2048 else { throw Refusal(reason: "must be at most 2048 bytes") }
        guard let separator = value.range(of: "://") else { throw Refusal(reason: "must be a URL such as https://example.com/hooks/conduit") }
        let rest = value[separator.upperBound...]
        let authorityEnd = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let target = rest[authorityEnd...]
        for (character, what) in [("#", "a fragment"), ("\\", "backslashes")] where value.contains(character) {
            throw Refusal(reason: "must not contain \(what) ('\(character)')")
        }
        guard target.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw Refusal(reason: "its path and query must be printable ASCII without spaces (percent-escape the rest)")
        }
        let endpoint = try self.parseURL(String(value[..<separator.upperBound]) + String(rest[..<authorityEnd]), schemes: ["https", "http"])
        let allowlisted = allowlist.contains(endpoint)
        guard allowlisted || endpoint.scheme == "https" else {
            throw Refusal(reason: "must use https (http only for a scheme://host:port the operator allowlisted)")
        }
        let host = endpoint.host.contains(":") ? "[\(endpoint.host)]" : endpoint.host
        let defaultPort = endpoint.scheme == "https" ? 443 : 80
        let text = "\(endpoint.scheme)://\(host)\(endpoint.port == defaultPort ? "" : ":\(endpoint.port)")\(target.isEmpty ? "/" : String(target))"
        guard let url = URL(string: text) else { throw Refusal(reason: "is not a valid URL") }
        return (url, endpoint, allowlisted)
    }
}
