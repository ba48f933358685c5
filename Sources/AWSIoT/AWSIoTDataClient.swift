import AWS
import Foundation

/// The AWS IoT data plane (`iotdata`): publishing to topics, and device shadows.
public struct AWSIoTDataClient: Sendable {
    let client: AWSClient
    public let endpoint: AWSEndpoint

    /// - Parameter endpointURL: the account's `iot:Data-ATS` endpoint as `https://…`, or an override.
    public init(client: AWSClient, region: String, endpointURL: URL) {
        self.client = client
        self.endpoint = AWSEndpoint(url: endpointURL, region: region, signingName: "iotdata")
    }

    /// Publishes a message to a topic, as if an MQTT client had.
    public func publish(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) async throws {
        try AWSIoTValidation.publishTopic(topic)
        try AWSIoTValidation.payload(payload)
        guard qos == 0 || qos == 1 else { throw AWSIoTValidationError(field: "qos", rule: "must be 0 or 1 (AWS IoT has no QoS 2)") }
        _ = try await self.client.send(
            operation: "Publish", endpoint: self.endpoint, method: .POST, path: "/topics/\(AWSSigner.uriEncode(topic))",
            query: [("qos", String(qos)), ("retain", String(retain))], headers: [("content-type", "application/octet-stream")],
            body: payload
        )
    }

    /// The thing's shadow document (classic, or `name`d), as AWS returns it; nil when it has none.
    public func getThingShadow(thing: String, name: String? = nil) async throws -> [UInt8]? {
        try AWSIoTValidation.thingName(thing)
        if let name { try AWSIoTValidation.shadowName(name) }
        do {
            return try await self.client.send(
                operation: "GetThingShadow", endpoint: self.endpoint, method: .GET, path: "/things/\(AWSSigner.uriEncode(thing))/shadow",
                query: name.map { [("name", $0)] } ?? []
            ).body
        } catch let error as AWSError where error.code == "ResourceNotFoundException" {
            return nil
        }
    }

    /// Updates the shadow with a document such as `{"state": {"desired": {...}}, "version": 3}`;
    /// a stale version is AWS's `ConflictException` (409). Returns AWS's answer.
    public func updateThingShadow(thing: String, name: String? = nil, document: [UInt8]) async throws -> [UInt8] {
        try AWSIoTValidation.thingName(thing)
        if let name { try AWSIoTValidation.shadowName(name) }
        guard document.count <= 8 * 1024 else {
            throw AWSIoTValidationError(field: "document", rule: "must be at most 8 KB (8192 bytes)")
        }
        return try await self.client.send(
            operation: "UpdateThingShadow", endpoint: self.endpoint, method: .POST, path: "/things/\(AWSSigner.uriEncode(thing))/shadow",
            query: name.map { [("name", $0)] } ?? [], headers: [("content-type", "application/json")], body: document
        ).body
    }

    /// Deletes the thing's shadow; returns AWS's answer (`version`, `timestamp`).
    @discardableResult
    public func deleteThingShadow(thing: String, name: String? = nil) async throws -> [UInt8] {
        try AWSIoTValidation.thingName(thing)
        if let name { try AWSIoTValidation.shadowName(name) }
        return try await self.client.send(
            operation: "DeleteThingShadow", endpoint: self.endpoint, method: .DELETE, path: "/things/\(AWSSigner.uriEncode(thing))/shadow",
            query: name.map { [("name", $0)] } ?? []
        ).body
    }

    /// The names of the thing's named shadows (every page).
    public func listNamedShadows(thing: String) async throws -> [String] {
        try AWSIoTValidation.thingName(thing)
        struct Page: Decodable {
            let results: [String]?
            let nextToken: String?
        }
        return try await AWSIoTClient.allPages { token in
            var query = [("pageSize", "100")]
            if let token { query.append(("nextToken", token)) }
            let response = try await self.client.send(
                operation: "ListNamedShadowsForThing", endpoint: self.endpoint, method: .GET,
                path: "/api/things/shadow/ListNamedShadowsForThing/\(AWSSigner.uriEncode(thing))", query: query
            )
            let page = try JSONDecoder().decode(Page.self, from: Data(response.body))
            return (page.results ?? [], page.nextToken)
        }
    }
}
