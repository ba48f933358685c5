import AWS
import AWSIoT
import ArgumentParser
import Foundation
import Logging

struct AWSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aws", abstract: "Check Conduit's access to AWS IoT Core.", subcommands: [Check.self]
    )

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show where the AWS credentials come from (never the secret) and the account's iot:Data-ATS endpoint.",
            discussion: """
                Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, else the profile
                (--profile, AWS_PROFILE or default) of ~/.aws/credentials and ~/.aws/config, following role_arn and
                source_profile; --role-arn assumes a role from those credentials, with --external-id when its trust
                policy asks for one. The region is --region, else AWS_REGION, AWS_DEFAULT_REGION or the profile's.
                """
        )

        @Option(help: "AWS region.") var region: String?
        @Option(help: "Profile of the shared AWS files.") var profile: String?
        @Option(help: "Assume this role (arn:aws:iam::ACCOUNT:role/NAME) from the credentials found.") var roleArn: String?
        @Option(help: "The ExternalId the role's trust policy requires.") var externalId: String?
        @Option(help: "Send AWS IoT and STS calls to this endpoint instead of AWS's (VPC, FIPS, a local stack).") var endpointUrl: String?

        func validate() throws {
            if self.externalId != nil && self.roleArn == nil { throw ValidationError("--external-id: goes with --role-arn") }
            if self.roleArn != nil && self.profile != nil { throw ValidationError("--role-arn and --profile: use one of them") }
            if let url = self.endpointUrl, URL(string: url)?.scheme == nil { throw ValidationError("--endpoint-url: must be a URL such as https://host") }
        }

        func run() async throws {
            var logger = Logger(label: "conduit.aws")
            logger.logLevel = .critical
            let environment = ProcessInfo.processInfo.environment
            let endpoint = self.endpointUrl.flatMap(URL.init(string:))
            do {
                let region = try AWSRegionResolver.region(explicit: self.region, profile: self.profile, environment: environment)
                var provider: any AWSCredentialProvider = AWSDefaultCredentials.chain(
                    profile: self.profile, region: region, environment: environment, stsEndpointURL: endpoint
                )
                if let roleArn = self.roleArn {
                    provider = AWSAssumeRoleCredentialProvider(
                        roleARN: roleArn, externalID: self.externalId, source: provider, region: region, endpointURL: endpoint,
                        environment: environment
                    )
                }
                let client = AWSClient(credentialProvider: provider, retryPolicy: AWSRetryPolicy(maximumAttempts: 3), logger: logger)
                let resolved = try await client.resolvedCredentials()
                print("credentials: \(resolved.source) (access key \(resolved.credentials.accessKeyID))")
                if let expiration = resolved.expiration {
                    print("expires:     \(expiration.formatted(.iso8601))")
                }
                print("region:      \(region)")
                let iot = AWSIoTClient(client: client, region: region, endpointURL: endpoint)
                let address = try await iot.describeEndpoint()
                print("iot:Data-ATS endpoint: \(address)")
            } catch let error as AWSCredentialError {
                throw ValidationError(error.message)
            } catch let error as AWSError {
                throw ValidationError("AWS refused the call: \(error)")
            } catch {
                throw ValidationError("cannot reach AWS: \(error)")
            }
        }
    }
}
