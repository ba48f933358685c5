import AWS
import Crypto
import Foundation
import Testing

/// The signing time and the day's key, computed fast and kept: they must stay what SigV4 says.
@Suite struct SigningKeyCacheTests {
    static let credentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")

    /// `20150830T123600Z` as Foundation's formatter writes it in UTC.
    static func expectedTimestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.string(from: date)
    }

    @Test("the signing time is the UTC calendar's, leap days, century years and the epoch's edges included")
    func timestamps() {
        let signer = AWSSigner(credentials: Self.credentials, region: "us-east-1", service: "iotdata")
        var dates: [Date] = [
            Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: -1), Date(timeIntervalSince1970: 86_399),
            Date(timeIntervalSince1970: 951_782_400),  // 2000-02-29
            Date(timeIntervalSince1970: 4_107_542_399),  // 2100-02-28T23:59:59
            Date(timeIntervalSince1970: 4_107_542_400),  // 2100-03-01
            Date(timeIntervalSince1970: 1_440_938_160.75),  // 2015-08-30T12:36:00.75
        ]
        var random = SystemRandomNumberGenerator()
        // Whole seconds and a quarter: the formatter rounds to milliseconds, the signature truncates to seconds.
        for _ in 0..<2000 { dates.append(Date(timeIntervalSince1970: Double(Int.random(in: -2_000_000_000...5_000_000_000, using: &random)) + 0.25)) }
        for date in dates {
            let lines = signer.stringToSign(canonicalRequest: "", date: date).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(String(lines[1]) == Self.expectedTimestamp(date), "\(date.timeIntervalSince1970)")
            #expect(lines[2].hasPrefix(Self.expectedTimestamp(date).prefix(8) + "/us-east-1/iotdata/"))
        }
    }

    @Test("a kept signing key is the one derived anew, per day, region, service and secret")
    func keptKeys() {
        let cache = AWSSigningKeyCache()
        let day = Date(timeIntervalSince1970: 1_440_938_160)
        func key(_ credentials: AWSCredentials, region: String = "us-east-1", service: String = "iotdata", date: Date = day, cache: AWSSigningKeyCache?)
            -> [UInt8]
        {
            let signer = AWSSigner(credentials: credentials, region: region, service: service, signingKeys: cache)
            return signer.signingKey(date: date).withUnsafeBytes { Array($0) }
        }
        // AWS's worked example: the key for 20150830/us-east-1/iam.
        let example = key(Self.credentials, service: "iam", cache: cache)
        #expect(example.map { String(format: "%02x", $0) }.joined() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9")
        #expect(key(Self.credentials, service: "iam", cache: cache) == example)
        for (region, service, date) in [("us-east-1", "iotdata", day), ("eu-west-1", "iotdata", day), ("us-east-1", "iot", day), ("us-east-1", "iotdata", day + 86_400)] {
            let uncached = key(Self.credentials, region: region, service: service, date: date, cache: nil)
            #expect(key(Self.credentials, region: region, service: service, date: date, cache: cache) == uncached)
            #expect(key(Self.credentials, region: region, service: service, date: date, cache: cache) == uncached)
            #expect(uncached != example)
        }
        // A secret rotated under the same key id signs with its own key, not the kept one.
        let rotated = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "another-secret")
        #expect(key(rotated, service: "iam", cache: cache) == key(rotated, service: "iam", cache: nil))
        #expect(key(rotated, service: "iam", cache: cache) != example)
    }
}
