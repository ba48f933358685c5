import Mustache

// The views rendered most often (every page's frame, the device list's rows, a device's page)
// give their fields to templates through a switch: swift-mustache otherwise finds each name by
// reflection, which profiling showed to be most of the time a page takes (a Mirror and a type
// lookup for every variable of every row). Debug builds check that no stored property is missing.

extension Chrome: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "title": self.title
        case "email": self.email
        case "role": self.role
        case "isAdmin": self.isAdmin
        case "canOperate": self.canOperate
        case "csrf": self.csrf
        case "flash": self.flash
        case "inDevices": self.inDevices
        case "inIntegrations": self.inIntegrations
        case "inEvents": self.inEvents
        case "inRules": self.inRules
        case "inWebhooks": self.inWebhooks
        case "inUsers": self.inUsers
        case "inTokens": self.inTokens
        case "signedIn": self.signedIn
        default: unlisted(name, of: self)
        }
    }
}

extension Chrome.FlashView: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "text": self.text
        case "kind": self.kind
        case "isError": self.isError
        default: unlisted(name, of: self)
        }
    }
}

extension DevicePages.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "status": self.status
        case "labels": self.labels
        case "aws": self.aws
        case "lastMessage": self.lastMessage
        case "lastMessageISO": self.lastMessageISO
        default: unlisted(name, of: self)
        }
    }
}

extension DevicePages.Option: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "value": self.value
        case "label": self.label
        case "selected": self.selected
        default: unlisted(name, of: self)
        }
    }
}

extension DevicePages.ListPage: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "chrome": self.chrome
        case "q": self.q
        case "label": self.label
        case "statuses": self.statuses
        case "rows": self.rows
        case "empty": self.empty
        case "nextPage": self.nextPage
        case "firstPage": self.firstPage
        case "here": self.here
        case "create": self.create
        default: unlisted(name, of: self)
        }
    }
}

extension DevicePages.CreateForm: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "id": self.id
        case "name": self.name
        case "labels": self.labels
        case "attributes": self.attributes
        case "error": self.error
        case "open": self.open
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "chrome": self.chrome
        case "id": self.id
        case "name": self.name
        case "status": self.status
        case "labels": self.labels
        case "editName": self.editName
        case "labelsText": self.labelsText
        case "attributes": self.attributes
        case "attributesText": self.attributesText
        case "created": self.created
        case "certificate": self.certificate
        case "actions": self.actions
        case "aws": self.aws
        case "hasAWS": self.hasAWS
        case "payloadViews": self.payloadViews
        case "payloadView": self.payloadView
        case "messages": self.messages
        case "liveURL": self.liveURL
        case "moreMessages": self.moreMessages
        case "downlinks": self.downlinks
        case "canSendDownlinks": self.canSendDownlinks
        case "shadow": self.shadow
        case "shadowUnavailable": self.shadowUnavailable
        case "events": self.events
        case "forms": self.forms
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.CertificateRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "fingerprint": self.fingerprint
        case "subject": self.subject
        case "notAfter": self.notAfter
        case "source": self.source
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.Attribute: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "key": self.key
        case "value": self.value
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.Action: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "name": self.name
        case "label": self.label
        case "destructive": self.destructive
        case "confirm": self.confirm
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.AWSRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "integrationID": self.integrationID
        case "integrationName": self.integrationName
        case "state": self.state
        case "failing": self.failing
        case "thingArn": self.thingArn
        case "certificateID": self.certificateID
        case "endpoint": self.endpoint
        case "lastError": self.lastError
        case "attempts": self.attempts
        case "canIssue": self.canIssue
        case "issued": self.issued
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.PayloadLink: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "name": self.name
        case "href": self.href
        case "current": self.current
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.MessageRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "sequence": self.sequence
        case "topic": self.topic
        case "time": self.time
        case "timeISO": self.timeISO
        case "payload": self.payload
        case "shownAs": self.shownAs
        case "qos": self.qos
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.DownlinkRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "sequence": self.sequence
        case "payload": self.payload
        case "port": self.port
        case "confirmed": self.confirmed
        case "source": self.source
        case "queued": self.queued
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.ShadowView: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "integrationID": self.integrationID
        case "integrationName": self.integrationName
        case "servesDevice": self.servesDevice
        case "otherIntegrations": self.otherIntegrations
        case "alsoIn": self.alsoIn
        case "shadowName": self.shadowName
        case "names": self.names
        case "desired": self.desired
        case "reported": self.reported
        case "delta": self.delta
        case "version": self.version
        case "time": self.time
        case "exists": self.exists
        case "desiredInput": self.desiredInput
        case "conflict": self.conflict
        case "error": self.error
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.NamedShadow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "name": self.name
        case "href": self.href
        case "current": self.current
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.Forms: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "editError": self.editError
        case "downlinkError": self.downlinkError
        case "downlink": self.downlink
        case "shadowInput": self.shadowInput
        case "shadowIntegration": self.shadowIntegration
        case "shadowName": self.shadowName
        case "shadowConflict": self.shadowConflict
        case "shadowError": self.shadowError
        default: unlisted(name, of: self)
        }
    }
}

extension DeviceView.DownlinkForm: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "payload": self.payload
        case "isText": self.isText
        case "isBase64": self.isBase64
        case "isHex": self.isHex
        case "port": self.port
        case "confirmed": self.confirmed
        default: unlisted(name, of: self)
        }
    }
}

extension EventPages.Row: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "time": self.time
        case "timeISO": self.timeISO
        case "type": self.type
        case "deviceID": self.deviceID
        case "deviceHref": self.deviceHref
        case "actor": self.actor
        case "data": self.data
        default: unlisted(name, of: self)
        }
    }
}

/// A name a view's switch does not list: nothing (the lookup goes on up the context, as
/// for a missing property); a debug build stops when the view does have a property of that name.
private func unlisted(_ name: String, of view: Any) -> Any? {
    #if DEBUG
    if Mirror(reflecting: view).children.contains(where: { $0.label == name }) {
        assertionFailure("\(type(of: view)).child(named:) does not list its property \(name)")
    }
    #endif
    return nil
}
