import MQTT

/// Messages an integration takes back from AWS IoT: its ingest filters, the device each topic
/// names, and the guard that keeps Conduit's own uplinks out.
enum IngestTopics {
    /// The MQTT filter a `{deviceId}` filter subscribes as.
    static func subscription(_ filter: String) -> String {
        filter.split(separator: "/", omittingEmptySubsequences: false).map { $0 == "{deviceId}" ? "+" : String($0) }.joined(separator: "/")
    }

    /// The filter every topic of an uplink template falls under: each level holding a
    /// placeholder stands for any level, `{subtopic}` for any number of them.
    static func uplinkFilter(_ template: String) -> String {
        var levels: [String] = []
        for level in template.split(separator: "/", omittingEmptySubsequences: false) {
            if level.contains("{subtopic}") {
                levels.append("#")
                break
            }
            levels.append(level.contains("{") ? "+" : String(level))
        }
        return levels.joined(separator: "/")
    }

    /// Whether some topic matches both filters.
    static func overlap(_ a: String, _ b: String) -> Bool {
        let left = a.split(separator: "/", omittingEmptySubsequences: false)
        let right = b.split(separator: "/", omittingEmptySubsequences: false)
        var index = 0
        while index < left.count && index < right.count {
            if left[index] == "#" || right[index] == "#" { return true }
            if left[index] != "+" && right[index] != "+" && left[index] != right[index] { return false }
            index += 1
        }
        if left.count == right.count { return true }
        // One is longer: "a/#" matches "a" too.
        let longer = left.count > right.count ? left : right
        return longer.count == index + 1 && longer[index] == "#"
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
