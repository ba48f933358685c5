@testable import MQTTBroker
import MQTT
import Testing

@Suite("Subscription tree")
struct SubscriptionTreeTests {
    static func subscription(_ filter: String, qos: MQTTQoS = .atLeastOnce) -> MQTTSubscription {
        let parsed = try! MQTTTopic.validateFilter(filter)
        return MQTTSubscription(
            filter: filter, topicFilter: parsed.filter, shareGroup: parsed.shareGroup, qos: qos, noLocal: false,
            retainAsPublished: false, retainHandling: .sendOnSubscribe, identifier: nil
        )
    }

    @Test("matches exactly the filters MQTTTopic.matches accepts, for every pair of a table")
    func agreesWithMatcher() {
        let filters = ["#", "+", "a", "a/#", "a/+", "a/b", "a/+/c", "+/+", "+/b/#", "$SYS/#", "a//c", "/#", "a/b/c/d/#"]
        let topics = ["a", "a/b", "a/b/c", "a/x/c", "b/b/z", "$SYS/up", "a//c", "/", "/x", "a/b/c/d", "a/b/c/d/e"]
        var tree = SubscriptionTree()
        for (index, filter) in filters.enumerated() {
            tree.insert(clientIdentifier: "c\(index)", subscription: Self.subscription(filter))
        }
        for topic in topics {
            let matched = Set(tree.matches(topic: topic).direct.map(\.subscription.filter))
            let expected = Set(filters.filter { MQTTTopic.matches(filter: $0, topic: topic) })
            #expect(matched == expected, "\(topic)")
        }
    }

    @Test("insert says whether the subscription is new; remove prunes and reports")
    func insertAndRemove() {
        var tree = SubscriptionTree()
        let first = tree.insert(clientIdentifier: "a", subscription: Self.subscription("x/+"))
        let again = tree.insert(clientIdentifier: "a", subscription: Self.subscription("x/+", qos: .exactlyOnce))
        #expect(first && !again)
        #expect(tree.matches(topic: "x/1").direct.map(\.subscription.qos) == [.exactlyOnce])
        let removed = tree.remove(clientIdentifier: "a", topicFilter: "x/+", shareGroup: nil)
        let removedAgain = tree.remove(clientIdentifier: "a", topicFilter: "x/+", shareGroup: nil)
        #expect(removed && !removedAgain)
        #expect(tree.matches(topic: "x/1").direct.isEmpty)
    }

    @Test("shared subscriptions are grouped per share name and kept apart from ordinary ones")
    func shared() {
        var tree = SubscriptionTree()
        tree.insert(clientIdentifier: "w1", subscription: Self.subscription("$share/pool/jobs/#"))
        tree.insert(clientIdentifier: "w2", subscription: Self.subscription("$share/pool/jobs/#"))
        tree.insert(clientIdentifier: "w3", subscription: Self.subscription("$share/other/jobs/+"))
        tree.insert(clientIdentifier: "watch", subscription: Self.subscription("jobs/#"))
        let matches = tree.matches(topic: "jobs/1")
        #expect(matches.direct.map(\.clientIdentifier) == ["watch"])
        #expect(matches.shared.count == 2)
        #expect(Set(matches.shared.values.map { Set($0.map(\.clientIdentifier)) }) == [["w1", "w2"], ["w3"]])
        let left = tree.remove(clientIdentifier: "w1", topicFilter: "jobs/#", shareGroup: "pool")
        #expect(left)
        let remaining = tree.matches(topic: "jobs/1").shared.values.flatMap { members in members.map(\.clientIdentifier) }
        #expect(remaining.sorted() == ["w2", "w3"])
    }
}
