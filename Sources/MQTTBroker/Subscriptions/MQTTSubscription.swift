import MQTT

/// One subscription of one session.
struct MQTTSubscription: Sendable, Hashable {
    /// The filter as the client sent it, `$share/...` included: the key in the session.
    var filter: String
    /// The filter matched against topics.
    var topicFilter: String
    var shareGroup: String?
    var qos: MQTTQoS
    var noLocal: Bool
    var retainAsPublished: Bool
    var retainHandling: MQTTSubscribePacket.RetainHandling
    var identifier: Int?
}
