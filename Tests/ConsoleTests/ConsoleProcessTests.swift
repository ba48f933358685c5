import ConduitTesting
import Foundation
import Testing

/// The console as an operator runs it: `conduit serve`, `conduit users create`, curl as the browser.
@Suite("The console with conduit serve")
struct ConsoleProcessTests {
    /// curl with a cookie jar: a browser without JavaScript.
    struct Curl {
        let jar: URL
        let base: String
        var headers: [String] = []

        func get(_ path: String) async throws -> (status: Int, body: String) {
            try await self.run(["-b", self.jar.path, "-c", self.jar.path, self.base + path])
        }

        func post(_ path: String, _ fields: [(String, String)]) async throws -> (status: Int, body: String) {
            var arguments = ["-b", self.jar.path, "-c", self.jar.path]
            for (name, value) in fields { arguments += ["--data-urlencode", "\(name)=\(value)"] }
            return try await self.run(arguments + [self.base + path])
        }

        private func run(_ arguments: [String]) async throws -> (status: Int, body: String) {
            let result = try await Subprocess.run(["curl", "-s", "-w", "\n%{http_code}"] + self.headers.flatMap { ["-H", $0] } + arguments, timeout: 20)
            let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
        }

        /// Signs in through the form, as a person does.
        func signIn(_ email: String, _ password: String) async throws -> Int {
            let form = try await self.get("/login")
            guard let range = form.body.range(of: #"name="csrf" value=""#) else { throw TestSetupError("no csrf on /login: \(form.body)") }
            let csrf = String(form.body[range.upperBound...].prefix { $0 != "\"" })
            return try await self.post("/login", [("csrf", csrf), ("email", email), ("password", password)]).status
        }
    }

    @Test("the first start logs a setup link; users made while serve runs sign in; a session survives a restart")
    func sessionsAcrossRestarts() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var (server, port) = try await ConduitServer.start(["--http-port", "0"], in: directory)
        // No user yet: the log offers the one-time link, which opens the setup form.
        let link = try #require(server.output.range(of: "conduit.setup=").map { String(server.output[$0.upperBound...].prefix { !$0.isWhitespace }) })
        let curl = Curl(jar: directory.appendingPathComponent("cookies.txt"), base: "http://127.0.0.1:\(port)")
        let setupPath = try #require(link.range(of: "/setup?token=").map { String(link[$0.lowerBound...]) })
        #expect(try await curl.get(setupPath).status == 200)

        // Made while serve runs, through the CLI with the password on standard input.
        let password = "a long enough password"
        let created = try await ConsoleBrowserTests.conduit(
            ["users", "create", "--email", "ops@example.com", "--role", "operator"], input: password + "\n", in: directory
        )
        #expect(created.status == 0, "\(created.stderr)")
        #expect(created.stdout == "ops@example.com\toperator\tdefault\n")
        #expect(!(created.stdout + created.stderr).contains(password))
        // The user exists now: the setup link no longer works.
        #expect(try await curl.get(setupPath).status == 403)
        let listed = try await ConduitExecutable.run(["users", "list"], in: directory)
        #expect(listed.stdout.hasPrefix("ops@example.com\toperator\tdefault\t"))

        // A forgotten password is set again from the shell; the old one stops working.
        let reset = try await ConduitExecutable.run(["users", "set-password", "--email", "ops@example.com"], in: directory, input: "another long password\n")
        #expect(reset.status == 0, "\(reset.stderr)")
        #expect(try await curl.signIn("ops@example.com", password) == 401)
        let newPassword = "another long password"

        // Behind a proxy on this machine, each person is counted by the address the proxy forwards
        // for: ten failures from one do not lock out another.
        for _ in 0..<10 {
            #expect(try await Curl(jar: directory.appendingPathComponent("attacker.txt"), base: curl.base, headers: ["X-Forwarded-For: 198.51.100.9"])
                .signIn("ops@example.com", "wrong password!") == 401)
        }
        #expect(try await Curl(jar: directory.appendingPathComponent("attacker.txt"), base: curl.base, headers: ["X-Forwarded-For: 198.51.100.9"])
            .signIn("ops@example.com", newPassword) == 429)
        #expect(try await curl.signIn("ops@example.com", newPassword) == 303)
        let before = try await curl.get("/devices")
        #expect(before.status == 200)
        #expect(before.body.contains("ops@example.com"))

        await server.stop()
        (server, port) = try await ConduitServer.start(["--http-port", "\(port)"], in: directory)
        defer { Task { [server] in await server.stop() } }
        // A user exists: no setup link this time.
        #expect(!server.output.contains("conduit.setup="))
        let after = try await curl.get("/devices")
        #expect(after.status == 200, "the session did not survive the restart: \(after.body.prefix(300))")
        #expect(after.body.contains("ops@example.com"))
        await server.stop()
    }

    @Test("conduit users create refuses a missing or short password and a bad email, naming them")
    func createRefusals() async throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let none = try await ConsoleBrowserTests.conduit(["users", "create", "--email", "a@example.com", "--role", "admin"], input: "", in: directory)
        #expect(none.status != 0)
        #expect(none.stderr.contains("password: give it on standard input"))
        let short = try await ConsoleBrowserTests.conduit(["users", "create", "--email", "a@example.com", "--role", "admin"], input: "short\n", in: directory)
        #expect(short.status != 0)
        #expect(short.stderr.contains("password: must be at least 10 characters"))
        let email = try await ConsoleBrowserTests.conduit(["users", "create", "--email", "nobody", "--role", "admin"], input: "long enough password\n", in: directory)
        #expect(email.status != 0)
        #expect(email.stderr.contains("email: must be an email address"))
        let tenant = try await ConsoleBrowserTests.conduit(
            ["users", "create", "--email", "a@example.com", "--role", "admin", "--tenant", "nope"], input: "long enough password\n", in: directory
        )
        #expect(tenant.status != 0)
        #expect(tenant.stderr.contains("tenant 'nope' not found"))
        #expect(try await ConduitExecutable.run(["users", "list"], in: directory).stdout.isEmpty)
    }
}
