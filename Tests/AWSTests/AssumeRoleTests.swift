import AWS
import AWSIoT
import ConduitTesting
import Foundation
import Synchronization
import Testing

/// Counts how often it is asked, and hands out credentials that expire `lifetime` from now.
final class CountingProvider: AWSCredentialProvider {
    let calls = Mutex(0)
    let lifetime: TimeInterval

    init(lifetime: TimeInterval) {
        self.lifetime = lifetime
    }

    func resolve() async throws -> AWSResolvedCredentials {
        let call = self.calls.withLock { calls in
            calls += 1
            return calls
        }
        return AWSResolvedCredentials(
            credentials: AWSCredentials(accessKeyID: "AKID\(call)", secretAccessKey: "s", sessionToken: "t"), source: "counting",
            expiration: Date().addingTimeInterval(self.lifetime)
        )
    }
}

@Suite("AssumeRole and credential refresh")
struct AssumeRoleTests {
    static let source = AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDSOURCE", secretAccessKey: "source-secret"))

    @Test("AssumeRole with an ExternalId gives temporary credentials that work")
    func assumeRole() async throws {
        let moto = try Moto.url()
        let provider = AWSAssumeRoleCredentialProvider(
            roleARN: "arn:aws:iam::123456789012:role/conduit-integration", externalID: "tenant-42", sessionName: "conduit-test",
            source: Self.source, region: "us-east-1", endpointURL: moto
        )
        let resolved = try await provider.resolve()
        #expect(resolved.credentials.accessKeyID != "AKIDSOURCE")
        #expect(resolved.credentials.sessionToken?.isEmpty == false)
        #expect(resolved.source == "assumed role arn:aws:iam::123456789012:role/conduit-integration")
        let expiration = try #require(resolved.expiration)
        #expect(expiration > Date().addingTimeInterval(30 * 60))
        // The assumed credentials sign real calls.
        let iot = AWSIoTClient(
            client: AWSClient(credentialProvider: provider, retryPolicy: .init(maximumAttempts: 2), logger: .quiet),
            region: "us-east-1", endpointURL: moto
        )
        #expect(try await iot.describeEndpoint().contains("iot"))
    }

    @Test("a profile with role_arn, source_profile and external_id assumes the role")
    func profileRole() async throws {
        let moto = try Moto.url()
        var environment = try CredentialTests.files(
            config: """
                [profile integration]
                role_arn = arn:aws:iam::123456789012:role/conduit
                source_profile = base
                external_id = ext-9
                region = eu-west-1
                [profile loop]
                role_arn = arn:aws:iam::123456789012:role/x
                source_profile = loop
                """,
            credentials: """
                [base]
                aws_access_key_id = AKIDBASE
                aws_secret_access_key = base-secret
                """
        )
        environment["AWS_ENDPOINT_URL_STS"] = moto.absoluteString
        environment["AWS_EC2_METADATA_DISABLED"] = "true"
        let resolved = try await AWSDefaultCredentials.chain(profile: "integration", region: "us-east-1", environment: environment).resolve()
        #expect(resolved.source == "profile integration: assumed role arn:aws:iam::123456789012:role/conduit from profile base")
        #expect(resolved.credentials.sessionToken != nil)
        await #expect(throws: AWSCredentialError.invalidConfiguration("profile 'loop': source_profile loops back to 'loop'")) {
            try await AWSDefaultCredentials.chain(profile: "loop", region: "us-east-1", environment: environment).resolve()
        }
    }

    @Test("temporary credentials are fetched again before they expire, and not before")
    func refresh() async throws {
        let shortLived = CountingProvider(lifetime: 4 * 60)
        let client = AWSClient(credentialProvider: shortLived, logger: .quiet)
        let first = try await client.resolvedCredentials()
        let second = try await client.resolvedCredentials()
        #expect(shortLived.calls.withLock { $0 } == 2)
        #expect(first.credentials.accessKeyID != second.credentials.accessKeyID)

        let longLived = CountingProvider(lifetime: 3600)
        let cached = AWSClient(credentialProvider: longLived, logger: .quiet)
        _ = try await cached.resolvedCredentials()
        _ = try await cached.resolvedCredentials()
        #expect(longLived.calls.withLock { $0 } == 1)
    }
}
