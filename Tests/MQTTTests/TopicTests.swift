import MQTT
import Testing

@Suite("Topic names and filters")
struct TopicTests {
    @Test(
        "matching",
        arguments: [
            ("a/b/c", "a/b/c", true), ("a/+/c", "a/b/c", true), ("a/+/c", "a/b/d", false), ("a/#", "a", true),
            ("a/#", "a/b/c", true), ("#", "a/b", true), ("+", "a", true), ("+", "a/b", false), ("+/+", "/a", true),
            ("a/+", "a/", true), ("a/b", "a/b/c", false), ("a/b/c", "a/b", false), ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false), ("$SYS/#", "$SYS/x", true), ("$aws/things/+/shadow/#", "$aws/things/d1/shadow/get", true),
            ("devices/d1/#", "devices/d1", true), ("devices/d1/#", "devices/d10/up", false), ("a//b", "a//b", true),
            ("a/+/b", "a//b", true), ("a/+", "a", false), ("+/+", "a", false), ("a/b/#", "a/b", true), ("a/#", "ab", false), ("+", "", true),
        ]
    )
    func matching(filter: String, topic: String, expected: Bool) {
        #expect(MQTTTopic.matches(filter: filter, topic: topic) == expected)
    }

    @Test("valid and invalid filters")
    func filters() throws {
        for valid in ["a", "#", "+", "a/+/b", "a/#", "/", "+/+/#", "$share/g/a/+", "$share/g/#"] {
            #expect(throws: Never.self) { try MQTTTopic.validateFilter(valid) }
        }
        for invalid in ["", "a#", "a/#/b", "a+", "a/b+/c", "$share/g", "$share//a", "$share/g+/a", "$share/g/", "#/a"] {
            #expect(throws: MQTTProtocolError.self) { try MQTTTopic.validateFilter(invalid) }
        }
        #expect(try MQTTTopic.validateFilter("$share/group1/devices/+/up") == .init(filter: "devices/+/up", shareGroup: "group1"))
        #expect(try MQTTTopic.validateFilter("devices/#").shareGroup == nil)
    }

    @Test("topic names have no wildcards and are not empty")
    func names() {
        #expect(throws: Never.self) { try MQTTTopic.validateName("devices/d1/up") }
        #expect(throws: Never.self) { try MQTTTopic.validateName("/") }
        for invalid in ["", "a/+", "a/#", "#"] {
            #expect(throws: MQTTProtocolError.self) { try MQTTTopic.validateName(invalid) }
        }
    }
}
