import CLibFuzzer
import Glibc
import MQTT
import MQTTFuzzing

/// One input: the MQTT decoder on a 3.1.1 connection (see ``MQTTDecoderFuzzing``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    MQTTDecoderFuzzing.run(UnsafeBufferPointer(start: data, count: size), version: .v3_1_1)
    return 0
}

var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
