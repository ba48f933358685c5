import Glibc
import MQTT
import NIOCore

/// The MQTT decoder's libFuzzer harness, shared by the 3.1.1 and 5.0 targets.
///
/// The input is a byte stream as a connection delivers it. It is decoded twice: as a server reads
/// a new connection (CONNECT first, which sets the version) and as either side reads a connection
/// already in `version`. Each pass must end in a packet it needs more bytes for or in an
/// ``MQTTProtocolError``, never a trap; must decode the same when the bytes come one at a time;
/// and every packet it decodes must encode again and decode to an equal packet.
/// A broken rule is a `fatalError`, which libFuzzer reports as a crash and keeps the input of.
public enum MQTTDecoderFuzzing {
    public static func run(_ bytes: UnsafeBufferPointer<UInt8>, version: MQTTProtocolVersion) {
        let input = ByteBuffer(bytes: bytes)
        for initial in [nil, version] {
            let whole = Self.decode(input, version: initial, byteByByte: false)
            let dribbled = Self.decode(input, version: initial, byteByByte: true)
            guard whole == dribbled else {
                fatalError("the decoder read \(whole) whole but \(dribbled) a byte at a time")
            }
            if debug { print("\(initial?.description ?? "new connection"): \(whole)") }
        }
    }

    /// What a pass decoded: the packets, and the error that ended it if one did.
    struct Outcome: Equatable, CustomStringConvertible {
        var packets: [MQTTPacket] = []
        var error: MQTTProtocolError?

        var description: String {
            let names = self.packets.map(\.name).joined(separator: ", ")
            return "[\(names)]" + (self.error.map { " then \($0)" } ?? "")
        }
    }

    static func decode(_ input: ByteBuffer, version: MQTTProtocolVersion?, byteByByte: Bool) -> Outcome {
        var decoder = MQTTPacketDecoder(version: version)
        var outcome = Outcome()
        var pending = byteByByte ? ByteBuffer() : input
        var unread = byteByByte ? input : ByteBuffer()
        while true {
            let before = pending
            let packet: MQTTPacket?
            do {
                packet = try decoder.decode(buffer: &pending)
            } catch let error as MQTTProtocolError {
                outcome.error = error
                return outcome
            } catch {
                fatalError("the decoder threw \(type(of: error)), not MQTTProtocolError: \(error)")
            }
            guard let packet else {
                guard pending.readerIndex == before.readerIndex else {
                    fatalError("the decoder moved the reader index on an incomplete packet")
                }
                guard var next = unread.readSlice(length: 1) else { return outcome }
                pending.writeBuffer(&next)
                continue
            }
            let consumed = pending.readerIndex - before.readerIndex
            guard let length = try? MQTTPacketDecoder.packetLength(in: before), consumed == length else {
                fatalError("the decoder read \(consumed) bytes of a \(packet.name) that says it has a different length")
            }
            Self.checkReencoding(packet, version: decoder.version ?? .v5)
            outcome.packets.append(packet)
        }
    }

    /// A packet that decoded must encode, in the version it was read in, to bytes that decode
    /// to the same packet, use all of them, and encode to the same bytes again.
    static func checkReencoding(_ packet: MQTTPacket, version: MQTTProtocolVersion) {
        var encoded = ByteBuffer()
        packet.write(to: &encoded, version: version)
        let bytes = encoded
        var decoder = MQTTPacketDecoder(version: version)
        if case .connect = packet { decoder = MQTTPacketDecoder() }
        let again: MQTTPacket?
        do {
            again = try decoder.decode(buffer: &encoded)
        } catch {
            fatalError("\(packet.name) re-encoded in \(version) does not decode: \(error)\npacket: \(packet)\nbytes: \(bytes.hexDump(format: .plain))")
        }
        guard let again, again == packet else {
            fatalError("\(packet.name) re-encoded in \(version) decodes differently\nwas:   \(packet)\nthen:  \(String(describing: again))")
        }
        guard encoded.readableBytes == 0 else {
            fatalError("\(packet.name) re-encoded in \(version) leaves \(encoded.readableBytes) bytes undecoded")
        }
        guard packet.encodedSize(version: version) == bytes.readableBytes else {
            fatalError("\(packet.name): encodedSize disagrees with write")
        }
        var twice = ByteBuffer()
        again.write(to: &twice, version: version)
        guard twice == bytes else { fatalError("\(packet.name) encodes differently the second time") }
    }

    /// `CONDUIT_FUZZ_DEBUG=1 FuzzMQTT5 file...` prints what each input decoded to.
    static let debug = getenv("CONDUIT_FUZZ_DEBUG") != nil
}
