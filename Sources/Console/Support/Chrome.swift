import Foundation
import Hub

/// What every page shows around its content: the title, who is signed in, the navigation, the
/// one-shot message and the CSRF token its forms carry.
struct Chrome: Sendable {
    var title: String
    var email: String?
    var role: String?
    var isAdmin = false
    var canOperate = false
    var csrf = ""
    var flash: FlashView?
    // Stored, not computed: templates read a view through reflection, which sees stored properties only.
    var inDevices: Bool
    var inIntegrations: Bool
    var inEvents: Bool
    var inRules: Bool
    var inWebhooks: Bool
    var inUsers: Bool
    var inTokens: Bool
    var signedIn: Bool

    enum Section: String, Sendable {
        case devices, integrations, rules, webhooks, events, users, tokens, none
    }


    struct FlashView: Sendable {
        var text: String
        var kind: String
        var isError: Bool
    }

    init(title: String, section: Section, signedIn: ConsoleAccounts.SignedIn?, flash: Flash?) {
        self.title = title
        self.inDevices = section == .devices
        self.inIntegrations = section == .integrations
        self.inEvents = section == .events
        self.inRules = section == .rules
        self.inWebhooks = section == .webhooks
        self.inUsers = section == .users
        self.inTokens = section == .tokens
        self.signedIn = signedIn != nil
        if let signedIn {
            self.email = signedIn.user.email
            self.role = signedIn.user.role.rawValue
            self.isAdmin = signedIn.user.role.includes(.admin)
            self.canOperate = signedIn.user.role.includes(.operator)
            self.csrf = ConsoleCSRF.token(forSession: signedIn.sessionToken)
        }
        self.flash = flash.map { FlashView(text: $0.text, kind: $0.kind.rawValue, isError: $0.kind == .error) }
    }
}
