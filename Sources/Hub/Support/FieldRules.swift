/// The rules of the API's string fields, each stated once. ``Validation`` and the integration
/// rules check values with them; the OpenAPI document (`/openapi.yaml`) prints them, so what it
/// promises is what the server enforces.
public enum FieldRules {
    /// Unicode's control characters (general category Cc), as the inside of a character class.
    static let controlCharacters = #"\u0000-\u001F\u007F-\u009F"#
    /// Foundation's `CharacterSet.whitespaces` (what display names are trimmed of), as the inside of
    /// a character class. U+2000 and U+2001 stand alone: Swift's `Regex` refuses them as range
    /// bounds, since they decompose to other characters.
    static let blankCharacters = #" \u00A0\u1680\u2000\u2001\u2002-\u200B\u202F\u205F\u3000"#

    // MARK: Devices

    /// Device ids are AWS IoT thing names, but for the names of Conduit's own downlink gateways.
    public static let deviceID = StringRule([
        .pattern("^[a-zA-Z0-9:_-]{1,128}$", message: "must match [a-zA-Z0-9:_-]{1,128} (it is the device's AWS IoT thing name)"),
        .pattern(
            "^(?!\(Validation.gatewayThingPrefix))",
            message: "must not start with \(Validation.gatewayThingPrefix) (the things of Conduit's downlink gateways)"
        ),
    ])

    /// Labels.
    public static let label = StringRule(pattern: "^[a-zA-Z0-9:_.-]{1,64}$", message: "must match [a-zA-Z0-9:_.-]{1,64}")
    /// How many labels a device or a binding may list.
    public static let maximumLabels = 32

    /// Attribute names, as AWS IoT's thing attribute names.
    public static let attributeKey = StringRule(
        pattern: "^[a-zA-Z0-9_.,@/:#-]{1,128}$", message: "attribute names must match [a-zA-Z0-9_.,@/:#-]{1,128}"
    )
    /// Attribute values (AWS's limit on a thing attribute's value).
    public static let attributeValue = StringRule([.length(min: nil, max: 800, message: "must be at most 800 characters")])
    /// How many attributes a device may have.
    public static let maximumAttributes = 50

    /// Display names (of devices, tokens, integrations): not blank, at most 256 characters, no
    /// control characters. Stored without the spaces around them.
    public static let displayName = StringRule([
        .pattern("[^\(controlCharacters)\(blankCharacters)]", message: "must not be empty"),
        .length(min: 1, max: 256, message: "must be at most 256 characters"),
        .pattern("^[^\(controlCharacters)]*$", message: "must not contain control characters"),
    ])

    /// Tenant names.
    public static let tenantName = StringRule(pattern: "^[a-z0-9][a-z0-9-]{0,62}$", message: "must match [a-z0-9][a-z0-9-]{0,62}")

    /// Ids Conduit makes (tokens', integrations'): printable ASCII, at most 64 bytes. Anything
    /// else names nothing, and is answered 404 without a query.
    public static let opaqueIdentifier = StringRule(pattern: "^[!-~]{1,64}$", message: "must be 1 to 64 printable ASCII characters")

    // MARK: Paging

