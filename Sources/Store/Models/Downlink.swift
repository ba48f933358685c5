import Foundation

/// A message waiting for a device: delivered on `devices/{id}/down` at QoS 1, and removed when
/// the device acknowledges it.
public struct Downlink: Sendable, Equatable {
    public var sequence: Int
    public var tenantID: String
    public var deviceID: String
    public var payload: Data
    /// The sender asks the device to confirm it (LoRaWAN's confirmed downlink), passed on as is.
    public var confirmed: Bool
    /// An application port (LoRaWAN's FPort), passed on as is.
    public var port: Int?
    /// `api:<actor>` or `aws:<integration id>`.
    public var source: String
    public var createdAt: Date

    public init(
        sequence: Int = 0, tenantID: String, deviceID: String, payload: Data, confirmed: Bool, port: Int?, source: String, createdAt: Date
    ) {
        self.sequence = sequence
        self.tenantID = tenantID
        self.deviceID = deviceID
        self.payload = payload
        self.confirmed = confirmed
        self.port = port
        self.source = source
        self.createdAt = createdAt
    }
}
