import AWS
import ConduitTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// A loopback stand-in for the ECS container endpoint and EC2 instance metadata (IMDSv2).
enum MetadataEndpoint {
    static let credentials = #"{"AccessKeyId":"ASIAMETA","SecretAccessKey":"meta-secret","Token":"meta-token","Expiration":"2099-01-01T00:00:00Z"}"#

    static func header(_ request: Request, _ name: String) -> String? {
        request.headers.first { $0.name.rawName.lowercased() == name.lowercased() }?.value
    }

    static var router: Router<BasicRequestContext> {
        let router = Router()
        router.get("container/creds") { request, _ -> Response in
            guard request.headers[.authorization] == "container-token" else { return Response(status: .unauthorized) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: credentials)))
        }
        router.put("latest/api/token") { request, _ -> Response in
            guard header(request, "X-aws-ec2-metadata-token-ttl-seconds") != nil else { return Response(status: .badRequest) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "imds-token")))
        }
        router.get("latest/meta-data/iam/security-credentials") { request, _ -> Response in
            guard header(request, "X-aws-ec2-metadata-token") == "imds-token" else { return Response(status: .unauthorized) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: "conduit-instance-role\n")))
        }
        router.get("latest/meta-data/iam/security-credentials/{role}") { request, context -> Response in
            guard header(request, "X-aws-ec2-metadata-token") == "imds-token",
                context.parameters.get("role") == "conduit-instance-role"
            else { return Response(status: .unauthorized) }
            return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(string: credentials)))
        }
        return router
    }

    static func withServer(_ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let app = Application(router: self.router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: .quiet)
        try await app.test(.live) { client in try await body(try #require(client.port)) }
    }
}

@Suite("Container and instance-metadata credentials")
struct MetadataCredentialTests {
    @Test("container credentials with an authorization token")
    func container() async throws {
        try await MetadataEndpoint.withServer { port in
            let resolved = try await AWSContainerCredentialProvider(
                environment: [
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://127.0.0.1:\(port)/container/creds",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN": "container-token",
                ]
            ).resolve()
            #expect(resolved.credentials == AWSCredentials(accessKeyID: "ASIAMETA", secretAccessKey: "meta-secret", sessionToken: "meta-token"))
            #expect(resolved.source == "container credentials")
            #expect(resolved.expiration != nil)
        }
    }

    @Test("instance metadata, IMDSv2: a token, the role, its credentials")
    func instanceMetadata() async throws {
        try await MetadataEndpoint.withServer { port in
            let resolved = try await AWSInstanceMetadataCredentialProvider(
                // The endpoint is here and answers: a test machine busy with the rest of the suite
                // may take longer than the 2 s that probe for an absent one.
                environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)", "AWS_METADATA_SERVICE_TIMEOUT": "15"]
            ).resolve()
            #expect(resolved.credentials.accessKeyID == "ASIAMETA")
            #expect(resolved.source == "instance role conduit-instance-role")
        }
    }

    @Test("the default chain: environment first, metadata last, and metadata can be switched off")
    func chainOrder() async throws {
        try await MetadataEndpoint.withServer { port in
            var environment = try CredentialTests.files(config: nil, credentials: nil)
            environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = "http://127.0.0.1:\(port)"
            environment["AWS_METADATA_SERVICE_TIMEOUT"] = "15"
            #expect(try await AWSDefaultCredentials.chain(region: "us-east-1", environment: environment).resolve().source == "instance role conduit-instance-role")
            environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = "http://127.0.0.1:\(port)/container/creds"
            environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"] = "container-token"
            #expect(try await AWSDefaultCredentials.chain(region: "us-east-1", environment: environment).resolve().source == "container credentials")
            environment["AWS_ACCESS_KEY_ID"] = "AKIDENV"
            environment["AWS_SECRET_ACCESS_KEY"] = "env"
            #expect(try await AWSDefaultCredentials.chain(region: "us-east-1", environment: environment).resolve().source == "environment")
            let off = try CredentialTests.files(config: nil, credentials: nil).merging(["AWS_EC2_METADATA_DISABLED": "true"]) { $1 }
            await #expect(throws: AWSCredentialError.self) {
                try await AWSDefaultCredentials.chain(region: "us-east-1", environment: off).resolve()
            }
        }
    }
}
