import Foundation

/// A webhook of a tenant: where events go, signed with its secret.
public struct Webhook: Sendable, Equatable {
    public var id: String
    public var tenantID: String
    /// Unique in the tenant.
    public var name: String
    public var url: String
    /// Sealed.
    public var secret: String
    /// The secret before the last rotation, sealed: deliveries are signed with both until
    /// `previousSecretUntil`.
    public var previousSecret: String?
    public var previousSecretUntil: Date?
    /// The event types it takes.
    public var events: [String]
    /// Why deliveries to it are held (it answered 410 Gone); nil while active.
    public var pausedReason: String?
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, tenantID: String, name: String, url: String, secret: String, previousSecret: String? = nil, previousSecretUntil: Date? = nil,
        events: [String], pausedReason: String? = nil, createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.url = url
        self.secret = secret
        self.previousSecret = previousSecret
        self.previousSecretUntil = previousSecretUntil
        self.events = events
        self.pausedReason = pausedReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// Where a delivery stands.
public enum WebhookDeliveryState: String, Sendable, Equatable, CaseIterable {
    /// Waiting for its next try (or for the ones before it of its device).
    case pending
    /// The endpoint answered 2xx.
    case delivered
    /// Given up after the longest time a delivery is tried; it can be sent again.
    case failed
}

/// One message to one webhook, with where it stands.
public struct WebhookDelivery: Sendable, Equatable {
    public var sequence: Int
    public var webhookID: String
    public var tenantID: String
    /// The `webhook-id` header: the same on every try, so that receivers can drop repeats.
    public var messageID: String
    /// The device it is about ("" for none): a device's deliveries go in order.
    public var deviceID: String
    public var eventType: String
    public var body: String
    public var createdAt: Date
    public var state: WebhookDeliveryState
    public var attempts: Int
    public var nextAttemptAt: Date
    public var lastStatus: Int?
    public var lastError: String?
    public var finishedAt: Date?
}

/// One try of a delivery: the delivery log.
public struct WebhookAttempt: Sendable, Equatable {
    public var deliverySequence: Int
    public var attempt: Int
    public var at: Date
    /// The HTTP status, when an answer came.
    public var status: Int?
    public var latencyMilliseconds: Int
    public var error: String?

    public init(deliverySequence: Int, attempt: Int, at: Date, status: Int?, latencyMilliseconds: Int, error: String?) {
        self.deliverySequence = deliverySequence
        self.attempt = attempt
        self.at = at
        self.status = status
        self.latencyMilliseconds = latencyMilliseconds
        self.error = error
    }
}
