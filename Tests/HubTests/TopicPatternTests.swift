import Testing

@testable import Hub

/// Whether an ingest filter would take Conduit's own uplinks back from AWS, and whether a message
/// from AWS is one of them, decided by the bytes each can hold, not level by level.
@Suite("Uplink templates against ingest filters and topics")
struct TopicPatternTests {
    static func overlap(_ template: String, _ filter: String) -> Bool {
        TopicPattern(ingestFilter: filter).sharesATopic(with: TopicPattern(uplinkTemplate: template))
    }

    static func isUplink(_ topic: String, of template: String) -> Bool {
        TopicPattern(uplinkTemplate: template).sharesATopic(with: TopicPattern(topic: topic))
    }

    @Test("an ingest filter is refused only when some uplink could land on it")
    func filters() {
        // Seen from schemathesis: {subtopic} spans levels, but only after the level's own "d".
        #expect(!Self.overlap("d{subtopic}%\u{977CE}{deviceName}\u{23E}", "waylay/{deviceId}/state"))
        #expect(!Self.overlap("dev-{subtopic}", "waylay/{deviceId}/state"))
        #expect(Self.overlap("dev-{subtopic}", "dev-x/{deviceId}"))
        #expect(Self.overlap("conduit/{deviceId}/up", "+/{deviceId}/up"))
        #expect(!Self.overlap("conduit/{deviceId}/up", "waylay/{deviceId}/state"))
        #expect(!Self.overlap("{subtopic}x", "waylay/{deviceId}/state"))
        #expect(Self.overlap("{subtopic}x", "waylay/{deviceId}/statex"))
        #expect(Self.overlap("a/{subtopic}", "a/{deviceId}/b"))
        #expect(!Self.overlap("a/{deviceId}/up", "a/{deviceId}"))
        // A name never holds '/' (it is written '_'): one level only.
        #expect(!Self.overlap("a/{deviceName}", "a/{deviceId}/b"))
        #expect(Self.overlap("a/{deviceName}", "a/{deviceId}"))
        // An id is never empty: "t/x{deviceId}" is not "t/x".
        #expect(!Self.overlap("t/x{deviceId}/v", "t/x/{deviceId}"))
        #expect(Self.overlap("t/x{deviceId}", "t/{deviceId}"))
        #expect(Self.overlap("t/{deviceId}{subtopic}", "t/{deviceId}/+/+"))
    }

    @Test("a message from AWS is Conduit's own uplink when its template can render its topic")
    func topics() {
        #expect(Self.isUplink("conduit/lamp-1/up", of: "conduit/{deviceId}/up"))
        #expect(!Self.isUplink("conduit/lamp.1/up", of: "conduit/{deviceId}/up"))  // no id holds '.'
        #expect(!Self.isUplink("conduit//up", of: "conduit/{deviceId}/up"))
        #expect(Self.isUplink("dev-x/y/z", of: "dev-{subtopic}"))
        #expect(!Self.isUplink("waylay/lamp-1/state", of: "dev-{subtopic}"))
        #expect(!Self.isUplink("waylay/lamp-1/state", of: "d{subtopic}%{deviceName}"))
    }

    @Test("every topic the forwarder renders is one its template's pattern holds: the loop guard never lets an uplink back in")
    func rendered() {
        let templates = [
            "conduit/{deviceId}/up", "d{subtopic}%{deviceName}x", "{deviceName}/{deviceId}", "a/{deviceId}{subtopic}", "{subtopic}", "fleet/{deviceName}-{deviceId}/{subtopic}",
        ]
        let devices = [("lamp-1", "Hall lamp"), ("m:7", "a/b+c#d$"), ("x", "")]
        let subtopics = ["", "t", "a/b/c", "/"]
        for template in templates {
            for (id, name) in devices {
                for subtopic in subtopics {
                    let topic = UplinkFormat.topic(template, deviceID: id, deviceName: name, mqttTopic: "devices/\(id)/\(subtopic)")
                    #expect(Self.isUplink(topic, of: template), "\(template) rendered \(topic)")
                }
            }
        }
    }
}
