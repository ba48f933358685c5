import Foundation
import Hub
import Hummingbird

/// A device as the API shows it. `secret` appears only in the responses that made it.
struct DeviceRepresentation: ResponseEncodable {
    let id: String
    let name: String
    let status: DeviceStatus
    let labels: [String]
    let attributes: [String: String]
    let createdAt: Date
    let updatedAt: Date
    let statusChangedAt: Date
    let secret: String?

    init(_ device: Device, secret: String? = nil) {
        self.id = device.id
        self.name = device.name
        self.status = device.status
        self.labels = device.labels
        self.attributes = device.attributes
        self.createdAt = device.createdAt
        self.updatedAt = device.updatedAt
        self.statusChangedAt = device.statusChangedAt
        self.secret = secret
    }
}

/// An event as the API shows it; `data` is the event's details object.
struct EventRepresentation: Encodable {
    let id: String
    let type: String
    let deviceId: String?
    let actor: String
    let data: JSONValue
    let createdAt: Date

    init(_ event: Event) {
        self.id = String(event.sequence)
        self.type = event.type
        self.deviceId = event.deviceID
        self.actor = event.actor
        self.data = (try? JSONDecoder().decode(JSONValue.self, from: Data(event.data.utf8))) ?? .object([:])
        self.createdAt = event.createdAt
    }
}

/// A message a device published; the payload in base64.
struct MessageRepresentation: Encodable {
    let topic: String
    let payload: String
    /// The payload as text, when it is valid UTF-8.
    let payloadText: String?
    /// The payload as JSON, when it parses as JSON (integers kept exactly).
    let payloadJson: JSONValue?
    let qos: Int
    let retain: Bool
    let receivedAt: Date
    /// `device`, or `aws` for a message taken from AWS IoT on an ingest topic.
    let source: String

    init(_ message: DeviceMessage) {
        self.topic = message.topic
        self.source = message.source ?? "device"
        self.payload = message.payload.base64EncodedString()
        self.payloadText = String(data: message.payload, encoding: .utf8)
        self.payloadJson = self.payloadText == nil ? nil : try? JSONDecoder().decode(JSONValue.self, from: message.payload)
        self.qos = message.qos
        self.retain = message.retain
        self.receivedAt = message.receivedAt
    }
}

/// An API token as the API shows it; `token` appears only in the response that made it.
struct TokenRepresentation: ResponseEncodable {
    let id: String
    let name: String
    let role: Role
    let hint: String
    let createdAt: Date
    let lastUsedAt: Date?
    let token: String?

    init(_ token: APIToken, secret: String? = nil) {
        self.id = token.id
        self.name = token.name
        self.role = token.role
        self.hint = token.hint
        self.createdAt = token.createdAt
        self.lastUsedAt = token.lastUsedAt
        self.token = secret
    }
}

/// A list response: `{"items": [...], "nextCursor": "..." | null}`.
struct ListRepresentation<Item: Encodable & Sendable>: ResponseEncodable {
    let items: [Item]
    let nextCursor: String?

    private enum Keys: String, CodingKey { case items, nextCursor }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(self.items, forKey: .items)
        try container.encode(self.nextCursor, forKey: .nextCursor)
    }
}

/// A queued downlink, in Helium's words: `payload_raw` is base64.
struct DownlinkRepresentation: ResponseEncodable {
    let id: String
    let payload_raw: String
    let confirmed: Bool
    let port: Int?
    let source: String
    let createdAt: Date

    init(_ downlink: Downlink) {
        self.id = String(downlink.sequence)
        self.payload_raw = downlink.payload.base64EncodedString()
        self.confirmed = downlink.confirmed
        self.port = downlink.port
        self.source = downlink.source
        self.createdAt = downlink.createdAt
    }
}
