import ConduitTesting
import Foundation
import Testing

@Suite("conduit aws check")
struct AWSCheckTests {
    static func moto() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["CONDUIT_TEST_MOTO_URL"] else {
            throw TestSetupError("CONDUIT_TEST_MOTO_URL is not set: run the tests with scripts/test, which starts moto_server")
        }
        return url
    }

    /// An environment with no AWS settings of the machine's: a HOME of its own.
    static func cleanEnvironment(_ extra: [String: String]) throws -> [String: String] {
        var environment = extra
        environment["HOME"] = try makeTemporaryDirectory().path
        // Never look for EC2 instance metadata from a test: it is not on loopback.
        environment["AWS_EC2_METADATA_DISABLED"] = "true"
        for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                     "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"] where extra[name] == nil {
            environment[name] = ""
        }
        return environment
    }

    @Test("environment credentials: the source, the endpoint, never the secret")
    func environmentCredentials() async throws {
        let moto = try Self.moto()
        let result = try await ConduitExecutable.run(
            ["aws", "check", "--region", "us-east-1", "--endpoint-url", moto], in: makeTemporaryDirectory(),
            environment: try Self.cleanEnvironment(["AWS_ACCESS_KEY_ID": "AKIDCHECK", "AWS_SECRET_ACCESS_KEY": "super-secret-value"])
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("credentials: environment (access key AKIDCHECK)"))
        #expect(result.stdout.contains("region:      us-east-1"))
        #expect(result.stdout.contains("iot:Data-ATS endpoint: "))
        #expect(!(result.stdout + result.stderr).contains("super-secret-value"))
    }

    @Test("a role assumed with an ExternalId")
    func role() async throws {
        let moto = try Self.moto()
        let result = try await ConduitExecutable.run(
            ["aws", "check", "--region", "eu-west-1", "--endpoint-url", moto, "--role-arn", "arn:aws:iam::123456789012:role/conduit",
             "--external-id", "tenant-7"],
            in: makeTemporaryDirectory(),
            environment: try Self.cleanEnvironment(["AWS_ACCESS_KEY_ID": "AKIDBASE", "AWS_SECRET_ACCESS_KEY": "base"])
        )
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("credentials: assumed role arn:aws:iam::123456789012:role/conduit"))
        #expect(result.stdout.contains("expires:"))
    }

    @Test("no credentials, no region, half-set keys: each a clear error")
    func errors() async throws {
        let moto = try Self.moto()
        let none = try await ConduitExecutable.run(
            ["aws", "check", "--region", "us-east-1", "--endpoint-url", moto], in: makeTemporaryDirectory(), environment: try Self.cleanEnvironment([:])
        )
        #expect(none.status != 0)
        #expect(none.stderr.contains("no AWS credentials found"))
        let noRegion = try await ConduitExecutable.run(
            ["aws", "check", "--endpoint-url", moto], in: makeTemporaryDirectory(),
            environment: try Self.cleanEnvironment(["AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "B"])
        )
        #expect(noRegion.status != 0)
        #expect(noRegion.stderr.contains("no AWS region"))
        let half = try await ConduitExecutable.run(
            ["aws", "check", "--region", "us-east-1", "--endpoint-url", moto], in: makeTemporaryDirectory(),
            environment: try Self.cleanEnvironment(["AWS_ACCESS_KEY_ID": "A"])
        )
        #expect(half.status != 0)
        #expect(half.stderr.contains("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both, or neither"))
    }
}
