import ConduitTesting
import MQTT
import NIOCore
import Testing

@Suite("Codec fuzzing")
struct FuzzTests {
    /// Feeds `bytes` to a decoder until it needs more, throws, or runs dry. It must never crash or loop.
    static func drain(_ bytes: [UInt8], version: MQTTProtocolVersion?) -> (packets: Int, error: Bool) {
        var buffer = ByteBuffer(bytes: bytes)
        var decoder = MQTTPacketDecoder(version: version, maximumPacketSize: 1 << 16)
        var packets = 0
        do {
            while let packet = try decoder.decode(buffer: &buffer) {
                packets += 1
                // Whatever decodes must encode again and decode to itself.
                var again = ByteBuffer()
                packet.write(to: &again, version: decoder.version ?? .v5)
                var check = MQTTPacketDecoder(version: decoder.version)
                if case .connect = packet { check = MQTTPacketDecoder() }
                let reparsed = try? check.decode(buffer: &again)
                #expect(reparsed == packet, "re-encoding changed \(packet.name)")
            }
            return (packets, false)
        } catch is MQTTProtocolError {
            return (packets, true)
        } catch {
            Issue.record("unexpected error type \(error)")
            return (packets, true)
        }
    }

    @Test("random bytes never crash the decoder", arguments: [nil, MQTTProtocolVersion.v3_1_1, .v5])
    func randomBytes(version: MQTTProtocolVersion?) {
        var random = SplitMix64(state: 0xC0DE_0000 + UInt64(version?.rawValue ?? 0))
        var errors = 0
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...64, using: &random)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if !bytes.isEmpty, Bool.random(using: &random) {
                // Make the type and length plausible more often than chance would.
                bytes[0] = (UInt8.random(in: 1...15, using: &random) << 4) | (bytes[0] & 0x0F)
                if bytes.count > 1 { bytes[1] = UInt8(min(127, bytes.count - 2)) }
            }
            if Self.drain(bytes, version: version).error { errors += 1 }
        }
        #expect(errors > 0)
    }

    @Test("mutated valid packets never crash the decoder", arguments: [MQTTProtocolVersion.v3_1_1, .v5])
    func mutatedPackets(version: MQTTProtocolVersion) {
        var random = SplitMix64(state: 0xF022 + UInt64(version.rawValue))
        let seeds: [[UInt8]] = Samples.packets(version).map { packet in
            var buffer = ByteBuffer()
            packet.write(to: &buffer, version: version)
            return Array(buffer.readableBytesView)
        }
        let connectSeeds: [[UInt8]] = Samples.connects(version).map { connect in
            var buffer = ByteBuffer()
            MQTTPacket.connect(connect).write(to: &buffer, version: version)
            return Array(buffer.readableBytesView)
        }
        var decodedAfterMutation = 0
        for round in 0..<20_000 {
            let useConnect = round % 4 == 0
            var bytes = useConnect ? connectSeeds.randomElement(using: &random)! : seeds.randomElement(using: &random)!
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                guard !bytes.isEmpty else { break }
                let index = Int.random(in: 0..<bytes.count, using: &random)
                switch Int.random(in: 0..<4, using: &random) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &random)
                case 1: bytes[index] ^= 1 << UInt8.random(in: 0...7, using: &random)
                case 2: bytes.remove(at: index)
                default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: index)
                }
            }
            decodedAfterMutation += Self.drain(bytes, version: useConnect ? nil : version).packets
        }
        #expect(decodedAfterMutation > 0)
    }
}
