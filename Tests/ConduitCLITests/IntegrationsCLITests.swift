import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Testing

@Suite("conduit integrations, against moto")
struct IntegrationsCLITests {
    @Test("create with --wait provisions the accepted devices; list, show, reconcile and delete do what they say")
    func lifecycle() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let moto = try MotoPeer.url().absoluteString
        let account = MotoPeer.Account()
        // Conduit's own credentials (moto takes any) and STS at moto, as the AWS CLI reads them.
        let environment = ["AWS_ACCESS_KEY_ID": "AKIACONDUITCLITEST01", "AWS_SECRET_ACCESS_KEY": "moto", "AWS_ENDPOINT_URL_STS": moto]
        func conduit(_ arguments: String...) async throws -> ConduitExecutable.Result {
            try await ConduitExecutable.run(Array(arguments), in: directory, environment: environment)
        }
        for index in 1...3 {
            #expect(try await conduit("devices", "create", "--id", "cli-\(index)", "--name", "CLI \(index)", "--label", "fleet").status == 0)
        }
        #expect(try await conduit("devices", "accept", "--label", "fleet").status == 0)

        let created = try await conduit(
            "integrations", "create", "--name", "prod", "--region", "us-east-1", "--endpoint-url", moto, "--role-arn", account.roleARN,
            "--external-id", "conduit-cli", "--thing-group", "cli-group", "--label", "fleet", "--wait"
        )
        #expect(created.status == 0, "\(created.stderr)")
        let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.hasPrefix("int_"))
        #expect(created.stderr.contains("provisioning: 4/4"), "three devices and the downlink gateway")
        let iot = try account.iot()
        #expect(Set(try await iot.listThingsInThingGroup(group: "cli-group")) == ["cli-1", "cli-2", "cli-3"])

        // The master key was made beside the database, readable by its owner only.
        let keyFile = directory.appendingPathComponent("data/master.key").path
        let permissions = try FileManager.default.attributesOfItem(atPath: keyFile)[.posixPermissions] as? NSNumber
        #expect(permissions?.intValue == 0o600)

        let list = try await conduit("integrations", "list")
        #expect(list.stdout == "\(id)\tprod\tus-east-1\tactive\t3 provisioned\n")
        let show = try await conduit("integrations", "show", id)
        #expect(show.stdout.contains("credentials     role \(account.roleARN) (external id conduit-cli)"))
        #expect(show.stdout.contains("thing group     cli-group"))

        // cli-2's thing deleted in the console; reconcile makes it again.
        let principals = try await iot.listThingPrincipals(thing: "cli-2")
        for principal in principals { try await iot.detachThingPrincipal(thing: "cli-2", principal: principal) }
        try await iot.deleteThing(name: "cli-2")
        let reconciled = try await conduit("integrations", "reconcile", id)
        #expect(reconciled.status == 0, "\(reconciled.stderr)")
        #expect(reconciled.stdout.contains("cli-2\tthing cli-2 was deleted in AWS: made again"))
        #expect(reconciled.stdout.hasSuffix("repaired 1 device; 3 provisioned\n"))
        #expect(try await iot.listThingPrincipals(thing: "cli-2") == principals)
        #expect(try await conduit("integrations", "reconcile", id).stdout == "no drift: AWS holds what Conduit made\n")

        // Changed from the CLI: only what is given changes.
        let updated = try await conduit("integrations", "update", id, "--payload-format", "envelope", "--mqtt-endpoint", "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883")
        #expect(updated.status == 0, "\(updated.stderr)")
        #expect(updated.stdout == "updated \(id)\n")
        let changed = try await conduit("integrations", "show", id)
        #expect(changed.stdout.contains("payload format  envelope"))
        #expect(changed.stdout.contains("mqtt endpoint   a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com:8883"))
        #expect(changed.stdout.contains("thing group     cli-group"), "the rest stays")
        let refused = try await conduit("integrations", "update", id, "--mqtt-endpoint", "no-port")
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("mqttEndpoint: must be host:port"))
        // A host that is not AWS's, and that the operator did not list, is refused.
        let elsewhere = try await conduit("integrations", "update", id, "--mqtt-endpoint", "mqtt.example:8883")
        #expect(elsewhere.status != 0)
        #expect(elsewhere.stderr.contains("mqttEndpoint: mqtt.example:8883 is not an AWS IoT data endpoint for region us-east-1"), "\(elsewhere.stderr)")
        #expect(try await conduit("integrations", "update", id, "--no-mqtt-endpoint").status == 0)
        #expect(try await conduit("integrations", "show", id).stdout.contains("mqtt endpoint   the data endpoint, port 8883"))

        let deleted = try await conduit("integrations", "delete", id)
        #expect(deleted.status == 0, "\(deleted.stderr)")
        #expect(deleted.stdout == "deleted \(id)\n")
        #expect(try await iot.listThings().isEmpty)
        #expect(try await iot.listCertificates().isEmpty)
        #expect(try await iot.listPolicies().isEmpty)
        #expect(try await conduit("integrations", "list").stdout.isEmpty)

        let missing = try await conduit("integrations", "show", "int_nope")
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("integration 'int_nope' not found"))
    }
}
