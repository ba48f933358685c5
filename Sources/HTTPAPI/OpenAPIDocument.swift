/// The OpenAPI 3.1 document of the whole API, served at `/openapi.yaml`. A test fails when its
/// paths and methods and the router's disagree.
enum OpenAPIDocument {
    static let yaml = #"""
openapi: 3.1.0
info:
  title: Conduit
  version: "0.1.0"
  description: |
    Self-hosted IoT device hub for AWS IoT Core. Every /v1 route needs
    `Authorization: Bearer <token>`; roles are reader < operator < admin.
    Errors are `{"error": {"code": "...", "message": "..."}}`; a 400 names the field and the rule.
servers:
  - url: http://127.0.0.1:8080
security:
  - bearer: []
paths:
  /healthz:
    get:
      summary: Liveness
      security: []
      responses:
        "200": {description: "The process is up.", content: {application/json: {schema: {$ref: "#/components/schemas/Status"}}}}
  /readyz:
    get:
      summary: Readiness (the database answers)
      security: []
      responses:
        "200": {description: "Ready.", content: {application/json: {schema: {$ref: "#/components/schemas/Status"}}}}
        "503": {description: "The database does not answer.", content: {application/json: {schema: {$ref: "#/components/schemas/Status"}}}}
  /metrics:
    get:
      summary: Prometheus metrics
      security: []
      responses:
        "200": {description: "Prometheus text exposition format.", content: {text/plain: {schema: {type: string}}}}
  /openapi.yaml:
    get:
      summary: This document
      security: []
      responses:
        "200": {description: "OpenAPI 3.1 YAML.", content: {application/yaml: {schema: {type: string}}}}
  /v1/devices:
    get:
      summary: List devices by id (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/cursor"}
        - {name: label, in: query, schema: {type: string}, description: "Only devices with this label."}
        - {name: status, in: query, schema: {$ref: "#/components/schemas/DeviceStatus"}}
      responses:
        "200": {description: "A page of devices.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
    post:
      summary: Register a device as pending (operator)
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/DeviceCreate"}}}
      responses:
        "201": {description: "The device with its broker secret, shown only here.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceWithSecret"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "409": {$ref: "#/components/responses/Conflict"}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/devices/{id}:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    get:
      summary: One device (any role)
      responses:
        "200": {description: "The device.", content: {application/json: {schema: {$ref: "#/components/schemas/Device"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
    patch:
      summary: Change name, labels or attributes (operator)
      description: Fields left out keep their values; `labels` replaces the list; `attributes` is merged, a null value removes that attribute.
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/DevicePatch"}}}
      responses:
        "200": {description: "The device.", content: {application/json: {schema: {$ref: "#/components/schemas/Device"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "413": {$ref: "#/components/responses/TooLarge"}
    delete:
      summary: Remove a device from the registry (operator); its events stay
      responses:
        "204": {description: "Deleted."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/devices/{id}/secret:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: Rotate the device's broker secret (operator); the new one is shown only here
      responses:
        "200": {description: "The device with its new secret.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceWithSecret"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
  /v1/devices/{id}/messages:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    get:
      summary: What the device published over MQTT, newest first (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/cursor"}
      responses:
        "200": {description: "A page of messages.", content: {application/json: {schema: {$ref: "#/components/schemas/MessageList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/devices/{id}/accept:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: pending or rejected -> accepted (operator)
      responses:
        "200": {description: "The device.", content: {application/json: {schema: {$ref: "#/components/schemas/Device"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
  /v1/devices/{id}/reject:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: pending or accepted -> rejected (operator)
      responses:
        "200": {description: "The device.", content: {application/json: {schema: {$ref: "#/components/schemas/Device"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
  /v1/devices/{id}/decommission:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: pending, accepted or rejected -> decommissioned, which is final (operator)
      responses:
        "200": {description: "The device.", content: {application/json: {schema: {$ref: "#/components/schemas/Device"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
  /v1/events:
    get:
      summary: The tenant's event log, newest first (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/cursor"}
        - {name: deviceId, in: query, schema: {type: string}, description: "Only this device's events."}
        - {name: type, in: query, schema: {type: string}, description: "Only events of this type, e.g. device.accepted."}
      responses:
        "200": {description: "A page of events.", content: {application/json: {schema: {$ref: "#/components/schemas/EventList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
  /v1/tokens:
    get:
      summary: The tenant's API tokens, without their secrets (admin)
      responses:
        "200": {description: "Tokens.", content: {application/json: {schema: {$ref: "#/components/schemas/TokenList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
    post:
      summary: Make an API token (admin); the token is shown only here
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/TokenCreate"}}}
      responses:
        "201": {description: "The token.", content: {application/json: {schema: {$ref: "#/components/schemas/TokenWithSecret"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/tokens/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: {type: string}}
    delete:
      summary: Revoke a token (admin); it stops working at once
      responses:
        "204": {description: "Revoked."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  parameters:
    deviceId: {name: id, in: path, required: true, schema: {type: string, pattern: "^[a-zA-Z0-9:_-]{1,128}$"}}
    limit: {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 500, default: 50}}
    cursor: {name: cursor, in: query, schema: {type: string}, description: "The nextCursor of the previous page."}
  responses:
    BadRequest: {description: "A field breaks a rule; the message names both.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Unauthorized: {description: "No token, or an unknown or revoked one.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Forbidden: {description: "The token's role may not do this.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    NotFound: {description: "Nothing of that id in the token's tenant.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Conflict: {description: "The id is taken (device ids are global, as MQTT client ids and AWS thing names are), or the transition is not allowed from the current status.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    TooLarge: {description: "The body is over 1 MiB.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  schemas:
    Status:
      type: object
      required: [status]
      properties:
        status: {type: string}
        reason: {type: string}
    Error:
      type: object
      required: [error]
      properties:
        error:
          type: object
          required: [code, message]
          properties:
            code: {type: string, examples: [invalid_field, invalid_transition, not_found, forbidden]}
            message: {type: string}
    DeviceStatus: {type: string, enum: [pending, accepted, rejected, decommissioned]}
    DeviceCreate:
      type: object
      required: [name]
      additionalProperties: false
      properties:
        id: {type: [string, "null"], pattern: "^[a-zA-Z0-9:_-]{1,128}$", description: "Generated when left out or null. It is the device's MQTT client id and AWS IoT thing name, so it is unique across all tenants: an id another tenant holds is a 409 too."}
        name: {type: string, minLength: 1, maxLength: 256}
        labels: {type: array, maxItems: 32, items: {type: string, pattern: "^[a-zA-Z0-9:_.-]{1,64}$"}}
        attributes: {type: object, maxProperties: 50, additionalProperties: {type: string, maxLength: 800}}
    DevicePatch:
      type: object
      additionalProperties: false
      properties:
        name: {type: string, minLength: 1, maxLength: 256}
        labels: {type: [array, "null"], maxItems: 32, items: {type: string, pattern: "^[a-zA-Z0-9:_.-]{1,64}$"}, description: "Replaces the labels; null or [] removes them all."}
        attributes: {type: object, additionalProperties: {type: [string, "null"], maxLength: 800}}
    Device:
      type: object
      required: [id, name, status, labels, attributes, createdAt, updatedAt, statusChangedAt]
      properties:
        id: {type: string}
        name: {type: string}
        status: {$ref: "#/components/schemas/DeviceStatus"}
        labels: {type: array, items: {type: string}}
        attributes: {type: object, additionalProperties: {type: string}}
        createdAt: {type: string, format: date-time}
        updatedAt: {type: string, format: date-time}
        statusChangedAt: {type: string, format: date-time}
    DeviceWithSecret:
      allOf:
        - {$ref: "#/components/schemas/Device"}
        - type: object
          required: [secret]
          properties:
            secret: {type: string, description: "The broker password (MQTT username and client id = device id). Shown once."}
    DeviceList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Device"}}
        nextCursor: {type: [string, "null"]}
    Event:
      type: object
      required: [id, type, actor, data, createdAt]
      properties:
        id: {type: string}
        type: {type: string, examples: [device.created, device.updated, device.accepted, device.rejected, device.decommissioned, device.deleted, device.secret_rotated, token.created, token.revoked]}
        deviceId: {type: string}
        actor: {type: string, description: "token:{id}, cli or system"}
        data: {type: object}
        createdAt: {type: string, format: date-time}
    EventList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Event"}}
        nextCursor: {type: [string, "null"]}
    Message:
      type: object
      required: [topic, payload, qos, retain, receivedAt]
      properties:
        topic: {type: string}
        payload: {type: string, contentEncoding: base64}
        qos: {type: integer, enum: [0, 1, 2]}
        retain: {type: boolean}
        receivedAt: {type: string, format: date-time}
    MessageList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Message"}}
        nextCursor: {type: [string, "null"]}
    TokenCreate:
      type: object
      required: [role]
      additionalProperties: false
      properties:
        role: {type: string, enum: [admin, operator, reader]}
        name: {type: string, minLength: 1, maxLength: 256}
    Token:
      type: object
      required: [id, name, role, hint, createdAt]
      properties:
        id: {type: string}
        name: {type: string}
        role: {type: string, enum: [admin, operator, reader]}
        hint: {type: string, description: "The token's first characters."}
        createdAt: {type: string, format: date-time}
        lastUsedAt: {type: string, format: date-time}
    TokenWithSecret:
      allOf:
        - {$ref: "#/components/schemas/Token"}
        - type: object
          required: [token]
          properties:
            token: {type: string, description: "Send as Authorization Bearer. Shown once."}
    TokenList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Token"}}
        nextCursor: {type: "null"}
"""#
}
