import AWS
import Foundation
import Testing

@Suite("Credentials and region")
struct CredentialTests {
    static func files(config: String?, credentials: String?) throws -> [String: String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("aws-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var environment = ["HOME": directory.path]
        if let config {
            let path = directory.appendingPathComponent("config").path
            try config.write(toFile: path, atomically: true, encoding: .utf8)
            environment["AWS_CONFIG_FILE"] = path
        }
        if let credentials {
            let path = directory.appendingPathComponent("credentials").path
            try credentials.write(toFile: path, atomically: true, encoding: .utf8)
            environment["AWS_SHARED_CREDENTIALS_FILE"] = path
        }
        return environment
    }

    static let config = """
        # comment
        [default]
        region = eu-west-1
        [profile ci]
        region = us-east-2 ; inline comment
        role_arn = arn:aws:iam::123456789012:role/conduit
        source_profile = default
        external_id = ext-1
        s3 =
          max_concurrent_requests = 10
        [sso-session corp]
        region = ap-south-1
        """

    static let credentials = """
        [default]
        aws_access_key_id = AKIDDEFAULT
        aws_secret_access_key = secret/default
        [ci]
        aws_access_key_id=AKIDCI
        aws_secret_access_key=secretci
        aws_session_token=tokenci
        [half]
        aws_access_key_id = AKIDHALF
        """

    @Test("the shared files parse as the AWS CLI reads them")
    func parsing() throws {
        let environment = try Self.files(config: Self.config, credentials: Self.credentials)
        let configuration = try AWSSharedConfiguration.load(environment: environment)
        #expect(configuration.profiles["default"]?["region"] == "eu-west-1")
        #expect(configuration.profiles["default"]?["aws_access_key_id"] == "AKIDDEFAULT")
        #expect(configuration.profiles["ci"]?["region"] == "us-east-2")
        #expect(configuration.profiles["ci"]?["external_id"] == "ext-1")
        #expect(configuration.profiles["ci"]?["aws_session_token"] == "tokenci")
        #expect(configuration.profiles["ci"]?["max_concurrent_requests"] == nil)
        #expect(configuration.profiles["corp"] == nil && configuration.profiles["sso-session corp"] == nil)
    }

    @Test("the chain order: explicit, then environment, then the profile")
    func chainOrder() async throws {
        var environment = try Self.files(config: Self.config, credentials: Self.credentials)
        let explicit = AWSCredentials(accessKeyID: "AKIDEXPLICIT", secretAccessKey: "s")
        let chain = { (env: [String: String], explicit: AWSCredentials?) in
            AWSCredentialChain(
                (explicit.map { [AWSStaticCredentialProvider($0)] } ?? []) + [
                    AWSEnvironmentCredentialProvider(environment: env), AWSProfileCredentialProvider(environment: env),
                ]
            )
        }
        #expect(try await chain(environment, explicit).resolve().credentials.accessKeyID == "AKIDEXPLICIT")
        #expect(try await chain(environment, nil).resolve().source == "profile default")
        environment["AWS_ACCESS_KEY_ID"] = "AKIDENV"
        environment["AWS_SECRET_ACCESS_KEY"] = "secretenv"
        environment["AWS_SESSION_TOKEN"] = "tokenenv"
        let fromEnvironment = try await chain(environment, nil).resolve()
        #expect(fromEnvironment.source == "environment")
        #expect(fromEnvironment.credentials == AWSCredentials(accessKeyID: "AKIDENV", secretAccessKey: "secretenv", sessionToken: "tokenenv"))
        environment["AWS_ACCESS_KEY_ID"] = nil
        environment["AWS_SECRET_ACCESS_KEY"] = nil
        environment["AWS_PROFILE"] = "ci"
        let fromProfile = try await chain(environment, nil).resolve()
        #expect(fromProfile.credentials.accessKeyID == "AKIDCI")
        #expect(fromProfile.credentials.sessionToken == "tokenci")
    }

    @Test("half-set credentials stop the chain with a clear error; none at all says where it looked")
    func errors() async throws {
        let environment = try Self.files(config: nil, credentials: Self.credentials)
        await #expect(throws: AWSCredentialError.invalidConfiguration("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both, or neither")) {
            try await AWSEnvironmentCredentialProvider(environment: ["AWS_ACCESS_KEY_ID": "x"]).resolve()
        }
        await #expect(throws: AWSCredentialError.invalidConfiguration("profile 'half': aws_access_key_id and aws_secret_access_key must both be set")) {
            try await AWSProfileCredentialProvider(profile: "half", environment: environment).resolve()
        }
        let empty = try Self.files(config: nil, credentials: nil)
        do {
            _ = try await AWSCredentialChain([AWSEnvironmentCredentialProvider(environment: empty), AWSProfileCredentialProvider(environment: empty)]).resolve()
            Issue.record("resolved credentials from nothing")
        } catch let error as AWSCredentialError {
            #expect(error.isNotFound)
            #expect(error.message.contains("AWS_ACCESS_KEY_ID") && error.message.contains("profile 'default'"))
        }
    }

    @Test("region: explicit, then AWS_REGION, then AWS_DEFAULT_REGION, then the profile")
    func region() throws {
        var environment = try Self.files(config: Self.config, credentials: nil)
        #expect(try AWSRegionResolver.region(explicit: "ap-northeast-1", environment: environment) == "ap-northeast-1")
        #expect(try AWSRegionResolver.region(environment: environment) == "eu-west-1")
        #expect(try AWSRegionResolver.region(profile: "ci", environment: environment) == "us-east-2")
        environment["AWS_DEFAULT_REGION"] = "ca-central-1"
        #expect(try AWSRegionResolver.region(environment: environment) == "ca-central-1")
        environment["AWS_REGION"] = "sa-east-1"
        #expect(try AWSRegionResolver.region(environment: environment) == "sa-east-1")
        let none = try Self.files(config: nil, credentials: nil)
        #expect(throws: AWSCredentialError.self) { try AWSRegionResolver.region(environment: none) }
    }
}
