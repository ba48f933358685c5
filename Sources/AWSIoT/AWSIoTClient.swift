import AWS
import Foundation

/// The AWS IoT control plane (`iot`): things, thing groups, and the account's endpoints.
public struct AWSIoTClient: Sendable {
    public let client: AWSClient
    public let endpoint: AWSEndpoint

    /// - Parameter endpointURL: an override (a VPC or FIPS endpoint, moto in tests); else AWS's own.
    public init(client: AWSClient, region: String, endpointURL: URL? = nil) {
        self.client = client
        self.endpoint = AWSEndpoint(
            url: endpointURL ?? URL(string: "https://iot.\(region).amazonaws.com")!, region: region, signingName: "iot"
        )
    }

    // MARK: Things

    public struct Thing: Sendable, Equatable, Decodable {
        public var thingName: String
        public var thingArn: String?
        public var thingId: String?
        public var attributes: [String: String]?
        public var version: Int?
    }

    /// Creates a thing; an existing thing of that name with the same attributes is returned as is
    /// (AWS's own idempotency), one with other attributes is a `ResourceAlreadyExistsException`.
    public func createThing(name: String, attributes: [String: String] = [:]) async throws -> Thing {
        try AWSIoTValidation.thingName(name)
        try AWSIoTValidation.attributes(attributes)
        struct Body: Encodable {
            struct Payload: Encodable { let attributes: [String: String] }
            let attributePayload: Payload
        }
        return try await self.call(
            "CreateThing", .POST, "/things/\(Self.segment(name))", body: Body(attributePayload: .init(attributes: attributes))
        )
    }

    public func describeThing(name: String) async throws -> Thing {
        try AWSIoTValidation.thingName(name)
        return try await self.call("DescribeThing", .GET, "/things/\(Self.segment(name))")
    }

    /// Replaces the thing's attributes (`merge: true` keeps the ones not named).
    public func updateThing(name: String, attributes: [String: String], merge: Bool = false) async throws {
        try AWSIoTValidation.thingName(name)
        try AWSIoTValidation.attributes(attributes)
        struct Body: Encodable {
            struct Payload: Encodable {
                let attributes: [String: String]
                let merge: Bool
            }
            let attributePayload: Payload
        }
        let _: Empty = try await self.call(
            "UpdateThing", .PATCH, "/things/\(Self.segment(name))", body: Body(attributePayload: .init(attributes: attributes, merge: merge))
        )
    }

    public func deleteThing(name: String) async throws {
        try AWSIoTValidation.thingName(name)
        let _: Empty = try await self.call("DeleteThing", .DELETE, "/things/\(Self.segment(name))")
    }

    /// Every thing of the account (every page), optionally with one attribute value.
    public func listThings(attributeName: String? = nil, attributeValue: String? = nil, pageSize: Int = 250) async throws -> [Thing] {
        struct Page: Decodable {
            let things: [Thing]?
            let nextToken: String?
        }
        return try await Self.allPages { token in
            var query = [("maxResults", String(pageSize))]
            if let attributeName { query.append(("attributeName", attributeName)) }
            if let attributeValue { query.append(("attributeValue", attributeValue)) }
            if let token { query.append(("nextToken", token)) }
            let page: Page = try await self.call("ListThings", .GET, "/things", query: query)
            return (page.things ?? [], page.nextToken)
        }
    }

    // MARK: Thing groups

    public struct ThingGroup: Sendable, Equatable, Decodable {
        public var thingGroupName: String
        public var thingGroupArn: String?
        public var thingGroupId: String?
    }

    public func createThingGroup(name: String) async throws -> ThingGroup {
        try AWSIoTValidation.thingGroupName(name)
        return try await self.call("CreateThingGroup", .POST, "/thing-groups/\(Self.segment(name))", body: [String: String]())
    }

    public func describeThingGroup(name: String) async throws -> ThingGroup {
        try AWSIoTValidation.thingGroupName(name)
        return try await self.call("DescribeThingGroup", .GET, "/thing-groups/\(Self.segment(name))")
    }

    public func deleteThingGroup(name: String) async throws {
        try AWSIoTValidation.thingGroupName(name)
        let _: Empty = try await self.call("DeleteThingGroup", .DELETE, "/thing-groups/\(Self.segment(name))")
    }

