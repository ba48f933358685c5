import AWS
import AWSIoT
import Foundation
import Hub

/// moto_server, started by scripts/test, standing in for AWS IoT and STS.
///
/// Tests share one moto; each takes an AWS account of its own (a role assumed into a fresh
/// account id), so what one test makes never shows in another's listings.
public enum MotoPeer {
    public static func url() throws -> URL {
        try self.url("CONDUIT_TEST_MOTO_URL")
    }

    /// The moto that checks credentials, as AWS does.
    public static func authenticatingURL() throws -> URL {
        try self.url("CONDUIT_TEST_MOTO_AUTH_URL")
    }

    private static func url(_ variable: String) throws -> URL {
        guard let value = ProcessInfo.processInfo.environment[variable], let url = URL(string: value) else {
            throw TestSetupError("\(variable) is not set: run the tests with scripts/test, which starts moto_server")
        }
        return url
    }

    /// Conduit's own credentials (any key does for moto), with STS at moto and quick retries, and
    /// both motos in the operator's endpoint allowlist, with `allowing` (`mqtts://host:port`...).
    public static func environment(quotas: [String: Double] = AWSRateLimiter.awsIoTQuotas, allowing extra: [String] = []) throws -> AWSEnvironment {
        let url = try self.url()
        return AWSEnvironment(
            ownCredentials: { _ in AWSStaticCredentialProvider(AWSCredentials(accessKeyID: "AKIACONDUITTEST0001", secretAccessKey: "moto")) },
            stsEndpointURL: url, retryPolicy: AWSRetryPolicy(maximumAttempts: 4, baseDelay: 0.01, maximumDelay: 0.2), quotas: quotas,
            endpointAllowlist: try AWSEndpointAllowlist(parsing: (try self.allowlistEntries() + extra).joined(separator: ","))
        )
    }

    /// The motos as allowlist entries (`http://127.0.0.1:PORT`), those that are set.
    public static func allowlistEntries() throws -> [String] {
        ["CONDUIT_TEST_MOTO_URL", "CONDUIT_TEST_MOTO_AUTH_URL"].compactMap { variable in
            guard let url = (try? self.url(variable)), let host = url.host, let port = url.port, let scheme = url.scheme else { return nil }
            return "\(scheme)://\(host):\(port)"
        }
    }

    /// A fresh AWS account in moto.
    public struct Account: Sendable {
        public let id: String
        public var roleARN: String { "arn:aws:iam::\(self.id):role/conduit" }

        public init() {
            self.id = String(format: "%06d%06d", Int.random(in: 100_000...999_999), Int.random(in: 0...999_999))
        }

        /// A client of the AWS IoT data plane in this account: shadows as a device would write them.
        public func data(region: String = "us-east-1") throws -> AWSIoTDataClient {
            let iot = try self.iot(region: region)
            return AWSIoTDataClient(client: iot.client, region: region, endpointURL: try MotoPeer.url())
        }

        /// A client of AWS IoT in this account, for looking at what Conduit made.
        public func iot(region: String = "us-east-1") throws -> AWSIoTClient {
            let url = try MotoPeer.url()
            let provider = AWSAssumeRoleCredentialProvider(
                roleARN: self.roleARN, externalID: "conduit-test", source: AWSStaticCredentialProvider(
                    AWSCredentials(accessKeyID: "AKIACONDUITTEST0001", secretAccessKey: "moto")
                ), region: region, endpointURL: url
            )
            let client = AWSClient(credentialProvider: provider, retryPolicy: AWSRetryPolicy(maximumAttempts: 3, baseDelay: 0.01), logger: .quiet)
            return AWSIoTClient(client: client, region: region, endpointURL: url)
        }
    }
}

extension MotoPeer {
    /// A message published to AWS IoT, as moto's recorder saw the request.
    public struct RecordedPublish: Sendable, Equatable {
        public var topic: String
        public var payload: [UInt8]
    }

    /// Every iot-data Publish the shared moto received so far, in order (its recorder writes each
    /// request as a line of JSON; scripts/test turns it on).
    /// `containing`: only requests whose recorded line holds this text (a device id): the file
    /// holds every test's requests, and parsing all of them in a loop hogs a core.
    public static func recordedPublishes(containing: String? = nil) throws -> [RecordedPublish] {
        guard let path = ProcessInfo.processInfo.environment["CONDUIT_TEST_MOTO_RECORDING"] else {
            throw TestSetupError("CONDUIT_TEST_MOTO_RECORDING is not set: run the tests with scripts/test")
        }
        return try self.recordedPublishes(file: path, containing: containing)
    }

    /// The publishes recorded in a moto recording file.
    public static func recordedPublishes(file path: String, containing: String? = nil) throws -> [RecordedPublish] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        let needle = containing.map { Data($0.utf8) }
        var publishes: [RecordedPublish] = []
        for line in data.split(separator: UInt8(ascii: "\n")) {
            if let needle, line.range(of: needle) == nil { continue }
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                object["method"] as? String == "POST", let url = (object["url"] as? String).flatMap(URLComponents.init(string:)),
                url.percentEncodedPath.hasPrefix("/topics/")
            else { continue }
            let topic = String(url.percentEncodedPath.dropFirst("/topics/".count)).removingPercentEncoding ?? ""
            let body = object["body"] as? String ?? ""
            let payload = (object["body_encoded"] as? Bool) == true ? Array(Data(base64Encoded: body) ?? Data()) : Array(body.utf8)
            publishes.append(RecordedPublish(topic: topic, payload: payload))
        }
        return publishes
    }
}

extension MotoPeer {
    /// The method and path (query included) of every request the shared moto recorded, in order.
    public static func recordedRequests() throws -> [(method: String, path: String)] {
        guard let path = ProcessInfo.processInfo.environment["CONDUIT_TEST_MOTO_RECORDING"],
            let data = FileManager.default.contents(atPath: path)
        else {
            throw TestSetupError("CONDUIT_TEST_MOTO_RECORDING is not set: run the tests with scripts/test")
        }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let method = object["method"] as? String,
                let url = (object["url"] as? String).flatMap(URLComponents.init(string:))
            else { return nil }
            return (method, url.percentEncodedPath + (url.percentEncodedQuery.map { "?" + $0 } ?? ""))
        }
    }
}
