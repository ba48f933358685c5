import CLibFuzzer
import Glibc
import HTTPAPI

/// Every field name the API's routes accept in a body, nested objects' included.
let allowedFields: Set<String> = [
    // devices, downlinks, tokens, shadows
    "id", "name", "labels", "attributes", "status", "payload_raw", "confirmed", "port", "role", "desired", "version",
    "reported",
    // integrations and their nested objects
    "type", "region", "endpointUrl", "credentials", "policy", "thingGroup", "thingAttributes", "uplinkTopic", "payloadFormat",
    "downlinkPrefix", "active", "bind", "mqttEndpoint", "mqttTrustRoots", "gateway", "accessKeyId", "secretAccessKey",
    "roleArn", "externalId", "source", "perThing", "certificatePem", "privateKey", "devices", "all",
    // Para-compatible things
    "appid", "parentid", "creatorid", "timestamp", "updated", "tags", "votes", "stored", "indexed", "cached", "plural",
    "objectURI", "deviceMetadata", "deviceDetails", "serviceBroker", "integrationId", "deviceState",
]

let debug = getenv("CONDUIT_FUZZ_DEBUG") != nil

/// libFuzzer's entry: the input is a request body. Parsing it and reading every field with every
/// reader the routes use must never trap; a body that is accepted has only allowed fields, at
/// every level; and reading the same body twice gives the same fields.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    let read: [String]
    do {
        read = try JSONBodyFuzzing.readEveryField(bytes, allowed: allowedFields)
    } catch {
        // The 400 a route would answer: its message must render.
        let message = String(describing: error)
        if debug { print("refused: \(message)") }
        return 0
    }
    if debug { print("read: \(read)") }
    for path in read {
        for name in path.split(separator: ".", omittingEmptySubsequences: false) where !allowedFields.contains(String(name)) {
            fatalError("field '\(path)' was read though '\(name)' is not allowed")
        }
    }
    guard let again = try? JSONBodyFuzzing.readEveryField(bytes, allowed: allowedFields), again == read else {
        fatalError("the same body read twice gave different fields")
    }
    return 0
}

var argc = CommandLine.argc
var argv = Optional(CommandLine.unsafeArgv)
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzz))
