/// The shadow service's messages on MQTT, built as AWS IoT builds them: requests checked with
/// AWS's rules and messages, and the `delta` and `documents` a change of state sends.
public enum ShadowMessages {
    /// AWS's limits on a request.
    public enum Limits {
        /// Bytes of a request's payload (AWS's 8 KB).
        public static let payloadBytes = 8 * 1024
        /// Bytes of a client token.
        public static let clientTokenBytes = 64
        /// Levels of nesting in `desired` or `reported`.
        public static let depth = 6
    }

    /// A refusal as the shadow service sends it on `…/rejected`: an HTTP status and AWS's message.
    public struct Rejection: Error, Sendable, Equatable {
        public var code: Int
        public var message: String

        public init(_ code: Int, _ message: String) {
            self.code = code
            self.message = message
        }

        /// `{"code", "message", "timestamp", "clientToken"}`, as AWS sends it.
        public func body(clientToken: String?, timestamp: Int) -> JSONValue {
            var body: [String: JSONValue] = ["code": .integer(Int64(self.code)), "message": .string(self.message), "timestamp": .integer(Int64(timestamp))]
            if let clientToken { body["clientToken"] = .string(clientToken) }
            return .object(body)
        }
    }

    /// A request as read from its payload.
    public struct Request: Sendable, Equatable {
        /// Echoed in every answer to it.
        public var clientToken: String?
        /// For `update`: what goes to UpdateThingShadow (`state`, and `version` when given).
        public var state: JSONValue?
        public var version: Int?
    }

