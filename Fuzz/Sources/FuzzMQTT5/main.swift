import CLibFuzzer
import Glibc
import MQTT
import MQTTFuzzing

/// One input: the MQTT decoder on a 5.0 connection (see ``MQTTDecoderFuzzing``).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    MQTTDecoderFuzzing.run(UnsafeBufferPointer(start: data, count: size), version: .v5)
    return 0
}

var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
