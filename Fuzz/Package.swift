// swift-tools-version: 6.2
// libFuzzer targets for Conduit's parsers, in a package of their own so that they never enter the
// root package's build or tests. Built and run by scripts/fuzz, which passes
// `-Xswiftc -sanitize=fuzzer,address`: that instruments every Swift module and links libFuzzer.
import PackageDescription

let package = Package(
    name: "conduit-fuzz",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "FuzzMQTT311", targets: ["FuzzMQTT311"]),
        .executable(name: "FuzzMQTT5", targets: ["FuzzMQTT5"]),
        .executable(name: "FuzzJSONBody", targets: ["FuzzJSONBody"]),
        .executable(name: "FuzzSigV4", targets: ["FuzzSigV4"]),
    ],
    dependencies: [
        .package(name: "conduit", path: ".."),
        // Already the root package's: named here for ByteBuffer, at the root's version.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // Declares libFuzzer's driver, which each target's main.swift starts (see its header).
        .target(name: "CLibFuzzer"),
        .target(
            name: "MQTTFuzzing",
            dependencies: [.product(name: "MQTT", package: "conduit"), .product(name: "NIOCore", package: "swift-nio")]
        ),
        .executableTarget(name: "FuzzMQTT311", dependencies: ["CLibFuzzer", "MQTTFuzzing", .product(name: "MQTT", package: "conduit")]),
        .executableTarget(name: "FuzzMQTT5", dependencies: ["CLibFuzzer", "MQTTFuzzing", .product(name: "MQTT", package: "conduit")]),
        .executableTarget(name: "FuzzJSONBody", dependencies: ["CLibFuzzer", .product(name: "HTTPAPI", package: "conduit")]),
        .executableTarget(name: "FuzzSigV4", dependencies: ["CLibFuzzer", .product(name: "AWS", package: "conduit")]),
    ]
)
