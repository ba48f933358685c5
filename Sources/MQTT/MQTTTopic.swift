/// Topic names and filters (MQTT 5, section 4.7).
public enum MQTTTopic {
    /// Checks a topic name for PUBLISH: 1 to 65535 bytes, no `+` or `#` [MQTT-4.7.3-1, 3.3.2-2].
    public static func validateName(_ name: String) throws {
        guard !name.isEmpty else { throw MQTTProtocolError(.topicNameInvalid, "topic name is empty") }
        guard !name.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") }) else {
            throw MQTTProtocolError(.topicNameInvalid, "topic name '\(name)' contains a wildcard")
        }
    }

    /// A topic filter, split: an ordinary one, or `$share/{group}/{filter}`.
    public struct Filter: Sendable, Hashable {
        /// The filter that is matched against topic names (without `$share/group/`).
        public var filter: String
        /// The share group, for a shared subscription.
        public var shareGroup: String?

        public init(filter: String, shareGroup: String? = nil) {
            self.filter = filter
            self.shareGroup = shareGroup
        }
    }

    /// Checks a topic filter: `#` only last and alone in its level, `+` alone in its level, and a
    /// well-formed `$share/{group}/{filter}` [MQTT-4.7.1-1, -2, 4.8.2-1, -2].
    @discardableResult
    public static func validateFilter(_ filter: String) throws -> Filter {
        guard !filter.isEmpty else { throw MQTTProtocolError(.topicFilterInvalid, "topic filter is empty") }
        var result = Filter(filter: filter, shareGroup: nil)
        if filter.hasPrefix("$share/") {
            let rest = filter.dropFirst("$share/".count)
            guard let slash = rest.firstIndex(of: "/") else {
                throw MQTTProtocolError(.topicFilterInvalid, "shared subscription '\(filter)' has no filter")
            }
            let group = String(rest[..<slash])
            guard !group.isEmpty, !group.contains("+"), !group.contains("#") else {
                throw MQTTProtocolError(.topicFilterInvalid, "share name in '\(filter)' is empty or has a wildcard")
            }
            let inner = String(rest[rest.index(after: slash)...])
            guard !inner.isEmpty else { throw MQTTProtocolError(.topicFilterInvalid, "shared subscription '\(filter)' has no filter") }
            result = Filter(filter: inner, shareGroup: group)
        }
        let levels = result.filter.split(separator: "/", omittingEmptySubsequences: false)
        for (index, level) in levels.enumerated() {
            if level.contains("#") && (level != "#" || index != levels.count - 1) {
                throw MQTTProtocolError(.topicFilterInvalid, "'#' must be the last level, alone, in '\(filter)'")
            }
            if level.contains("+") && level != "+" {
                throw MQTTProtocolError(.topicFilterInvalid, "'+' must be alone in its level in '\(filter)'")
            }
        }
        return result
    }

    /// True when `topic` matches `filter` (without any `$share/` prefix). Wildcards at the first
    /// level do not match topics that start with `$` [MQTT-4.7.2-1].
    public static func matches(filter: String, topic: String) -> Bool {
        // Level by level over the bytes, allocating nothing: ingest matches every message to its
        // rules' filters.
        var filter = filter
        var topic = topic
        return filter.withUTF8 { filter in topic.withUTF8 { topic in self.matches(filter: filter, topic: topic) } }
    }

    private static func matches(filter: UnsafeBufferPointer<UInt8>, topic: UnsafeBufferPointer<UInt8>) -> Bool {
        let slash = UInt8(ascii: "/")
        func isWildcard(_ start: Int, _ end: Int, _ wildcard: Character) -> Bool {
            end - start == 1 && filter[start] == wildcard.asciiValue!
        }
        var filterStart = 0
        var topicStart = 0
        // Whether a topic level starts at topicStart (an empty topic is one empty level).
        var topicLeft = true
        var first = true
        while true {
            var filterEnd = filterStart
            while filterEnd < filter.count, filter[filterEnd] != slash { filterEnd += 1 }
            let multi = isWildcard(filterStart, filterEnd, "#")
            let single = isWildcard(filterStart, filterEnd, "+")
            // A topic starting with $ is not matched by a wildcard in the first level.
            if first, multi || single, topic.first == UInt8(ascii: "$") { return false }
            first = false
            if multi { return true }
            guard topicLeft else { return false }
            var topicEnd = topicStart
            while topicEnd < topic.count, topic[topicEnd] != slash { topicEnd += 1 }
            if !single {
                guard filterEnd - filterStart == topicEnd - topicStart else { return false }
                for offset in 0..<(filterEnd - filterStart) where filter[filterStart + offset] != topic[topicStart + offset] { return false }
            }
            if topicEnd < topic.count { topicStart = topicEnd + 1 } else { topicLeft = false }
            guard filterEnd < filter.count else { return !topicLeft }
            filterStart = filterEnd + 1
        }
    }
}