    /// Reads a request's payload with AWS's rules: the refusal names the rule with AWS's own
    /// words, so that firmware written for AWS IoT reads the same errors. The client token, when
    /// one could be read, comes back beside a refusal, as AWS echoes it.
    public static func request(_ operation: ShadowTopic.Operation, payload: [UInt8]) -> (Request, Rejection?) {
        var request = Request()
        guard payload.count <= Limits.payloadBytes else { return (request, Rejection(413, "The payload exceeds the maximum size allowed")) }
        guard String(validating: payload, as: UTF8.self) != nil else {
            return (request, Rejection(415, "Unsupported documented encoding; supported encoding is UTF-8"))
        }
        // A get or a delete may come with nothing at all.
        if operation != .update && payload.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) { return (request, nil) }
        guard let parsed = try? JSONValue.parse(payload), case .object(let document) = parsed else {
            return (request, Rejection(400, "Invalid JSON"))
        }
        switch document["clientToken"] {
        case nil:
            break
        case .string(let token) where token.utf8.count <= Limits.clientTokenBytes:
            request.clientToken = token
        default:
            return (request, Rejection(400, "Invalid clientToken"))
        }
        guard operation == .update else { return (request, nil) }
        switch document["version"] {
        case nil:
            break
        case .integer(let version) where version >= 0 && version <= Int64(Int32.max):
            request.version = Int(version)
        default:
            return (request, Rejection(400, "Invalid version"))
        }
        guard let state = document["state"] else { return (request, Rejection(400, "Missing required node: state")) }
        switch state {
        case .null:
            // `"state": null` empties the shadow, as in AWS.
            break
        case .object(let sections):
            if sections.keys.contains(where: { $0 != "desired" && $0 != "reported" }) {
                return (request, Rejection(400, "State contains an invalid node"))
            }
            for (key, message) in [("desired", "Desired node must be an object"), ("reported", "Reported node must be an object")] {
                switch sections[key] {
                case nil, .null: continue
                case .object(let section)?:
                    if JSONValue.object(section).depth > Limits.depth {
                        return (request, Rejection(400, "JSON contains too many levels of nesting; maximum is \(Limits.depth)"))
                    }
                default:
                    return (request, Rejection(400, message))
                }
            }
        default:
            return (request, Rejection(400, "State node must be an object"))
        }
        request.state = state
        return (request, nil)
    }

    // MARK: What a change sends

    /// Where `desired` differs from `reported`, as AWS computes the delta: each desired key whose
    /// reported value is not the same; objects compared key by key, anything else whole. Nil when
    /// they agree.
    public static func delta(desired: [String: JSONValue], reported: [String: JSONValue]) -> [String: JSONValue]? {
        var delta: [String: JSONValue] = [:]
        for (key, wanted) in desired {
            let known = reported[key]
            guard known != wanted else { continue }
            if case .object(let inner) = wanted, case .object(let knownInner)? = known {
                if let innerDelta = self.delta(desired: inner, reported: knownInner) { delta[key] = .object(innerDelta) }
            } else {
                delta[key] = wanted
            }
        }
        return delta.isEmpty ? nil : delta
    }

    /// The part of desired's metadata that the delta's keys have.
    static func metadata(of delta: [String: JSONValue], in metadata: [String: JSONValue]) -> [String: JSONValue] {
        var picked: [String: JSONValue] = [:]
        for (key, value) in delta {
            guard let meta = metadata[key] else { continue }
            if case .object(let inner) = value, case .object(let metaInner) = meta, metaInner["timestamp"] == nil {
                picked[key] = .object(self.metadata(of: inner, in: metaInner))
            } else {
                picked[key] = meta
            }
        }
        return picked
    }

    /// `old` with an update's section applied as AWS applies it: keys given are set, a null
    /// removes its key, objects merge key by key, arrays and scalars are replaced.
    static func merged(_ old: [String: JSONValue], _ patch: [String: JSONValue]) -> [String: JSONValue] {
        var result = old
        for (key, value) in patch {
            switch (value, old[key]) {
            case (.null, _):
                result[key] = nil
            case (.object(let inner), .object(let oldInner)?):
                result[key] = .object(self.merged(oldInner, inner))
            case (.object(let inner), _):
                result[key] = .object(self.merged([:], inner))
            default:
                result[key] = value
            }
        }
        return result
    }

    /// A shadow as AWS keeps it: state, metadata, version and timestamp.
    public struct Snapshot: Sendable, Equatable {
        public var desired: [String: JSONValue]
        public var reported: [String: JSONValue]
        public var desiredMetadata: [String: JSONValue]
        public var reportedMetadata: [String: JSONValue]
        public var version: Int
        public var timestamp: Int

        public init(
            desired: [String: JSONValue] = [:], reported: [String: JSONValue] = [:], desiredMetadata: [String: JSONValue] = [:],
            reportedMetadata: [String: JSONValue] = [:], version: Int, timestamp: Int
        ) {
            self.desired = desired
            self.reported = reported
            self.desiredMetadata = desiredMetadata
            self.reportedMetadata = reportedMetadata
            self.version = version
            self.timestamp = timestamp
        }

        /// Reads GetThingShadow's answer, or `previous`/`current` of an `update/documents`.
        public init?(_ document: [String: JSONValue], timestamp fallback: Int? = nil) {
            guard let version = document["version"].flatMap(ShadowDocument.integer) else { return nil }
            let state = document["state"]?.object ?? [:]
            let metadata = document["metadata"]?.object ?? [:]
            self.init(
                desired: state["desired"]?.object ?? [:], reported: state["reported"]?.object ?? [:],
                desiredMetadata: metadata["desired"]?.object ?? [:], reportedMetadata: metadata["reported"]?.object ?? [:],
                version: version, timestamp: document["timestamp"].flatMap(ShadowDocument.integer) ?? fallback ?? 0
            )
        }

        /// This shadow after an update that AWS accepted, from the update's sections and AWS's
        /// answer (whose metadata has a timestamp for each value the update set).
        func applying(state: JSONValue?, answer: [String: JSONValue]) -> Snapshot? {
            guard let version = answer["version"].flatMap(ShadowDocument.integer) else { return nil }
            let timestamp = answer["timestamp"].flatMap(ShadowDocument.integer) ?? self.timestamp
            var next = self
            next.version = version
            next.timestamp = timestamp
            let answerMetadata = answer["metadata"]?.object ?? [:]
            switch state {
            case .null?:
                next.desired = [:]
                next.reported = [:]
                next.desiredMetadata = [:]
                next.reportedMetadata = [:]
            case .object(let sections)?:
                for section in ["desired", "reported"] {
                    switch sections[section] {
                    case nil: continue
                    case .null?:
                        if section == "desired" { (next.desired, next.desiredMetadata) = ([:], [:]) } else { (next.reported, next.reportedMetadata) = ([:], [:]) }
                    case .object(let patch)?:
                        let metaPatch = ShadowMessages.metadataPatch(patch, answer: answerMetadata[section]?.object ?? [:], timestamp: timestamp)
                        if section == "desired" {
                            next.desired = ShadowMessages.merged(next.desired, patch)
                            next.desiredMetadata = ShadowMessages.merged(next.desiredMetadata, metaPatch)
                        } else {
                            next.reported = ShadowMessages.merged(next.reported, patch)
                            next.reportedMetadata = ShadowMessages.merged(next.reportedMetadata, metaPatch)
                        }
                    default: continue
                    }
                }
            default:
                break
            }
            return next
        }

        /// `{"state": {desired, reported}, "metadata": {desired, reported}, "version"}`: one side of `update/documents`.
        var documentSide: JSONValue {
            var state: [String: JSONValue] = [:]
            var metadata: [String: JSONValue] = [:]
            if !self.desired.isEmpty { state["desired"] = .object(self.desired) }
            if !self.reported.isEmpty { state["reported"] = .object(self.reported) }
            if !self.desiredMetadata.isEmpty { metadata["desired"] = .object(self.desiredMetadata) }
            if !self.reportedMetadata.isEmpty { metadata["reported"] = .object(self.reportedMetadata) }
            return .object(["state": .object(state), "metadata": .object(metadata), "version": .integer(Int64(self.version))])
        }
    }

    /// The metadata an update's values get: AWS's answer has it for each value set; a value it
    /// leaves out gets the update's timestamp, and a null removes its key.
    static func metadataPatch(_ patch: [String: JSONValue], answer: [String: JSONValue], timestamp: Int) -> [String: JSONValue] {
        var result: [String: JSONValue] = [:]
        for (key, value) in patch {
            switch value {
            case .null:
                result[key] = .null
            case .object(let inner):
                result[key] = .object(self.metadataPatch(inner, answer: answer[key]?.object ?? [:], timestamp: timestamp))
            default:
                result[key] = answer[key] ?? .object(["timestamp": .integer(Int64(timestamp))])
            }
        }
        return result
    }

    /// `update/documents`: the shadow before and after a change.
    public static func documents(previous: Snapshot?, current: Snapshot, clientToken: String?) -> JSONValue {
        var body: [String: JSONValue] = ["current": current.documentSide, "timestamp": .integer(Int64(current.timestamp))]
        if let previous { body["previous"] = previous.documentSide }
        if let clientToken { body["clientToken"] = .string(clientToken) }
        return .object(body)
    }

    /// `update/delta` for a shadow: nil when desired and reported agree.
    public static func deltaMessage(_ shadow: Snapshot, clientToken: String?) -> JSONValue? {
        guard let delta = self.delta(desired: shadow.desired, reported: shadow.reported) else { return nil }
        var body: [String: JSONValue] = [
            "state": .object(delta), "metadata": .object(self.metadata(of: delta, in: shadow.desiredMetadata)),
            "version": .integer(Int64(shadow.version)), "timestamp": .integer(Int64(shadow.timestamp)),
        ]
        if let clientToken { body["clientToken"] = .string(clientToken) }
        return .object(body)
    }
}
