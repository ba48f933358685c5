import ArgumentParser
import Foundation
import Hub
import Store

#if canImport(Glibc)
import Glibc
#endif

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users", abstract: "Manage the web console's users.", subcommands: [Create.self, List.self, SetPassword.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a console user. The password is read from standard input (asked twice, unechoed, at a terminal), never from an argument.",
            discussion: "Prints the user's email, role and tenant; nothing secret. Example: printf '%s\\n' \"$PASSWORD\" | conduit users create --email ops@example.com --role admin"
        )

        @Option(help: "The email the user signs in with.") var email: String
        @Option(help: "admin, operator or reader.") var role: Role
        @Option(help: "The tenant the user belongs to.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            let password = try Self.readPassword()
            try await reportingErrors {
                let user = try await withAdminHub(self.storeOptions) { hub in
                    try await hub.consoleAccounts.createUser(email: self.email, password: password, role: self.role, tenantName: self.tenant)
                }
                print("\(user.email)\t\(user.role.rawValue)\t\(self.tenant)")
            }
        }

        /// One line of standard input; at a terminal, asked for twice with echo off.
        static func readPassword() throws -> String {
            guard isatty(STDIN_FILENO) == 1 else {
                guard let line = readLine(strippingNewline: true), !line.isEmpty else {
                    throw ValidationError("password: give it on standard input, e.g. printf '%s\\n' \"$PASSWORD\" | conduit users create ...")
                }
                return line
            }
            let first = try self.prompt("Password: ")
            let second = try self.prompt("Password again: ")
            guard first == second else { throw ValidationError("password: the two entries differ") }
            return first
        }

        private static func prompt(_ text: String) throws -> String {
            FileHandle.standardError.write(Data(text.utf8))
            var original = termios()
            tcgetattr(STDIN_FILENO, &original)
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
            defer {
                tcsetattr(STDIN_FILENO, TCSANOW, &original)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            guard let line = readLine(strippingNewline: true) else { throw ValidationError("password: no input") }
            return line
        }
    }

    struct SetPassword: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set-password",
            abstract: "Give a console user a new password, read from standard input as with create; their sessions end."
        )

        @Option(help: "The user's email.") var email: String
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            let password = try Create.readPassword()
            try await reportingErrors {
                let user = try await withAdminHub(self.storeOptions) { try await $0.consoleAccounts.setPassword(email: self.email, password: password) }
                print("\(user.email)\tpassword changed")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List console users: email, role, tenant, last sign-in.")

        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let users = try await withAdminHub(self.storeOptions) { try await $0.consoleAccounts.allUsers() }
                for (user, tenant) in users {
                    print("\(user.email)\t\(user.role.rawValue)\t\(tenant)\t\(user.lastSignInAt?.formatted(.iso8601) ?? "never")")
                }
            }
        }
    }
}
