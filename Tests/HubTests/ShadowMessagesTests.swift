import Foundation
import Testing

@testable import Hub

@Suite("Shadow topics and messages, as AWS IoT's shadow service has them")
struct ShadowMessagesTests {
    @Test("topics: requests and answers, classic and named, read and written back; what AWS IoT does not have is not a shadow topic")
    func topics() {
        let valid: [(String, ShadowTopic)] = [
            ("$aws/things/lamp-1/shadow/update", ShadowTopic(thing: "lamp-1", name: nil, operation: .update)),
            ("$aws/things/lamp-1/shadow/get/accepted", ShadowTopic(thing: "lamp-1", name: nil, operation: .get, answer: .accepted)),
            ("$aws/things/lamp-1/shadow/update/delta", ShadowTopic(thing: "lamp-1", name: nil, operation: .update, answer: .delta)),
            ("$aws/things/a:b_c/shadow/name/config/delete", ShadowTopic(thing: "a:b_c", name: "config", operation: .delete)),
            ("$aws/things/x/shadow/name/n/update/documents", ShadowTopic(thing: "x", name: "n", operation: .update, answer: .documents)),
        ]
        for (topic, expected) in valid {
            #expect(ShadowTopic(topic) == expected, "\(topic)")
            #expect(expected.topic == topic)
        }
        let invalid = [
            "$aws/things/lamp-1/shadow", "$aws/things/lamp-1/shadow/get/delta", "$aws/things/lamp-1/shadow/delete/documents",
            "$aws/things/lamp-1/shadow/update/accepted/more", "$aws/things/lamp 1/shadow/get", "$aws/things//shadow/get",
            "$aws/things/+/shadow/get", "$aws/things/lamp-1/shadow/name/config", "$aws/things/lamp-1/shadow/name//get",
            "$aws/things/lamp-1/shadow/name/\(String(repeating: "n", count: 65))/get", "$aws/things/\(String(repeating: "t", count: 129))/shadow/get",
            "$aws/rules/lights", "devices/lamp-1/up", "$aws/things/lamp-1/jobs/get", "$aws/things/lamp-1/shadow/patch",
        ]
        for topic in invalid {
            #expect(ShadowTopic(topic) == nil, "\(topic)")
        }
        #expect(ShadowTopic("$aws/things/\(String(repeating: "t", count: 128))/shadow/name/\(String(repeating: "n", count: 64))/get") != nil)
    }

