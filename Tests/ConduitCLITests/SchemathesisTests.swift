import ConduitTesting
import Foundation
import Testing

/// The API held to its own OpenAPI document by schemathesis (PyPI; scripts/test installs it),
/// with every check, on every operation: statuses, bodies and headers as documented, no 5xx,
/// schema-valid requests accepted, schema-violating ones refused.
///
/// schemathesis, the server and a moto_server standing in for AWS IoT run in a network
/// namespace of loopback only (`unshare --net`): the document allows integrations at AWS's own
/// endpoints, so schemathesis makes some, and there nothing the server then tries leaves the
/// machine. `Peers/schemathesis_run.py` prepares the data (a device provisioned at moto, a spare
/// token for DELETE /v1/tokens/{id}) and prints schemathesis' report.
@Suite("The API against its OpenAPI document (schemathesis)")
struct SchemathesisTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Peers/schemathesis_run.py").path

    /// Examples per operation and phase: enough to reach each rule, few enough that the run takes
    /// a few minutes. CONDUIT_SCHEMATHESIS_EXAMPLES and CONDUIT_SCHEMATHESIS_SEED override them
    /// (the report prints the seed of a failed run, to replay it).
    static let examples = ProcessInfo.processInfo.environment["CONDUIT_SCHEMATHESIS_EXAMPLES"] ?? "25"

    @Test("schemathesis finds no failure, with every check, on every operation of /openapi.yaml")
    func everyOperationAsDocumented() async throws {
        var arguments = ["unshare", "--net", "--", "python3", Self.script, try ConduitExecutable.url().path, "--max-examples", Self.examples]
        if let seed = ProcessInfo.processInfo.environment["CONDUIT_SCHEMATHESIS_SEED"] { arguments += ["--seed", seed] }
        let result = try await Subprocess.run(arguments, timeout: 900)
        #expect(result.status == 0, "schemathesis (exit \(result.status)):\n\(result.stdout)\n\(result.stderr)")
        // Every operation of the document was selected and tested (none dropped for a schema it could not read).
        let selected = Self.value(after: "Selected: ", in: result.stdout)?.split(separator: "/").compactMap { Int($0) } ?? []
        let tested = Self.value(after: "Tested: ", in: result.stdout).flatMap { Int($0) }
        #expect(selected.count == 2 && selected[0] == selected[1] && selected[0] > 30, "operations selected: \(selected)")
        #expect(tested == selected.first, "operations tested: \(tested.map(String.init) ?? "none")")
    }

    /// The word after `label` on the first line that has it.
    static func value(after label: String, in text: String) -> String? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains(label) }), let range = line.range(of: label) else { return nil }
        return line[range.upperBound...].split(separator: " ").first.map(String.init)
    }
}
