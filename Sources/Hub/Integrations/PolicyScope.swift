import Store

/// What a policy Conduit makes may grant: a thing's policy lets it publish on its own uplink
/// topics and nobody else's. The uplink template decides those topics, so with a Conduit-made
/// policy the template must name the thing in a way that cannot match another thing's topic.
enum PolicyScope {
    /// Refuses an uplink template that a Conduit-made policy could only grant by widening it to
    /// other things' topics:
    /// - `{deviceId}` stands once, as a whole topic level (`a/{deviceId}x` would let `1` publish
    ///   as `1x`'s neighbour `1`… and `a/{deviceId}{subtopic}` as any id that starts with its own);
    /// - no `{deviceName}`: a name is not unique, and changes, so the policy would need `*` there;
    /// - `{subtopic}` only as the whole last level, after `{deviceId}`'s;
    /// - no `*`, `?` or `${`, which AWS IoT reads as policy wildcards and variables.
    /// An existing policy (`policy.name`) is the operator's to scope: any template goes with it.
    static func check(_ settings: IntegrationSettings) throws {
        // The downlink topics go into the gateway's policy, which Conduit always makes.
        for wildcard in ["*", "?", "${"] where settings.downlinkPrefix.contains(wildcard) {
            throw HubError.invalidField(
                "downlinkPrefix", "must not contain '\(wildcard)', which an AWS IoT policy reads as a wildcard or variable: the gateway's policy would grant more than its topics"
            )
        }
        // The shared policy grants the same topics, with the thing's name as a policy variable.
        guard settings.conduitMakesPolicy else { return }
        try self.check(uplinkTopic: settings.uplinkTopic)
    }

    static func check(uplinkTopic template: String) throws {
        // The rule (which the OpenAPI document prints) decides; the steps below say why it refuses.
        if FieldRules.perThingUplinkTopic.matches(template) { return }
        func refuse(_ reason: String) -> HubError {
            HubError.invalidField(
                "uplinkTopic", "\(reason), or the policy Conduit makes (per thing or shared) would let one thing publish on another's topics; use an existing policy (policy.name) for such a template"
            )
        }
        for wildcard in ["*", "?", "${"] where template.contains(wildcard) {
            throw refuse("must not contain '\(wildcard)', which an AWS IoT policy reads as a wildcard or variable")
        }
        if template.contains("{deviceName}") { throw refuse("must not use {deviceName} (names are neither unique nor fixed)") }
        let levels = template.split(separator: "/", omittingEmptySubsequences: false)
        let idLevels = levels.indices.filter { levels[$0].contains("{deviceId}") }
        guard idLevels.count == 1, let idLevel = idLevels.first, levels[idLevel] == "{deviceId}" else {
            throw refuse("must have {deviceId} once, as a whole topic level (such as conduit/{deviceId}/up)")
        }
        let subtopicLevels = levels.indices.filter { levels[$0].contains("{subtopic}") }
        if !subtopicLevels.isEmpty {
            guard subtopicLevels == [levels.count - 1], levels[levels.count - 1] == "{subtopic}", idLevel < levels.count - 1 else {
                throw refuse("may have {subtopic} only as the whole last topic level, after {deviceId}'s (such as conduit/{deviceId}/{subtopic})")
            }
        }
        throw refuse(FieldRules.perThingUplinkTopicMessage)
    }

    /// The topic a thing's policy grants for the (checked) template: the thing's id in its level,
    /// and `*` for a last `{subtopic}` level; nil for a template that fails ``check(_:)`` (one
    /// stored before the rule), whose uplink topic the policy then does not grant at all.
    static func uplinkResource(_ template: String, thingName: String) -> String? {
        guard (try? self.check(uplinkTopic: template)) != nil else { return nil }
        return template.replacingOccurrences(of: "{deviceId}", with: thingName).replacingOccurrences(of: "{subtopic}", with: "*")
    }
}
