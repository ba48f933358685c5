/// Every subscription of every session, in a tree of topic levels, so a PUBLISH is matched by
/// walking its topic's levels rather than by testing each filter.
struct SubscriptionTree {
    final class Node {
        var children: [Substring: Node] = [:]
        /// Ordinary subscriptions ending here, by client identifier.
        var subscribers: [String: MQTTSubscription] = [:]
        /// Shared subscriptions ending here: share group -> client identifier -> subscription.
        var shared: [String: [String: MQTTSubscription]] = [:]

        var isEmpty: Bool { self.children.isEmpty && self.subscribers.isEmpty && self.shared.isEmpty }
    }

    /// The subscriptions a topic matched: ordinary ones, and one candidate list per share group.
    struct Matches {
        var direct: [(clientIdentifier: String, subscription: MQTTSubscription)] = []
        var shared: [String: [(clientIdentifier: String, subscription: MQTTSubscription)]] = [:]
    }

    private let root = Node()

    /// Adds or replaces a subscription; true when the session had no subscription to this filter.
    @discardableResult
    mutating func insert(clientIdentifier: String, subscription: MQTTSubscription) -> Bool {
        var node = self.root
        for level in subscription.topicFilter.split(separator: "/", omittingEmptySubsequences: false) {
            if let child = node.children[level] {
                node = child
            } else {
                let child = Node()
                node.children[level] = child
                node = child
            }
        }
        if let group = subscription.shareGroup {
            let isNew = node.shared[group]?[clientIdentifier] == nil
            node.shared[group, default: [:]][clientIdentifier] = subscription
            return isNew
        }
        return node.subscribers.updateValue(subscription, forKey: clientIdentifier) == nil
    }

    /// Removes a session's subscription; true when it existed.
    @discardableResult
    mutating func remove(clientIdentifier: String, topicFilter: String, shareGroup: String?) -> Bool {
        let levels = topicFilter.split(separator: "/", omittingEmptySubsequences: false)
        var path: [(Node, Substring)] = []
        var node = self.root
        for level in levels {
            guard let child = node.children[level] else { return false }
            path.append((node, level))
            node = child
        }
        let removed: Bool
        if let group = shareGroup {
            removed = node.shared[group]?.removeValue(forKey: clientIdentifier) != nil
            if node.shared[group]?.isEmpty == true { node.shared[group] = nil }
        } else {
            removed = node.subscribers.removeValue(forKey: clientIdentifier) != nil
        }
        // Prune the branch this filter no longer needs.
        var current = node
        for (parent, level) in path.reversed() {
            guard current.isEmpty else { break }
            parent.children[level] = nil
            current = parent
        }
        return removed
    }

    /// Every subscription whose filter matches `topic`.
    func matches(topic: String) -> Matches {
        var result = Matches()
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        // Wildcards at the first level never match a topic that starts with '$' [MQTT-4.7.2-1].
        let dollar = topic.utf8.first == UInt8(ascii: "$")
        self.collect(self.root, levels: levels[...], depth: 0, dollar: dollar, into: &result)
        return result
    }

    private func collect(_ node: Node, levels: ArraySlice<Substring>, depth: Int, dollar: Bool, into result: inout Matches) {
        let wildcardsAllowed = !(dollar && depth == 0)
        if wildcardsAllowed, let hash = node.children["#"] {
            Self.add(hash, into: &result)
        }
        guard let level = levels.first else {
            Self.add(node, into: &result)
            return
        }
        let rest = levels.dropFirst()
        if let exact = node.children[level] {
            self.collect(exact, levels: rest, depth: depth + 1, dollar: dollar, into: &result)
        }
        if wildcardsAllowed, let plus = node.children["+"] {
            self.collect(plus, levels: rest, depth: depth + 1, dollar: dollar, into: &result)
        }
    }

    private static func add(_ node: Node, into result: inout Matches) {
        for (client, subscription) in node.subscribers {
            result.direct.append((client, subscription))
        }
        for (group, members) in node.shared {
            let key = group + "\u{0}" + (members.first?.value.topicFilter ?? "")
            for (client, subscription) in members {
                result.shared[key, default: []].append((client, subscription))
            }
        }
    }
}
