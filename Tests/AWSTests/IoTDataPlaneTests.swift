import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Testing

@Suite("AWS IoT data plane against moto")
struct IoTDataPlaneTests {
    static func data() throws -> AWSIoTDataClient {
        let client = AWSClient(
            credentialProvider: AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDMOTO", secretAccessKey: "moto")),
            retryPolicy: AWSRetryPolicy(maximumAttempts: 3, baseDelay: 0.01), logger: .quiet
        )
        return AWSIoTDataClient(client: client, region: "us-east-1", endpointURL: try Moto.url())
    }

    static func json(_ bytes: [UInt8]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
    }

    @Test("publish reaches the data plane; bad topics and payloads never leave")
    func publish() async throws {
        let data = try Self.data()
        try await data.publish(topic: "conduit/d1/up", payload: Array(#"{"t":21.5}"#.utf8), qos: 1)
        await #expect(throws: AWSIoTValidationError(field: "topic", rule: "must not contain the wildcards + or # in a publish")) {
            try await data.publish(topic: "conduit/+/up", payload: [])
        }
        await #expect(throws: AWSIoTValidationError(field: "qos", rule: "must be 0 or 1 (AWS IoT has no QoS 2)")) {
            try await data.publish(topic: "conduit/d1/up", payload: [], qos: 2)
        }
    }

    @Test("shadows: update, read, a stale version is a conflict, named shadows, delete")
    func shadows() async throws {
        let iot = try Moto.iot()
        let data = try Self.data()
        let thing = Moto.unique("shadow-thing")
        _ = try await iot.createThing(name: thing)
        #expect(try await data.getThingShadow(thing: thing) == nil)
        _ = try await data.updateThingShadow(thing: thing, document: Array(#"{"state":{"desired":{"led":"on"}}}"#.utf8))
        let first = try Self.json(try #require(try await data.getThingShadow(thing: thing)))
        let version = try #require(first["version"] as? Int)
        #expect(((first["state"] as? [String: Any])?["desired"] as? [String: Any])?["led"] as? String == "on")
        _ = try await data.updateThingShadow(
            thing: thing, document: Array(#"{"state":{"reported":{"led":"on"}},"version":\#(version)}"#.utf8)
        )
        do {
            _ = try await data.updateThingShadow(
                thing: thing, document: Array(#"{"state":{"desired":{"led":"off"}},"version":\#(version)}"#.utf8)
            )
            Issue.record("a stale version was accepted")
        } catch let error as AWSError {
            #expect(error.statusCode == 409)
            #expect(error.code == "ConflictException")
        }
        _ = try await data.updateThingShadow(thing: thing, name: "config", document: Array(#"{"state":{"desired":{"rate":5}}}"#.utf8))
        #expect(try await data.listNamedShadows(thing: thing) == ["config"])
        try await data.deleteThingShadow(thing: thing, name: "config")
        try await data.deleteThingShadow(thing: thing)
        #expect(try await data.getThingShadow(thing: thing) == nil)
        try await iot.deleteThing(name: thing)
    }
}
