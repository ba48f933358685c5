import Foundation

/// One page of a list, and the cursor of the next page (nil on the last).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextCursor: String?

    public init(items: [Item], nextCursor: String?) {
        self.items = items
        self.nextCursor = nextCursor
    }
}

/// Paging parameters, checked: `limit` 1 to 500 (default 50), an opaque cursor from a previous page.
public struct PageRequest: Sendable, Equatable {
    public static let defaultLimit = 50
    public static let maxLimit = 500

    public var limit: Int
    public var cursor: String?

    public init(limit: Int? = nil, cursor: String? = nil) throws {
        let limit = limit ?? Self.defaultLimit
        guard (1...Self.maxLimit).contains(limit) else {
            throw HubError.invalidField("limit", "must be between 1 and \(Self.maxLimit)")
        }
        self.limit = limit
        self.cursor = cursor.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The key a cursor carries; a cursor that is not one of ours is a 400 naming `cursor`.
    /// A cursor is `c1.` and the key of the page's last item (``FieldRules/deviceCursor``,
    /// ``FieldRules/sequenceCursor``): the document can say exactly which cursors are taken.
    func decodedCursor() throws -> String? {
        guard let cursor else { return nil }
        guard cursor.hasPrefix(Self.cursorPrefix), cursor.count > Self.cursorPrefix.count,
            !cursor.unicodeScalars.contains(where: { $0.value == 0 })
        else {
            throw HubError.invalidField("cursor", FieldRules.cursorMessage)
        }
        return String(cursor.dropFirst(Self.cursorPrefix.count))
    }

    static let cursorPrefix = "c1."

    /// The cursor of the page after the item whose key is `key`.
    public static func encodeCursor(_ key: String) -> String {
        Self.cursorPrefix + key
    }

    /// Builds a page from up to `limit + 1` fetched items: the extra one only says there is more.
    static func page<Item>(_ fetched: [Item], limit: Int, key: (Item) -> String) -> Page<Item> {
        guard fetched.count > limit else { return Page(items: fetched, nextCursor: nil) }
        let items = Array(fetched.prefix(limit))
        return Page(items: items, nextCursor: items.last.map { encodeCursor(key($0)) })
    }
}
