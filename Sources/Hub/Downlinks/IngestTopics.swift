/// Messages an integration takes back from AWS IoT: its ingest filters and the device each topic
/// names (``TopicPattern`` keeps Conduit's own uplinks out).
enum IngestTopics {
    /// The MQTT filter a `{deviceId}` filter subscribes as.
    static func subscription(_ filter: String) -> String {
        filter.split(separator: "/", omittingEmptySubsequences: false).map { $0 == "{deviceId}" ? "+" : String($0) }.joined(separator: "/")
    }

    /// The device a topic names under one of `filters`, and the rules' subtopic for it (the
    /// levels after `{deviceId}`); nil when no filter takes it.
    static func device(in topic: String, filters: [String]) -> (deviceID: String, subtopic: String)? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        for filter in filters {
            let pattern = filter.split(separator: "/", omittingEmptySubsequences: false)
            guard pattern.count == levels.count else { continue }
            var deviceID: Substring?
            var matches = true
            for (want, have) in zip(pattern, levels) {
                if want == "{deviceId}" {
                    deviceID = have
                } else if want != "+" && want != have {
                    matches = false
                    break
                }
            }
            guard matches, let deviceID, !deviceID.isEmpty else { continue }
            let position = pattern.firstIndex(of: "{deviceId}")!
            return (String(deviceID), levels[(position + 1)...].joined(separator: "/"))
        }
        return nil
    }
}

/// The topics an uplink template, an ingest filter or a topic can be, byte by byte, so that
/// whether two of them share a topic is decided exactly: `dev-{subtopic}` reaches any number of
/// levels but only under names starting `dev-`, so it shares none with `waylay/{deviceId}/state`
/// (a level-wise guess took `{subtopic}` for `#` and refused that pair).
struct TopicPattern: Sendable {
    /// Which bytes one position of a topic may hold.
    enum Bytes: Equatable, Sendable {
        case byte(UInt8)
        /// A device id's: `[a-zA-Z0-9:_-]` (``FieldRules/deviceID``).
        case deviceID
        /// Any but `/`: a part of one level.
        case level
        case any

        func contains(_ byte: UInt8) -> Bool {
            switch self {
            case .byte(let value): value == byte
            case .deviceID: ShadowTopic.isNameByte(byte)
            case .level: byte != UInt8(ascii: "/")
            case .any: true
            }
        }

        /// Whether some byte is in both (every class but a single byte holds a letter).
        func meets(_ other: Bytes) -> Bool {
            if case .byte(let value) = self { return other.contains(value) }
            if case .byte(let value) = other { return self.contains(value) }
            return true
        }
    }

    /// One byte of `bytes`, or any number of them (none too).
    struct Element: Sendable {
        let bytes: Bytes
        let repeats: Bool
    }

    let elements: [Element]

    /// What an uplink template renders as: `{deviceId}` one or more of an id's bytes,
    /// `{deviceName}` any within a level (its `/` are written `_`), `{subtopic}` anything, levels
    /// and none included (what follows `devices/{id}/`).
    init(uplinkTemplate template: String) {
        let placeholders: [(String, [Element])] = [
            ("{deviceId}", [Element(bytes: .deviceID, repeats: false), Element(bytes: .deviceID, repeats: true)]),
            ("{deviceName}", [Element(bytes: .level, repeats: true)]),
            ("{subtopic}", [Element(bytes: .any, repeats: true)]),
        ]
        let bytes = Array(template.utf8)
        var elements: [Element] = []
        var index = 0
        scan: while index < bytes.count {
            if bytes[index] == UInt8(ascii: "{") {
                for (name, pattern) in placeholders where bytes[index...].starts(with: name.utf8) {
                    elements += pattern
                    index += name.utf8.count
                    continue scan
                }
            }
            elements.append(Element(bytes: .byte(bytes[index]), repeats: false))
            index += 1
        }
        self.elements = elements
    }

    /// What an ingest filter subscribes to: its `+` and `{deviceId}` levels take any level.
    init(ingestFilter filter: String) {
        var elements: [Element] = []
        for (index, level) in filter.split(separator: "/", omittingEmptySubsequences: false).enumerated() {
            if index > 0 { elements.append(Element(bytes: .byte(UInt8(ascii: "/")), repeats: false)) }
            if level == "+" || level == "{deviceId}" {
                elements.append(Element(bytes: .level, repeats: true))
            } else {
                elements += level.utf8.map { Element(bytes: .byte($0), repeats: false) }
            }
        }
        self.elements = elements
    }

    /// One topic, as it is.
    init(topic: String) {
        self.elements = topic.utf8.map { Element(bytes: .byte($0), repeats: false) }
    }

    /// Whether some topic is both one of these and one of `other`'s: the two read side by side,
    /// each step taking a byte both allow or skipping a repeat (at most 257 × 257 steps: topics
    /// are at most 256 bytes).
    func sharesATopic(with other: TopicPattern) -> Bool {
        let left = self.elements, right = other.elements
        let width = right.count + 1
        var reached = [Bool](repeating: false, count: (left.count + 1) * width)
        reached[0] = true
        for i in 0...left.count {
            for j in 0...right.count where reached[i * width + j] {
                if i == left.count && j == right.count { return true }
                if i < left.count && left[i].repeats { reached[(i + 1) * width + j] = true }
                if j < right.count && right[j].repeats { reached[i * width + j + 1] = true }
                guard i < left.count, j < right.count, left[i].bytes.meets(right[j].bytes) else { continue }
                switch (left[i].repeats, right[j].repeats) {
                case (false, false): reached[(i + 1) * width + j + 1] = true
                case (false, true): reached[(i + 1) * width + j] = true
                case (true, false): reached[i * width + j + 1] = true
                case (true, true): break  // both stay where they are
                }
            }
        }
        return false
    }
}