    static let cursorMessage = "must be a nextCursor returned by this list"
    /// A cursor of a list by device id (devices, things): `c1.` and the last id of the page.
    public static let deviceCursor = StringRule([
        .pattern(#"^c1\.[a-zA-Z0-9:_-]{1,128}$"#, message: cursorMessage),
        .pattern(#"^c1\.(?!\#(Validation.gatewayThingPrefix))"#, message: cursorMessage),
    ])
    /// A cursor of a list newest first (events, messages): `c1.` and the last sequence number of the page.
    public static let sequenceCursor = StringRule(pattern: #"^c1\.[0-9]{1,18}$"#, message: cursorMessage)

    // MARK: Shadows and downlinks

    /// Shadow names, as AWS IoT's.
    public static let shadowName = StringRule(pattern: "^[a-zA-Z0-9:_-]{1,64}$", message: "must match [a-zA-Z0-9:_-]{1,64}")

    /// A downlink's payload: padded base64 of at most ``Downlinks/maximumPayload`` bytes.
    public static let downlinkPayload: StringRule = {
        let maximum = Downlinks.maximumPayload
        let base64 = "[A-Za-z0-9+/]"
        // Whole groups of 4 characters carry 3 bytes; a last padded group carries 1 or 2.
        let lastGroup = ["", "\(base64){2}==", "\(base64){2}==|\(base64){3}="][maximum % 3]
        return StringRule([
            .pattern("^(?:\(base64){4})*(?:\(base64){2}==|\(base64){3}=)?$", message: "must be base64"),
            .pattern(
                "^(?:\(base64){4}){0,\(maximum / 3)}" + (lastGroup.isEmpty ? "$" : "(?:\(lastGroup))?$"),
                message: "must decode to at most \(maximum) bytes (AWS IoT's message size)"
            ),
        ])
    }()

    // MARK: Integrations

    /// AWS regions: us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-4...
    public static let region = StringRule([
        .pattern("^(?:[a-z]+-){2,}[0-9]+$", message: "must be an AWS region such as eu-west-1"),
        .length(min: nil, max: 32, message: "must be an AWS region such as eu-west-1"),
    ])

    /// Thing group names (Conduit's rule, a little narrower than AWS's).
    public static let thingGroup = StringRule(pattern: "^[a-zA-Z0-9_-]{1,128}$", message: "must match [a-zA-Z0-9_-]{1,128}")

    /// AWS IoT policy names.
    public static let policyName = StringRule(
        pattern: "^[a-zA-Z0-9_+=,.@-]{1,128}$", message: #"must match [\w+=,.@-]{1,128} (an AWS IoT policy name)"#
    )

    /// How many device attributes an integration may copy to each thing (a thing without a thing
    /// type holds 3 attributes, and `name` is one).
    public static let maximumThingAttributes = 2

    /// AWS access key ids.
    public static let accessKeyID = StringRule(pattern: "^[A-Z0-9]{16,128}$", message: "must be an AWS access key id: 16 to 128 of [A-Z0-9]")
    /// AWS secret access keys.
    public static let secretAccessKey = StringRule(
        pattern: "^[!-~]{1,128}$", message: "must be 1 to 128 printable ASCII characters without spaces"
    )
    /// IAM role ARNs.
    public static let roleARN = StringRule([
        .pattern(
            #"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[a-zA-Z0-9_+=,.@/-]+$"#, message: "must be an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME"
        ),
        .length(min: nil, max: 2048, message: "must be an IAM role ARN: arn:aws:iam::ACCOUNT:role/NAME"),
    ])
    /// External ids of AssumeRole.
    public static let externalID = StringRule(pattern: "^[a-zA-Z0-9_+=,.@:/-]{2,1224}$", message: #"must be 2 to 1224 of [\w+=,.@:/-]"#)

    /// How an integration sends a device's messages to AWS IoT: as they came, or in a JSON envelope.
    public static let payloadFormats = ["raw", "envelope"]

    /// The placeholders an uplink topic may hold.
    public static let placeholders = ["deviceId", "deviceName", "subtopic"]
    static let unknownPlaceholderMessage = "unknown placeholder; known: \(placeholders.map { "{\($0)}" }.joined(separator: ", "))"

    /// An uplink topic template: an MQTT topic for AWS IoT (no wildcards, not under `$`, at most 7
    /// slashes and 256 bytes) whose `{...}` are placeholders Conduit knows.
    public static let uplinkTopic: StringRule = {
        let placeholder = #"\{(?:"# + placeholders.joined(separator: "|") + #")\}"#
        return StringRule([
            .length(min: 1, max: nil, message: "must not be empty"),
            .pattern(#"^(?:[^{]|\{[^}]*\})*$"#, message: "has a '{' without its '}'"),
            .pattern("^(?:[^{]|\(placeholder))*$", message: unknownPlaceholderMessage),
            .pattern("^(?:[^{}]|\(placeholder))*$", message: "has a '}' without its '{'"),
        ] + topicChecks(slashes: 7, slashMessage: "must have at most 7 slashes (AWS IoT allows 8 topic levels)"))
    }()

    static let perThingUplinkTopicMessage =
        "must name the thing as a per-thing policy can scope it: {deviceId} once as a whole topic level, {subtopic} only as the whole last level after it, no {deviceName}, '*', '?' or '${'"
    /// An uplink topic template a per-thing policy (one Conduit makes) can grant without widening
    /// it to other things' topics (see `PolicyScope`): the template must follow ``uplinkTopic`` too.
    public static let perThingUplinkTopic = StringRule(
        pattern: #"^(?:[^/{}*?]*/)*\{deviceId\}(?:/[^/{}*?]*)*(?:/\{subtopic\})?$"#, message: perThingUplinkTopicMessage
    )

    /// The prefix of the AWS IoT topics an integration's gateway takes downlinks from:
    /// `{prefix}/{deviceId}/down`.
    public static let downlinkPrefix = StringRule(
        [
            .length(min: 1, max: nil, message: "must not be empty"),
            .pattern("^[^{}]*$", message: "takes no placeholders"),
            .pattern("[^/]$", message: "must not end with '/'"),
        ] + topicChecks(slashes: 5, slashMessage: "must have at most 5 slashes ({downlinkPrefix}/{id}/down may have 7)") + [
            // The gateway's policy, which Conduit always makes, names these topics.
            .pattern(#"^[^*?]*$"#, message: policyWildcardMessage),
            .pattern(#"^(?:[^$]|\$(?!\{))*$"#, message: policyWildcardMessage),
        ]
    )
    static let policyWildcardMessage =
        "must not contain '*', '?' or '${', which an AWS IoT policy reads as a wildcard or variable: the gateway's policy would grant more than its topics"

    /// What every topic Conduit publishes to or subscribes at in AWS IoT must be.
    private static func topicChecks(slashes: Int, slashMessage: String) -> [StringRule.Check] {
        [
            .pattern("^[^+#]*$", message: "must not contain the MQTT wildcards + or #"),
            .pattern(#"^(?!\$)"#, message: "must not start with $ (reserved by AWS IoT)"),
            .pattern("^[^\(controlCharacters)]*$", message: "must not contain control characters"),
            .utf8Bytes(max: 256, message: "must be at most 256 bytes"),
            .pattern("^[^/]*(?:/[^/]*){0,\(slashes)}$", message: slashMessage),
        ]
    }

    /// `host:port` of an MQTT data endpoint: a DNS name or an IPv4 address (or an IPv6 one in
    /// brackets), and a port from 1 to 65535.
    public static let mqttEndpoint = StringRule(
        pattern: #"^(?:\[[0-9a-fA-F:.]+\]|(?![.-])[a-zA-Z0-9.-]{1,253}):(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"#,
        message: "must be host:port, such as a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883"
    )

    /// CA certificates (PEM) an integration's data endpoint must chain to.
    public static let mqttTrustRoots = StringRule([.utf8Bytes(max: 256 * 1024, message: "must be at most 256 KB of PEM")])

    /// An integration's ingest topic filters at most.
    public static let maximumIngestTopics = 8

    // Rules (``RuleRules`` checks these, and what no pattern can say).

    /// A rule's state names.
    public static let ruleState = StringRule(pattern: "^[A-Za-z0-9_-]{1,64}$", message: "state names must match [A-Za-z0-9_-]{1,64}")
    /// A rule's value: `$`, then `.name`, `['any name']` or `[index]` steps, at most 32.
    public static let ruleValue = StringRule([
        .utf8Bytes(max: 1024, message: "must be at most 1024 bytes"),
        .pattern(#"^\$(?:\.[A-Za-z0-9_-]+|\[[0-9]{1,6}\]|\['(?:[^'\\]|\\[\s\S])*'\]){0,32}$"#, message: "must be $ then .name, ['name'] or [index] steps (at most 32), such as $.a.b[0]"),
    ])
    /// A rule's subtopic: an MQTT topic filter under `devices/{id}/`.
    public static let ruleSubtopic = StringRule([
        .length(min: 1, max: nil, message: "must not be empty"),
        .utf8Bytes(max: 200, message: "must be 1 to 200 bytes"),
        .pattern(#"^(?:(?:\+|[^+#/\x00]*)/)*(?:\+|#|[^+#/\x00]*)$"#, message: "must be a topic filter: '+' only as a whole level, '#' only as the whole last level, no NUL"),
    ])
    /// An AWS topic a rule publishes on, with `{deviceId}`, `{state}` or `{previousState}` in it.
    public static let ruleTopic = StringRule([
        .length(min: 1, max: nil, message: "must not be empty"),
        .utf8Bytes(max: 256, message: "must be 1 to 256 bytes"),
        .pattern(#"^(?!\$)(?:[^{+#\x00]|\{(?:deviceId|state|previousState)\})+$"#, message: "must not start with $, hold + or # or NUL, and name only {deviceId}, {state} or {previousState}"),
    ])
}
