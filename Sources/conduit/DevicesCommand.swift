import ArgumentParser
import Foundation
import Hub
import Store

struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices", abstract: "Manage devices from the command line.",
        subcommands: [Create.self, List.self, Accept.self, Reject.self, Decommission.self, Certificate.self]
    )

    /// The CLI acts as an operator of the tenant.
    static func principal(_ hub: Hub, tenant: String) async throws -> Principal {
        let tenant = try await hub.access.tenant(named: tenant)
        return Principal(tenantID: tenant.id, role: .admin, actor: "cli")
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a device as pending; prints its id and broker secret (shown only here)."
        )
        @Option(help: "The id, [a-zA-Z0-9:_-]{1,128}; generated when left out.") var id: String?
        @Option(help: "A display name.") var name: String
        @Option(name: .customLong("label"), help: "A label; repeat for more.") var labels: [String] = []
        @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let created = try await withAdminHub(self.storeOptions) { hub in
                    try await hub.devices.create(
                        .init(id: self.id, name: self.name, labels: self.labels), by: DevicesCommand.principal(hub, tenant: self.tenant)
                    )
                }
                print("\(created.device.id)\t\(created.secret)")
            }
        }
    }

    struct Certificate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Enrol the device's TLS client certificate (the only one that logs it in), or revoke it.",
            discussion: """
                --pem enrols a certificate of your CA; --csr has Conduit's device CA (mqtt.tls.ca with \
                mqtt.tls.caKey) sign one and prints it. Either replaces the one enrolled before, whose \
                connections end at once; --revoke leaves none.
                """
        )
        @Argument(help: "The device id.") var id: String
        @Option(help: "A PEM file with the device's certificate.") var pem: String?
        @Option(help: "A PEM file with the device's certificate signing request.") var csr: String?
        @Flag(help: "Revoke the enrolled certificate.") var revoke = false
        @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            guard [self.pem != nil, self.csr != nil, self.revoke].filter({ $0 }).count == 1 else {
                throw ValidationError("give one of --pem FILE, --csr FILE or --revoke")
            }
        }

        func run() async throws {
            let input: DeviceRegistry.CertificateInput?
            if let path = self.pem ?? self.csr {
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("cannot read \(path)") }
                input = self.pem != nil ? .certificate(pem: text) : .csr(pem: text)
            } else {
                input = nil
            }
            try await reportingErrors {
                let pem = try await withAdminHub(self.storeOptions) { hub in
                    let principal = try await DevicesCommand.principal(hub, tenant: self.tenant)
                    guard let input else {
                        _ = try await hub.devices.revokeCertificate(of: self.id, by: principal)
                        return String?.none
                    }
                    let enrolled = try await hub.devices.enrollCertificate(input, for: self.id, by: principal)
                    FileHandle.standardError.write(Data("enrolled: sha256 \(enrolled.device.certificate?.fingerprint ?? "")\n".utf8))
                    return enrolled.pem
                }
                print(pem ?? "revoked the certificate of \(self.id)", terminator: pem == nil ? "\n" : "")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List devices: id, status, name, labels.")
        @Option(help: "Only devices in this status.") var status: DeviceStatus?
        @Option(help: "Only devices with this label.") var label: String?
        @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reportingErrors {
                let devices = try await withAdminHub(self.storeOptions) { hub in
                    try await DevicesCommand.all(hub, tenant: self.tenant, filter: .init(status: self.status, label: self.label))
                }
                for device in devices {
                    print("\(device.id)\t\(device.status.rawValue)\t\(device.name)\t\(device.labels.joined(separator: ","))")
                }
            }
        }
    }

    /// Every device of the tenant matching `filter`, page by page.
    static func all(_ hub: Hub, tenant: String, filter: DeviceRepository.Filter) async throws -> [Device] {
        let principal = try await self.principal(hub, tenant: tenant)
        var devices: [Device] = []
        var cursor: String?
        repeat {
            let page = try await hub.devices.list(filter: filter, page: try PageRequest(limit: PageRequest.maxLimit, cursor: cursor), by: principal)
            devices += page.items
            cursor = page.nextCursor
        } while cursor != nil
        return devices
    }

    struct Accept: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Accept devices, by id or every one with a label.")
        @OptionGroup var selection: Selection
        func run() async throws { try await self.selection.perform(.accept) }
    }

    struct Reject: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Reject devices, by id or every one with a label.")
        @OptionGroup var selection: Selection
        func run() async throws { try await self.selection.perform(.reject) }
    }

    struct Decommission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decommission devices (final), by id or every one with a label.")
        @OptionGroup var selection: Selection
        func run() async throws { try await self.selection.perform(.decommission) }
    }

    /// Which devices a lifecycle command acts on, and how it reports.
    struct Selection: ParsableArguments {
        @Argument(help: "Device ids.") var ids: [String] = []
        @Option(help: "Every device with this label whose status allows the action.") var label: String?
        @Option(help: "The tenant.") var tenant: String = Tenant.defaultName
        @OptionGroup var storeOptions: StoreOptions

        func validate() throws {
            guard self.ids.isEmpty != (self.label == nil) else { throw ValidationError("give device ids or --label, one of them") }
        }

        func perform(_ action: LifecycleAction) async throws {
            try await reportingErrors {
                let (done, failures) = try await withAdminHub(self.storeOptions) { hub in
                    let principal = try await DevicesCommand.principal(hub, tenant: self.tenant)
                    var ids = self.ids
                    if let label = self.label {
                        // By label: the devices the action applies to; the others are not an error.
                        let matching = try await DevicesCommand.all(hub, tenant: self.tenant, filter: .init(label: label))
                        ids = matching.filter { action.allowedFrom.contains($0.status) }.map(\.id)
                    }
                    var progress = ProgressBar(total: ids.count, title: action.rawValue)
                    var done = 0
                    var failures: [String] = []
                    for id in ids {
                        do {
                            _ = try await hub.devices.perform(action, on: id, by: principal)
                            done += 1
                        } catch let error as HubError {
                            failures.append("\(id): \(error.message)")
                        }
                        progress.advance()
                    }
                    progress.finish()
                    return (done, failures)
                }
                print("\(action.target.rawValue) \(done) device\(done == 1 ? "" : "s")")
                for failure in failures { FileHandle.standardError.write(Data("error: \(failure)\n".utf8)) }
                if !failures.isEmpty { throw ExitCode(1) }
            }
        }
    }
}

/// A progress bar on standard error, for work on many devices; plain counts when it is not a terminal.
struct ProgressBar {
    let total: Int
    let title: String
    private var done = 0
    private let interactive = isatty(STDERR_FILENO) != 0

    init(total: Int, title: String) {
        self.total = total
        self.title = title
    }

    mutating func advance() {
        self.set(done: self.done + 1)
    }

    /// Shows `done` of the total (never going back).
    mutating func set(done: Int) {
        let previous = self.done
        self.done = min(self.total, max(self.done, done))
        guard self.total > 1, self.done != previous else { return }
        if self.interactive {
            let width = 30
            let filled = self.total == 0 ? width : width * self.done / self.total
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            FileHandle.standardError.write(Data("\r\(self.title) [\(bar)] \(self.done)/\(self.total)".utf8))
        } else if self.done == self.total || self.done / 100 != previous / 100 {
            FileHandle.standardError.write(Data("\(self.title): \(self.done)/\(self.total)\n".utf8))
        }
    }

    func finish() {
        if self.interactive && self.total > 1 { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

extension DeviceStatus: ExpressibleByArgument {}
