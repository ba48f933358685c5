import Foundation
import Testing

@testable import Hub

/// The field rules read values as JSON Schema does (the document prints them): lengths in Unicode
/// scalars, patterns matched anywhere unless anchored, no newline slipping past `$`.
@Suite("Field rules")
struct FieldRulesTests {
    @Test("a downlink payload is padded base64 of at most 128 KB: the pattern's bound is exact")
    func downlinkPayload() {
        let rule = FieldRules.downlinkPayload
        let maximum = Downlinks.maximumPayload
        #expect(rule.violation(Data(count: maximum).base64EncodedString()) == nil)
        #expect(rule.violation(Data(count: maximum - 1).base64EncodedString()) == nil)
        #expect(rule.violation(Data(count: maximum - 2).base64EncodedString()) == nil)
        #expect(rule.violation(Data(count: maximum + 1).base64EncodedString()) == "must decode to at most \(maximum) bytes (AWS IoT's message size)")
        #expect(rule.violation("") == nil)
        #expect(rule.violation("aGk=") == nil)
        for bad in ["aGk", "a", "aGk=\n", "aG k=", "aGk==", "=aGk", "aGk=aGk="] {
            #expect(rule.violation(bad) == "must be base64", "\(bad.debugDescription)")
        }
        // Every value the rule takes, Foundation decodes.
        for value in ["", "QQ==", "QR==", "QUI=", "QUJD", "AB=="] {
            #expect(rule.matches(value) && Data(base64Encoded: value) != nil, "\(value)")
        }
    }

    @Test("display names: not blank, at most 256 Unicode scalars (as JSON Schema counts), no control characters")
    func displayNames() throws {
        let rule = FieldRules.displayName
        #expect(rule.violation("Meter 1") == nil)
        #expect(rule.violation("  Meter  ") == nil)
        #expect(try Validation.displayName("  Meter  ") == "Meter")
        for blank in ["", " ", "\u{A0}\u{3000}", "\u{2000}\u{2001}\u{200B}"] {
            #expect(rule.violation(blank) == "must not be empty", "\(blank.debugDescription)")
            #expect(blank.trimmingCharacters(in: .whitespaces).isEmpty, "the rule's blanks are what names are trimmed of")
        }
        #expect(rule.violation("a\u{7}b") == "must not contain control characters")
        #expect(rule.violation("a\u{85}b") == "must not contain control characters")
        #expect(rule.violation(String(repeating: "n", count: 256)) == nil)
        #expect(rule.violation(String(repeating: "n", count: 257)) == "must be at most 256 characters")
        // 200 characters of 2 scalars each: 400 scalars, as JSON Schema's maxLength counts them.
        #expect(rule.violation(String(repeating: "e\u{301}", count: 200)) == "must be at most 256 characters")
    }

    @Test("device ids: thing names, not a gateway's; anchored, so a trailing newline is refused")
    func deviceIDs() {
        let rule = FieldRules.deviceID
        #expect(rule.matches("meter-1:a_b"))
        #expect(rule.violation("conduit-gateway-int_1") == "must not start with conduit-gateway- (the things of Conduit's downlink gateways)")
        for bad in ["", "meter 1", "meter-1\n", "é", String(repeating: "a", count: 129)] {
            #expect(rule.violation(bad) == "must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)", "\(bad.debugDescription)")
        }
    }

    @Test("cursors are c1. and the page's last key; what the hub hands out, the rules take")
    func cursors() throws {
        #expect(FieldRules.deviceCursor.matches(PageRequest.encodeCursor("meter-1")))
        #expect(FieldRules.sequenceCursor.matches(PageRequest.encodeCursor("1234")))
        #expect(!FieldRules.sequenceCursor.matches("c1.-5"))
        #expect(!FieldRules.deviceCursor.matches("c1.conduit-gateway-x"))
        #expect(!FieldRules.deviceCursor.matches(""))
        #expect(try PageRequest(cursor: PageRequest.encodeCursor("meter-1")).decodedCursor() == "meter-1")
        #expect(throws: HubError.self) { try PageRequest(cursor: "YzE6bWV0ZXI").decodedCursor() }
    }

    @Test("topics: the checks come in order, each naming its rule; 256 bytes of UTF-8, not characters")
    func topics() {
        let rule = FieldRules.uplinkTopic
        #expect(rule.violation("conduit/{deviceId}/up/{subtopic}") == nil)
        #expect(rule.violation("") == "must not be empty")
        #expect(rule.violation("a/{deviceId") == "has a '{' without its '}'")
        #expect(rule.violation("a/{device}") == FieldRules.unknownPlaceholderMessage)
        #expect(rule.violation("a/}") == "has a '}' without its '{'")
        #expect(rule.violation("a/+/b") == "must not contain the MQTT wildcards + or #")
        #expect(rule.violation("$aws/x") == "must not start with $ (reserved by AWS IoT)")
        #expect(rule.violation("a\u{0}b") == "must not contain control characters")
        #expect(rule.violation(String(repeating: "é", count: 129)) == "must be at most 256 bytes")
        #expect(rule.violation("a/b/c/d/e/f/g/h/i") == "must have at most 7 slashes (AWS IoT allows 8 topic levels)")
        #expect(FieldRules.downlinkPrefix.violation("a/b/") == "must not end with '/'")
        #expect(FieldRules.downlinkPrefix.violation("conduit/devices") == nil)
    }

    @Test("integration fields: regions, role ARNs, endpoints, keys")
    func integrationFields() {
        #expect(FieldRules.region.matches("us-gov-west-1"))
        #expect(!FieldRules.region.matches("us-east-+1"))
        #expect(!FieldRules.region.matches("Europe"))
        #expect(FieldRules.roleARN.matches("arn:aws-cn:iam::123456789012:role/service-role/conduit"))
        #expect(!FieldRules.roleARN.matches("arn:aws:iam::12345678901２:role/x"))
        #expect(FieldRules.mqttEndpoint.matches("a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883"))
        #expect(FieldRules.mqttEndpoint.matches("[::1]:443"))
        for bad in ["host", "host:0", "host:65536", "-host:80", "host:+80", "a:b:80"] {
            #expect(!FieldRules.mqttEndpoint.matches(bad), "\(bad)")
        }
        #expect(FieldRules.secretAccessKey.matches("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"))
        #expect(!FieldRules.secretAccessKey.matches("with space"))
    }
}
