import AsyncHTTPClient
import Backoff
import Foundation
import Logging
import Metrics
import NIOCore
import Store
import Synchronization

/// Sends webhook deliveries: each device's in order (a delivery waits until the one before it
/// was delivered or given up), many devices and webhooks at once. A failed try is tried again
/// with exponential backoff and jitter, or after the endpoint's `Retry-After`, for up to
/// ``WebhookEnvironment/maximumAge``; then the delivery is kept as failed, to be sent again from
/// the API. An endpoint that answers 410 Gone is paused. Every try is in the delivery log.
public final class WebhookDispatcher: Sendable {
    public struct Configuration: Sendable {
        /// Deliveries in flight at once.
        public var concurrency: Int
        /// The longest an idle dispatcher sleeps before looking again.
        public var pollInterval: TimeInterval

        public init(concurrency: Int = 32, pollInterval: TimeInterval = 1) {
            self.concurrency = concurrency
            self.pollInterval = pollInterval
        }
    }

    /// A queue: one webhook's deliveries about one device.
    private struct QueueKey: Hashable {
        var webhookID: String
        var deviceID: String
    }

    /// The process's client for webhooks: redirects are never followed (a redirect could lead
    /// anywhere the outbound rules forbid).
    static let httpClient: HTTPClient = {
        HTTPClient(eventLoopGroupProvider: .singleton, configuration: WebhookDispatcher.clientConfiguration(dnsOverride: [:]))
    }()

    static func clientConfiguration(dnsOverride: [String: String]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.dnsOverride = dnsOverride
        configuration.connectionPool = .init(idleTimeout: .seconds(30))
        return configuration
    }

    private let hub: Hub
    private let configuration: Configuration
    private let logger: Logger
    private let inFlight = Mutex<Set<QueueKey>>([])
    private let delivered = Counter(label: "conduit_webhook_deliveries_total", dimensions: [("outcome", "delivered")])
    private let retried = Counter(label: "conduit_webhook_deliveries_total", dimensions: [("outcome", "retry")])
    private let gaveUp = Counter(label: "conduit_webhook_deliveries_total", dimensions: [("outcome", "failed")])

    public init(hub: Hub, configuration: Configuration = Configuration()) {
        self.hub = hub
        self.configuration = configuration
        self.logger = hub.logger
    }

    /// Sends until cancelled.
    public func run() async {
        await withTaskGroup(of: Void.self) { group in
            var running = 0
            while !Task.isCancelled {
                let rang = self.hub.webhookDoorbell.generation
                var started = 0
                do {
                    let now = self.hub.now()
                    for delivery in try await self.hub.store.session.webhooks.due(at: now, limit: self.configuration.concurrency * 2) {
                        let key = QueueKey(webhookID: delivery.webhookID, deviceID: delivery.deviceID)
                        guard self.inFlight.withLock({ $0.insert(key).inserted }) else { continue }
                        while running >= self.configuration.concurrency, await group.next() != nil { running -= 1 }
                        running += 1
                        started += 1
                        group.addTask {
                            defer { _ = self.inFlight.withLock { $0.remove(key) } }
                            await self.attempt(delivery)
                        }
                    }
                } catch {
                    self.logger.warning("webhook deliveries could not be read", metadata: ["error": "\(error)"])
                }
                if started == 0 {
                    await self.hub.webhookDoorbell.wait(since: rang, timeout: .milliseconds(Int64(self.configuration.pollInterval * 1000)))
                }
            }
            group.cancelAll()
        }
    }

