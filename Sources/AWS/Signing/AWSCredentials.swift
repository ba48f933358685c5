/// An AWS access key, with a session token when it is temporary.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// Names the key, never the secret: safe to log.
    public var description: String {
        "AWSCredentials(accessKeyID: \(self.accessKeyID), secretAccessKey: <hidden>\(self.sessionToken == nil ? "" : ", sessionToken: <hidden>"))"
    }
}
