import Hub
import Hummingbird

/// `/v1/events`: the tenant's event log, newest first.
struct EventRoutes {
    let hub: Hub

    func register(on group: RouterGroup<ConduitRequestContext>) {
        group.get("events", use: self.list)
    }

    @Sendable func list(_ request: Request, context: ConduitRequestContext) async throws -> ListRepresentation<EventRepresentation> {
        let principal = try context.requirePrincipal()
        let filter = EventFilter(
            deviceID: try request.query("deviceId", rule: FieldRules.deviceID), type: try request.query("type", oneOf: EventType.all.sorted())
        )
        let page = try await self.hub.events.list(filter: filter, page: try request.pageRequest(cursor: FieldRules.sequenceCursor), by: principal)
        return ListRepresentation(items: page.items.map(EventRepresentation.init), nextCursor: page.nextCursor)
    }
}