    /// Sends what is due now until nothing is, or `timeout` passes: for tests and tools.
    /// True when nothing was left due.
    @discardableResult
    public func drain(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            guard let due = try? await self.hub.store.session.webhooks.due(at: self.hub.now(), limit: self.configuration.concurrency), !due.isEmpty else {
                return true
            }
            await withTaskGroup(of: Void.self) { group in
                for delivery in due { group.addTask { await self.attempt(delivery) } }
            }
        }
        return false
    }

    /// One try of one delivery, recorded.
    func attempt(_ delivery: WebhookDelivery) async {
        let store = self.hub.store
        let environment = self.hub.webhookEnvironment
        do {
            // Held for the try (and a margin): another node, or this one after a crash, tries
            // it again only once that passed.
            let now = self.hub.now()
            guard try await store.transaction({ session in
                try await session.webhooks.claim(delivery, until: now.addingTimeInterval(environment.timeout + 30))
            })
            else { return }
            guard let webhook = try await store.session.webhooks.get(id: delivery.webhookID) else { return }
            guard webhook.pausedReason == nil else { return }
            let outcome = await self.send(delivery, to: webhook)
            try await self.record(outcome, of: delivery, webhook: webhook)
        } catch {
            // Deleted while it was tried: its deliveries went with it, and there is nothing to record.
            if case .some(.none) = try? await store.session.webhooks.get(id: delivery.webhookID) {
                self.logger.debug("webhook deleted while a delivery was tried", metadata: ["webhook_id": "\(delivery.webhookID)", "delivery": "\(delivery.sequence)"])
                return
            }
            self.logger.warning(
                "webhook delivery could not be tried", metadata: ["webhook_id": "\(delivery.webhookID)", "delivery": "\(delivery.sequence)", "error": "\(error)"]
            )
        }
    }

    /// What one try came to.
    struct Outcome: Sendable {
        var at: Date
        var status: Int?
        var latency: Duration
        var error: String?
        /// Seconds the endpoint asked to wait (`Retry-After`).
        var retryAfter: TimeInterval?
    }

    private func send(_ delivery: WebhookDelivery, to webhook: Webhook) async -> Outcome {
        let started = ContinuousClock.now
        let at = self.hub.now()
        func failure(_ error: String) -> Outcome { Outcome(at: at, status: nil, latency: ContinuousClock.now - started, error: error) }
        let environment = self.hub.webhookEnvironment
        let target: WebhookTarget
        do {
            target = try await WebhookTarget.resolve(webhook.url, environment: environment)
        } catch {
            return failure("not sent: \(error)")
        }
        var secrets: [String] = []
        do {
            let binding = SecretBinding.webhookSecret(tenantID: webhook.tenantID, webhookID: webhook.id)
            secrets.append(try self.hub.secrets.open(webhook.secret, for: binding))
            if let previous = webhook.previousSecret, let until = webhook.previousSecretUntil, until > at {
                secrets.append(try self.hub.secrets.open(previous, for: binding))
            }
        } catch {
            return failure("not sent: the webhook's secret cannot be opened with this master key")
        }
        let timestamp = Int(at.timeIntervalSince1970)
        var request = HTTPClientRequest(url: target.url.absoluteString)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "Conduit-Webhooks/1")
        request.headers.add(name: "webhook-id", value: delivery.messageID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        request.headers.add(name: "webhook-signature", value: WebhookSignature.header(id: delivery.messageID, timestamp: timestamp, body: delivery.body, secrets: secrets))
        request.body = .bytes(ByteBuffer(string: delivery.body))
        // A host name is reached at the address just checked, not resolved again by the client
        // (which could answer otherwise); TLS still checks the certificate against the name.
        let client: HTTPClient
        let ownClient: Bool
        if let address = target.address {
            client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: Self.clientConfiguration(dnsOverride: [target.endpoint.host: address]))
            ownClient = true
        } else {
            client = Self.httpClient
            ownClient = false
        }
        defer {
            if ownClient { Task { try? await client.shutdown() } }
        }
        do {
            let response = try await client.execute(request, timeout: .milliseconds(Int64(environment.timeout * 1000)))
            // Read (a little of) the answer, so that the connection can be used again.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            let status = Int(response.status.code)
            var outcome = Outcome(at: at, status: status, latency: ContinuousClock.now - started, error: nil)
            if !(200..<300).contains(status) {
                outcome.error = (300..<400).contains(status) ? "answered \(status): redirects are not followed" : "answered \(status)"
                outcome.retryAfter = response.headers.first(name: "retry-after").flatMap { Self.retryAfter($0, now: at) }
            }
            return outcome
        } catch {
            return failure("\(error)")
        }
    }

    /// `Retry-After` as seconds: a number of seconds or an HTTP date.
    static func retryAfter(_ value: String, now: Date) -> TimeInterval? {
        let value = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int(value), seconds >= 0 { return TimeInterval(seconds) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    private func record(_ outcome: Outcome, of delivery: WebhookDelivery, webhook: Webhook) async throws {
        let environment = self.hub.webhookEnvironment
        let attempt = WebhookAttempt(
            deliverySequence: delivery.sequence, attempt: delivery.attempts + 1, at: outcome.at, status: outcome.status,
            latencyMilliseconds: Int(outcome.latency.components.seconds * 1000 + outcome.latency.components.attoseconds / 1_000_000_000_000_000),
            error: outcome.error
        )
        let now = self.hub.now()
        if let status = outcome.status, (200..<300).contains(status) {
            try await self.hub.store.transaction { session in
                try await session.webhooks.record(attempt, state: .delivered, nextAttemptAt: now, finishedAt: now)
            }
            self.delivered.increment()
            return
        }
        if outcome.status == 410 {
            // Gone: the receiver says it wants no more. The delivery waits, the endpoint is paused.
            let reason = "\(webhook.url) answered 410 Gone at \(ISO8601DateFormatter().string(from: now)); resume it once the receiver is back"
            try await self.hub.store.transaction { session in
                try await session.webhooks.record(attempt, state: .pending, nextAttemptAt: now, finishedAt: nil)
                try await session.webhooks.setPaused(id: webhook.id, reason: reason, at: now)
                try await session.events.append(
                    tenantID: webhook.tenantID, type: EventType.webhookPaused, deviceID: nil, actor: "system",
                    data: EventLog.json(["webhookId": webhook.id, "webhook": webhook.name, "reason": reason]), at: now
                )
            }
            self.logger.notice("webhook paused: it answered 410 Gone", metadata: ["webhook_id": "\(webhook.id)"])
            return
        }
        var wait = environment.retry.seconds(afterFailures: attempt.attempt)
        if let retryAfter = outcome.retryAfter { wait = max(wait, min(retryAfter, environment.maximumRetryAfter)) }
        let next = now.addingTimeInterval(wait)
        let givenUp = next > delivery.createdAt.addingTimeInterval(environment.maximumAge)
        try await self.hub.store.transaction { session in
            try await session.webhooks.record(attempt, state: givenUp ? .failed : .pending, nextAttemptAt: next, finishedAt: givenUp ? now : nil)
        }
        if givenUp { self.gaveUp.increment() } else { self.retried.increment() }
    }
}
