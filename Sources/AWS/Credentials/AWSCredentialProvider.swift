import Foundation

/// An error finding credentials or a region.
public struct AWSCredentialError: Error, Sendable, Equatable, CustomStringConvertible {
    enum Kind: Sendable, Equatable {
        case notFound
        case invalidConfiguration
        case noRegion
    }

    let kind: Kind
    public let message: String

    /// This source has no credentials; the chain goes on to the next.
    public static func notFound(_ message: String) -> AWSCredentialError { .init(kind: .notFound, message: message) }
    /// This source has credentials but they are unusable; the chain stops here.
    public static func invalidConfiguration(_ message: String) -> AWSCredentialError { .init(kind: .invalidConfiguration, message: message) }
    public static func noRegion(_ message: String) -> AWSCredentialError { .init(kind: .noRegion, message: message) }

    public var isNotFound: Bool { self.kind == .notFound }
    public var description: String { self.message }
}

/// Credentials and where they came from (never the secret), for `conduit aws check` and logs.
public struct AWSResolvedCredentials: Sendable, Equatable {
    public var credentials: AWSCredentials
    /// E.g. `environment`, `profile default (~/.aws/credentials)`.
    public var source: String
    /// When temporary credentials stop working; nil for long-term keys.
    public var expiration: Date?

    public init(credentials: AWSCredentials, source: String, expiration: Date? = nil) {
        self.credentials = credentials
        self.source = source
        self.expiration = expiration
    }
}

/// A source of AWS credentials.
public protocol AWSCredentialProvider: Sendable {
    func resolve() async throws -> AWSResolvedCredentials
}

/// Keys given explicitly (an integration's own access key).
public struct AWSStaticCredentialProvider: AWSCredentialProvider {
    let credentials: AWSCredentials

    public init(_ credentials: AWSCredentials) {
        self.credentials = credentials
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        AWSResolvedCredentials(credentials: self.credentials, source: "explicit")
    }
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
public struct AWSEnvironmentCredentialProvider: AWSCredentialProvider {
    let environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        let key = self.environment["AWS_ACCESS_KEY_ID"] ?? ""
        let secret = self.environment["AWS_SECRET_ACCESS_KEY"] ?? ""
        switch (key.isEmpty, secret.isEmpty) {
        case (true, true):
            throw AWSCredentialError.notFound("no AWS_ACCESS_KEY_ID in the environment")
        case (false, false):
            let token = self.environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            return AWSResolvedCredentials(
                credentials: AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: token), source: "environment"
            )
        default:
            throw AWSCredentialError.invalidConfiguration("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both, or neither")
        }
    }
}

/// Static keys of a profile in the shared files. A profile that assumes a role (`role_arn`) is
/// resolved by the chain's role provider, which uses this one for its `source_profile`.
public struct AWSProfileCredentialProvider: AWSCredentialProvider {
    let profile: String?
    let environment: [String: String]

    public init(profile: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.profile = profile
        self.environment = environment
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        let configuration = try AWSSharedConfiguration.load(environment: self.environment)
        let name = AWSSharedConfiguration.profileName(self.profile, environment: self.environment)
        guard let settings = configuration.profiles[name] else {
            throw AWSCredentialError.notFound("no profile '\(name)' in the shared AWS files")
        }
        return try Self.staticCredentials(settings, profile: name)
    }

    static func staticCredentials(_ settings: [String: String], profile: String) throws -> AWSResolvedCredentials {
        let key = settings["aws_access_key_id"] ?? ""
        let secret = settings["aws_secret_access_key"] ?? ""
        switch (key.isEmpty, secret.isEmpty) {
        case (false, false):
            return AWSResolvedCredentials(
                credentials: AWSCredentials(
                    accessKeyID: key, secretAccessKey: secret, sessionToken: settings["aws_session_token"].flatMap { $0.isEmpty ? nil : $0 }
                ),
                source: "profile \(profile)"
            )
        case (true, true):
            throw AWSCredentialError.notFound("profile '\(profile)' has no aws_access_key_id")
        default:
            throw AWSCredentialError.invalidConfiguration(
                "profile '\(profile)': aws_access_key_id and aws_secret_access_key must both be set"
            )
        }
    }
}

/// Tries providers in order, as the AWS SDKs do; the first that has credentials wins. A provider
/// that finds credentials it cannot use stops the chain with its error rather than falling
/// through to someone else's.
public struct AWSCredentialChain: AWSCredentialProvider {
    let providers: [any AWSCredentialProvider]

    public init(_ providers: [any AWSCredentialProvider]) {
        self.providers = providers
    }

    public func resolve() async throws -> AWSResolvedCredentials {
        var reasons: [String] = []
        for provider in self.providers {
            do {
                return try await provider.resolve()
            } catch let error as AWSCredentialError where error.isNotFound {
                reasons.append(error.message)
            }
        }
        throw AWSCredentialError.notFound("no AWS credentials found: " + reasons.joined(separator: "; "))
    }
}