    public func addThingToThingGroup(thing: String, group: String) async throws {
        try AWSIoTValidation.thingName(thing)
        try AWSIoTValidation.thingGroupName(group)
        let _: Empty = try await self.call(
            "AddThingToThingGroup", .PUT, "/thing-groups/addThingToThingGroup", body: ["thingName": thing, "thingGroupName": group]
        )
    }

    public func removeThingFromThingGroup(thing: String, group: String) async throws {
        try AWSIoTValidation.thingName(thing)
        try AWSIoTValidation.thingGroupName(group)
        let _: Empty = try await self.call(
            "RemoveThingFromThingGroup", .PUT, "/thing-groups/removeThingFromThingGroup", body: ["thingName": thing, "thingGroupName": group]
        )
    }

    /// Every thing in the group (every page).
    public func listThingsInThingGroup(group: String) async throws -> [String] {
        try AWSIoTValidation.thingGroupName(group)
        struct Page: Decodable {
            let things: [String]?
            let nextToken: String?
        }
        return try await Self.allPages { token in
            var query = [("maxResults", "250")]
            if let token { query.append(("nextToken", token)) }
            let page: Page = try await self.call("ListThingsInThingGroup", .GET, "/thing-groups/\(Self.segment(group))/things", query: query)
            return (page.things ?? [], page.nextToken)
        }
    }

    // MARK: Endpoints

    /// The account's data endpoint: `iot:Data-ATS` (devices and Conduit's MQTT connection) by default.
    public func describeEndpoint(type: String = "iot:Data-ATS") async throws -> String {
        struct Output: Decodable { let endpointAddress: String }
        let output: Output = try await self.call("DescribeEndpoint", .GET, "/endpoint", query: [("endpointType", type)])
        return output.endpointAddress
    }

    // MARK: Plumbing

    struct Empty: Decodable {}

    /// The most pages one list reads: 400 pages of 250 are 100,000 items. An endpoint that
    /// answers every page with another token (or the same one again) cannot keep Conduit asking.
    public static let maximumPages = 400

    /// Every item of a paged list: asks for pages with the previous page's token (`nextToken`
    /// or `nextMarker`) until a page comes without one, for at most ``maximumPages``.
    static func allPages<Item>(
        maximumPages: Int = AWSIoTClient.maximumPages, _ fetch: (_ token: String?) async throws -> (items: [Item], next: String?)
    ) async throws -> [Item] {
        var items: [Item] = []
        var token: String?
        var pages = 0
        repeat {
            guard pages < maximumPages else {
                throw AWSError(
                    code: "TooManyPages", message: "the list had more than \(maximumPages) pages; Conduit reads no further", statusCode: 0
                )
            }
            let page = try await fetch(token)
            pages += 1
            items += page.items
            let next = page.next.flatMap { $0.isEmpty ? nil : $0 }
            guard next == nil || next != token else {
                throw AWSError(code: "RepeatedPageToken", message: "the list answered the same page token twice", statusCode: 0)
            }
            token = next
        } while token != nil
        return items
    }

    static func segment(_ value: String) -> String { AWSSigner.uriEncode(value) }

    func call<Output: Decodable>(
        _ operation: String, _ method: HTTPMethodName, _ path: String, query: [(String, String)] = [],
        headers: [(String, String)] = []
    ) async throws -> Output {
        try await self.call(operation, method, path, query: query, headers: headers, body: Optional<[String: String]>.none)
    }

    func call<Output: Decodable, Body: Encodable>(
        _ operation: String, _ method: HTTPMethodName, _ path: String, query: [(String, String)] = [],
        headers: [(String, String)] = [], body: Body?, idempotent: Bool = true
    ) async throws -> Output {
        let bytes = try body.map { Array(try JSONEncoder().encode($0)) } ?? []
        let response = try await self.client.send(
            operation: operation, endpoint: self.endpoint, method: method.nio, path: path, query: query,
            headers: headers + (bytes.isEmpty ? [] : [("content-type", "application/json")]), body: bytes, idempotent: idempotent
        )
        if Output.self == Empty.self { return Empty() as! Output }
        return try JSONDecoder().decode(Output.self, from: Data(response.body.isEmpty ? Array("{}".utf8) : response.body))
    }
}

/// The HTTP methods the IoT APIs use.
enum HTTPMethodName {
    case GET, POST, PUT, PATCH, DELETE
}
