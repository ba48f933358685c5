import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Testing

/// moto_server, started by scripts/test, standing in for AWS IoT.
enum Moto {
    static func url() throws -> URL {
        try MotoPeer.url()
    }

    static func iot(attempts: Int = 3) throws -> AWSIoTClient {
        let client = AWSClient(
            credentialProvider: AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDMOTO", secretAccessKey: "moto")),
            retryPolicy: AWSRetryPolicy(maximumAttempts: attempts, baseDelay: 0.01), logger: .quiet
        )
        return AWSIoTClient(client: client, region: "us-east-1", endpointURL: try self.url())
    }

    /// A name no other test uses, for tests that share one moto.
    static func unique(_ prefix: String) -> String {
        prefix + "-" + UUID().uuidString.prefix(8).lowercased()
    }
}

@Suite("AWS IoT control plane against moto")
struct IoTControlPlaneTests {
    @Test("a thing is created with its attributes, found, created again idempotently, and deleted")
    func thingLifecycle() async throws {
        let iot = try Moto.iot()
        let name = Moto.unique("thing")
        let created = try await iot.createThing(name: name, attributes: ["name": "Boiler_7", "site": "plant-a"])
        #expect(created.thingName == name)
        #expect(created.thingArn?.hasSuffix(":thing/\(name)") == true)
        let described = try await iot.describeThing(name: name)
        #expect(described.attributes == ["name": "Boiler_7", "site": "plant-a"])
        let again = try await iot.createThing(name: name, attributes: ["name": "Boiler_7", "site": "plant-a"])
        #expect(again.thingArn == created.thingArn)
        try await iot.updateThing(name: name, attributes: ["site": "plant-b"], merge: true)
        #expect(try await iot.describeThing(name: name).attributes?["site"] == "plant-b")
        try await iot.deleteThing(name: name)
        do {
            _ = try await iot.describeThing(name: name)
            Issue.record("a deleted thing was found")
        } catch let error as AWSError {
            #expect(error.code == "ResourceNotFoundException")
            #expect(error.statusCode == 404)
        }
    }

    @Test("listing walks every page")
    func paging() async throws {
        let iot = try Moto.iot()
        let batch = Moto.unique("batch")
        var names: Set<String> = []
        for index in 0..<7 {
            let name = "\(batch)-\(index)"
            _ = try await iot.createThing(name: name, attributes: ["batch": batch])
            names.insert(name)
        }
        let listed = try await iot.listThings(attributeName: "batch", attributeValue: batch, pageSize: 3)
        #expect(Set(listed.map(\.thingName)) == names)
        #expect(listed.count == 7)
        for name in names { try await iot.deleteThing(name: name) }
    }

    @Test("thing groups: create, add, list, remove, delete")
    func groups() async throws {
        let iot = try Moto.iot()
        let group = Moto.unique("group")
        let thing = Moto.unique("member")
        _ = try await iot.createThing(name: thing)
        let created = try await iot.createThingGroup(name: group)
        #expect(created.thingGroupName == group)
        #expect(try await iot.describeThingGroup(name: group).thingGroupArn == created.thingGroupArn)
        try await iot.addThingToThingGroup(thing: thing, group: group)
        #expect(try await iot.listThingsInThingGroup(group: group) == [thing])
        try await iot.removeThingFromThingGroup(thing: thing, group: group)
        #expect(try await iot.listThingsInThingGroup(group: group).isEmpty)
        try await iot.deleteThingGroup(name: group)
        try await iot.deleteThing(name: thing)
    }

    @Test("the account's data endpoint")
    func endpoint() async throws {
        let address = try await Moto.iot().describeEndpoint()
        #expect(address.contains("iot"))
    }

    @Test("bad names and attributes are refused before the network, naming the rule")
    func validation() async throws {
        // Nothing listens on port 9: a request that left would fail with a connection error.
        let offline = AWSIoTClient(
            client: AWSClient(
                credentialProvider: AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "a", secretAccessKey: "b")),
                retryPolicy: AWSRetryPolicy(maximumAttempts: 1), logger: .quiet
            ),
            region: "us-east-1", endpointURL: URL(string: "http://127.0.0.1:9")!
        )
        await #expect(throws: AWSIoTValidationError(field: "thingName", rule: "must match [a-zA-Z0-9:_-]{1,128}")) {
            _ = try await offline.createThing(name: "bad name")
        }
        await #expect(throws: AWSIoTValidationError(field: "thingName", rule: "must match [a-zA-Z0-9:_-]{1,128}")) {
            _ = try await offline.createThing(name: String(repeating: "a", count: 129))
        }
        await #expect(throws: AWSIoTValidationError(field: "attributes", rule: "at most 3 attributes for a thing without a thing type")) {
            _ = try await offline.createThing(name: "ok", attributes: ["a": "1", "b": "2", "c": "3", "d": "4"])
        }
        await #expect(throws: AWSIoTValidationError(field: "attributes.name", rule: "attribute values must match [a-zA-Z0-9_.,@/:#=\\[\\]-]{0,800}")) {
            _ = try await offline.createThing(name: "ok", attributes: ["name": "has space"])
        }
        await #expect(throws: AWSIoTValidationError(field: "thingGroupName", rule: "must match [a-zA-Z0-9:_-]{1,128}")) {
            _ = try await offline.createThingGroup(name: "no/slash")
        }
        #expect(throws: AWSIoTValidationError(field: "topic", rule: "must have at most 7 forward slashes (8 levels)")) {
            try AWSIoTValidation.publishTopic("a/b/c/d/e/f/g/h/i")
        }
        #expect(throws: AWSIoTValidationError(field: "topic", rule: "must not contain the wildcards + or # in a publish")) {
            try AWSIoTValidation.publishTopic("a/+/b")
        }
        #expect(throws: AWSIoTValidationError(field: "payload", rule: "must be at most 128 KB (131072 bytes)")) {
            try AWSIoTValidation.payload([UInt8](repeating: 0, count: 131_073))
        }
        #expect(throws: Never.self) { try AWSIoTValidation.payload([UInt8](repeating: 0, count: 131_072)) }
    }
}

@Suite("AWS IoT conflicts and AWS-made keys against moto")
struct IoTConflictTests {
    @Test("a policy of a name in use is a conflict, decoded and not retried")
    func conflicts() async throws {
        let iot = try Moto.iot()
        let name = Moto.unique("dup-policy")
        let document = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#
        _ = try await iot.createPolicy(name: name, document: document)
        do {
            _ = try await iot.createPolicy(name: name, document: document)
            Issue.record("a second policy of the same name was created")
        } catch let error as AWSError {
            #expect(error.code == "ResourceAlreadyExistsException")
            #expect(error.statusCode == 409)
            #expect(!error.isRetryable)
        }
        try await iot.deletePolicy(name: name)
    }

    @Test("CreateKeysAndCertificate returns the key pair once, with an ACTIVE certificate")
    func keysAndCertificate() async throws {
        let iot = try Moto.iot()
        let made = try await iot.createKeysAndCertificate()
        #expect(made.keyPair.PrivateKey.contains("PRIVATE KEY"))
        #expect(made.certificatePem.contains("BEGIN CERTIFICATE"))
        #expect(try await iot.describeCertificate(id: made.certificateId).status == "ACTIVE")
        try await iot.updateCertificate(id: made.certificateId, status: .inactive)
        try await iot.deleteCertificate(id: made.certificateId)
    }
}