    @Test("a request is checked with AWS's rules and refused in AWS's words, the client token kept beside the refusal")
    func requestRules() {
        let refused: [(ShadowTopic.Operation, String, Int, String)] = [
            (.update, "not json", 400, "Invalid JSON"),
            (.update, "[1]", 400, "Invalid JSON"),
            (.update, #"{"clientToken": "t"}"#, 400, "Missing required node: state"),
            (.update, #"{"state": [1]}"#, 400, "State node must be an object"),
            (.update, #"{"state": {"desired": 3}}"#, 400, "Desired node must be an object"),
            (.update, #"{"state": {"reported": "on"}}"#, 400, "Reported node must be an object"),
            (.update, #"{"state": {"wanted": {}}}"#, 400, "State contains an invalid node"),
            (.update, #"{"state": {"reported": {}}, "version": -1}"#, 400, "Invalid version"),
            (.update, #"{"state": {"reported": {}}, "version": "3"}"#, 400, "Invalid version"),
            (.update, #"{"state": {"reported": {}}, "clientToken": 5}"#, 400, "Invalid clientToken"),
            (.get, "{\"clientToken\": \"\(String(repeating: "k", count: 65))\"}", 400, "Invalid clientToken"),
            (.get, "{oops", 400, "Invalid JSON"),
            (.update, #"{"state": {"reported": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}}}}"#, 400, "JSON contains too many levels of nesting; maximum is 6"),
        ]
        for (operation, payload, code, message) in refused {
            let (_, rejection) = ShadowMessages.request(operation, payload: Array(payload.utf8))
            #expect(rejection == ShadowMessages.Rejection(code, message), "\(payload)")
        }
        let large = Array(#"{"state": {"reported": {"blob": ""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 8192) + Array(#""}}}"#.utf8)
        #expect(ShadowMessages.request(.update, payload: large).1?.code == 413)
        #expect(ShadowMessages.request(.update, payload: [0x7B, 0xFF, 0x7D]).1?.code == 415)

        // Six levels pass; the token comes back beside a refusal.
        let deep = #"{"state": {"desired": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}, "version": 4, "clientToken": "tok"}"#
        let (request, rejection) = ShadowMessages.request(.update, payload: Array(deep.utf8))
        #expect(rejection == nil)
        #expect(request.version == 4 && request.clientToken == "tok")
        let (stale, refusal) = ShadowMessages.request(.update, payload: Array(#"{"clientToken": "tok", "state": 7}"#.utf8))
        #expect(refusal?.code == 400 && stale.clientToken == "tok")
        let body = refusal?.body(clientToken: stale.clientToken, timestamp: 17)
        #expect(body == .object(["code": .integer(400), "message": .string("State node must be an object"), "timestamp": .integer(17), "clientToken": .string("tok")]))
        // A get or a delete may come with nothing; an update may empty the shadow with "state": null.
        #expect(ShadowMessages.request(.get, payload: []).1 == nil)
        #expect(ShadowMessages.request(.delete, payload: Array(" \n".utf8)).1 == nil)
        #expect(ShadowMessages.request(.update, payload: []).1?.message == "Invalid JSON")
        #expect(ShadowMessages.request(.update, payload: Array(#"{"state": null}"#.utf8)).0.state == .null)
    }

    @Test("the delta is desired where reported differs, objects key by key, arrays whole; documents and delta carry versions and metadata")
    func deltaAndDocuments() throws {
        let desired: [String: JSONValue] = ["power": .string("on"), "led": .object(["r": .integer(1), "g": .integer(2)]), "list": .array([.integer(1)]), "same": .bool(true)]
        let reported: [String: JSONValue] = ["power": .string("off"), "led": .object(["r": .integer(1), "g": .integer(0)]), "list": .array([.integer(1), .integer(2)]), "same": .bool(true)]
        #expect(ShadowMessages.delta(desired: desired, reported: reported) == ["power": .string("on"), "led": .object(["g": .integer(2)]), "list": .array([.integer(1)])])
        #expect(ShadowMessages.delta(desired: ["a": .integer(1)], reported: ["a": .integer(1), "b": .integer(2)]) == nil)

        let stamp: (Int) -> JSONValue = { .object(["timestamp": .integer(Int64($0))]) }
        let before = ShadowMessages.Snapshot(
            desired: ["power": .string("on"), "led": .object(["r": .integer(1)])], reported: ["power": .string("on")],
            desiredMetadata: ["power": stamp(10), "led": .object(["r": stamp(10)])], reportedMetadata: ["power": stamp(10)], version: 4, timestamp: 10
        )
        let document = try #require(try JSONValue.parse(Array(#"{"previous": {"state": {"desired": {"power": "on", "led": {"r": 1}}, "reported": {"power": "on"}}, "metadata": {"desired": {"power": {"timestamp": 10}, "led": {"r": {"timestamp": 10}}}, "reported": {"power": {"timestamp": 10}}}, "version": 4}}"#.utf8)).object?["previous"]?.object)
        #expect(ShadowMessages.Snapshot(document, timestamp: 10) == before)
        // An update AWS accepted, applied to the shadow before: values set and merged, a null
        // removing its key, metadata from AWS's answer.
        let update: JSONValue = .object(["desired": .object(["power": .string("off"), "led": .object(["g": .integer(5)]), "gone": .null])])
        let answer: [String: JSONValue] = [
            "version": .integer(5), "timestamp": .integer(20),
            "metadata": .object(["desired": .object(["power": stamp(20), "led": .object(["g": stamp(20)])])]),
        ]
        let current = try #require(before.applying(state: update, answer: answer))
        #expect(current == ShadowMessages.Snapshot(
            desired: ["power": .string("off"), "led": .object(["r": .integer(1), "g": .integer(5)])], reported: ["power": .string("on")],
            desiredMetadata: ["power": stamp(20), "led": .object(["r": stamp(10), "g": stamp(20)])], reportedMetadata: ["power": stamp(10)], version: 5, timestamp: 20
        ))
        #expect(before.applying(state: .null, answer: answer)?.desired == [:])
        let messages = ShadowMessages.documents(previous: before, current: current, clientToken: "c")
        #expect(messages.object?["clientToken"] == .string("c"))
        #expect(messages.object?["timestamp"] == .integer(20))
        #expect(messages.object?["previous"]?.object?["version"] == .integer(4))
        #expect(messages.object?["current"]?.object?["state"]?.object?["desired"]?.object?["led"] == .object(["r": .integer(1), "g": .integer(5)]))
        let delta = try #require(ShadowMessages.deltaMessage(current, clientToken: nil)?.object)
        #expect(delta["state"] == .object(["power": .string("off"), "led": .object(["r": .integer(1), "g": .integer(5)])]))
        #expect(delta["metadata"] == .object(["power": stamp(20), "led": .object(["r": stamp(10), "g": stamp(20)])]))
        #expect(delta["version"] == .integer(5))
        #expect(delta["clientToken"] == nil)
    }
}
