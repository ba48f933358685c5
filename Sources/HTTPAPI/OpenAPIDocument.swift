import Hub

/// The OpenAPI 3.1 document of the whole API, served at `/openapi.yaml`. A test fails when its
/// paths and methods and the router's disagree; the rules of its fields (patterns, lengths,
/// enumerations, limits) are written from the values the server checks with (``FieldRules``,
/// the hub's limits and enumerations), and schemathesis holds the server to all of it.
enum OpenAPIDocument {
    private typealias S = OpenAPISchema

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
        - {$ref: "#/components/parameters/deviceCursor"}
        - {name: label, in: query, schema: \#(S.string(FieldRules.label)), description: "Only devices with this label."}
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
        "201": {links: \#(Self.links(to: Self.deviceOperations)), description: "The device with its broker secret, shown only here.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceWithSecret"}}}}
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
  /v1/devices/{id}/certificate:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: Enrol the device's TLS client certificate (operator), the only one that logs it in; replaces the one before and ends its connections
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              additionalProperties: false
              minProperties: 1
              maxProperties: 1
              properties:
                certificatePem: {type: string, minLength: 1, description: "The device's certificate, PEM, from the CA in mqtt.tls.ca."}
                csr: {type: string, minLength: 1, description: "A certificate signing request, PEM, for Conduit's device CA (mqtt.tls.caKey) to sign; the certificate has CN = the device id."}
      responses:
        "201": {description: "Enrolled.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceCertificate"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {$ref: "#/components/responses/Conflict"}
        "413": {$ref: "#/components/responses/TooLarge"}
    get:
      summary: The device's enrolled certificate (any role); 404 when none is
      responses:
        "200": {description: "The certificate.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceCertificate"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
    delete:
      summary: Revoke the device's certificate (operator); its connections end now
      responses:
        "204": {description: "Revoked (or none was enrolled)."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/devices/{id}/messages:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    get:
      summary: What the device published over MQTT, newest first (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/sequenceCursor"}
      responses:
        "200": {description: "A page of messages.", content: {application/json: {schema: {$ref: "#/components/schemas/MessageList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/devices/{id}/downlinks:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    post:
      summary: Queue a downlink for the device (operator)
      description: "Delivered on `devices/{id}/down` at QoS 1 at once when the device is subscribed, else when it next subscribes; removed from the queue when the device acknowledges it. MQTT 5.0 devices see `confirmed` and `port` as user properties."
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [payload_raw]
              additionalProperties: false
              properties:
                payload_raw: \#(S.string(FieldRules.downlinkPayload, "contentEncoding: base64", "description: \"The bytes the device receives, padded base64; at most \(Downlinks.maximumPayload) bytes decoded.\""))
                confirmed: {type: [boolean, "null"], default: false}
                port: {type: [integer, "null"], minimum: 0, maximum: 255}
      responses:
        "201": {description: "Queued.", content: {application/json: {schema: {$ref: "#/components/schemas/Downlink"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`device_not_accepted`: downlinks are for accepted devices.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    get:
      summary: The device's downlink queue, oldest first (any role)
      responses:
        "200": {description: "The queue.", content: {application/json: {schema: {$ref: "#/components/schemas/DownlinkList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
    delete:
      summary: Empty the device's downlink queue (operator)
      responses:
        "204": {description: "Emptied."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
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
  /v1/devices/{id}/aws:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    get:
      summary: The device's provisioning in each AWS IoT Core integration that binds it, or did until AWS is clean (any role)
      responses:
        "200": {description: "One item per integration.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceAWSList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/devices/{id}/aws/{integrationId}/credentials:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
      - {$ref: "#/components/parameters/integrationId"}
    post:
      summary: The device's AWS IoT certificate and private key (admin); shown only once
      description: "The private key is erased from Conduit as it is handed out: a second call is a 409 until the credentials are rotated. Sent with `Cache-Control: no-store`."
      responses:
        "200": {description: "What the device needs to connect to AWS IoT Core itself. Shown once.", headers: {Cache-Control: {$ref: "#/components/headers/NoStore"}}, content: {application/json: {schema: {$ref: "#/components/schemas/AWSCredentials"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {description: "No such device or integration in the token's tenant, or the integration does not bind the device.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "409": {description: "`credentials_issued`: they were handed out already and are not kept; POST .../rotate for new ones. `not_provisioned`: the device is not provisioned in the integration yet.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  /v1/devices/{id}/aws/{integrationId}/rotate:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
      - {$ref: "#/components/parameters/integrationId"}
    post:
      summary: Replace the device's AWS IoT key and certificate (admin)
      description: "The device's job makes and attaches a new certificate, then detaches, deactivates and deletes the old one; the call waits up to 30 seconds for it. Fetch the new credentials with POST .../credentials."
      responses:
        "200": {description: "Done: the new certificate is in place.", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceAWS"}}}}
        "202": {description: "The new certificate is still being made (or the job failed and will retry; see lastError).", content: {application/json: {schema: {$ref: "#/components/schemas/DeviceAWS"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {description: "No such device or integration in the token's tenant, or the integration does not bind the device.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "409": {description: "`not_provisioned`: the device has no certificate in the integration to rotate. `busy`: its job has not settled yet.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  /v1/events:
    get:
      summary: The tenant's event log, newest first (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/sequenceCursor"}
        - {name: deviceId, in: query, schema: \#(S.string(FieldRules.deviceID)), description: "Only this device's events."}
        - {name: type, in: query, schema: \#(S.enumeration(EventType.all.sorted())), description: "Only events of this type."}
      responses:
        "200": {description: "A page of events.", content: {application/json: {schema: {$ref: "#/components/schemas/EventList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
  /v1/cluster:
    get:
      summary: The nodes on this database and what each holds (admin)
      description: "Each node of Conduit pointed at this database, newest heartbeat first: when it started and last beat (every 5 s), whether it is alive (a beat within 15 s), how many of the uplink outbox's shards it forwards, how many devices' latest connection it took, and which of the tenant's integrations' downlink gateways it holds. A node that stopped cleanly is gone; one silent for a day is forgotten."
      responses:
        "200":
          description: "The nodes."
          content:
            application/json:
              schema:
                type: object
                required: [uplinkShards, nodes]
                properties:
                  uplinkShards: {type: integer, description: "Shards of the uplink outbox in all; each device's messages are in one, forwarded by one node at a time."}
                  nodes:
                    type: array
                    items:
                      type: object
                      required: [id, startedAt, heartbeatAt, alive, uplinkShards, devices, gateways]
                      properties:
                        id: {type: string, description: "The node's id (node.id, or node-id in its data dir)."}
                        startedAt: {type: string, format: date-time}
                        heartbeatAt: {type: string, format: date-time}
                        alive: {type: boolean}
                        uplinkShards: {type: integer, minimum: 0}
                        devices: {type: integer, minimum: 0, description: "Devices whose latest connection it took."}
                        gateways: {type: array, items: {type: string}, description: "Integration ids."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
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
        "201": {links: \#(Self.links(to: [("/v1/tokens/{id}", "delete")])), description: "The token.", content: {application/json: {schema: {$ref: "#/components/schemas/TokenWithSecret"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/tokens/{id}:
    parameters:
      - {name: id, in: path, required: true, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The token's id; any other text names no token (404)."}
    delete:
      summary: Revoke a token (admin); it stops working at once
      responses:
        "204": {description: "Revoked."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/integrations:
    get:
      summary: The tenant's AWS IoT Core integrations by name, without their secrets (admin)
      responses:
        "200": {description: "Integrations.", content: {application/json: {schema: {$ref: "#/components/schemas/IntegrationList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
    post:
      summary: Make an AWS IoT Core integration and bind devices to it (admin)
      description: "The credentials are checked first by calling DescribeEndpoint with them. Then Conduit provisions the bound devices in AWS in the background: accepted devices get a thing, a certificate and a policy; see GET /v1/devices/{id}/aws."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/IntegrationCreate"}}}
      responses:
        "201": {links: \#(Self.links(to: Self.integrationOperations)), description: "The integration; a secret access key shows as `<hidden>`.", headers: {Location: {description: "/v1/integrations/{id}", schema: {type: string}}}, content: {application/json: {schema: {$ref: "#/components/schemas/Integration"}}}}
        "400": {description: "A field breaks a rule (the message names both), or AWS refused the credentials or cannot be reached (the message carries AWS's reason).", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "409": {description: "`integration_exists`: the tenant has an integration of that name already. `gateway_certificate_in_use`: another integration's gateway has that certificate.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/integrations/{id}:
    parameters:
      - {$ref: "#/components/parameters/integrationPathId"}
    get:
      summary: One integration, with its devices' provisioning (admin)
      responses:
        "200": {description: "The integration and its devices.", content: {application/json: {schema: {$ref: "#/components/schemas/IntegrationWithDevices"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
    patch:
      summary: Change an integration (admin)
      description: "Fields left out keep their values; `type` cannot be changed; `endpointUrl` and `thingGroup` may be null to clear them, no other field may be null. `credentials`, `policy` and `bind` replace the old ones whole. New credentials, region or endpointUrl are checked with DescribeEndpoint first, and failed device jobs are then tried again at once. A new binding or new settings reach every device."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/IntegrationPatch"}}}
      responses:
        "200": {description: "The integration.", content: {application/json: {schema: {$ref: "#/components/schemas/Integration"}}}}
        "400": {description: "A field breaks a rule (the message names both), or AWS refused the credentials or cannot be reached (the message carries AWS's reason).", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`integration_exists`: the tenant has another integration of that name. `integration_deleting`: the integration is being deleted (only its credentials may change). `integration_in_use`: region, endpointUrl and the AWS account may change only while it holds nothing in AWS. `integration_changed`: it changed meanwhile; read it again. `uplink_topic_out_of_scope`: the uplink topic given does not fit the policy Conduit makes for the integration (per thing or shared), or such a policy given does not fit its uplink topic (see PerThingUplinkTopic). `gateway_certificate_in_use`: another integration's gateway has that certificate.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
    delete:
      summary: Delete an integration (admin); what it made in AWS is removed first
      description: "Every device's certificate, policy and thing that the integration made in AWS is removed, then its thing group if Conduit made it, then the integration itself, which shows status `deleting` until then. Deleting it again answers the same."
      responses:
        "202": {description: "The integration, with status `deleting`.", content: {application/json: {schema: {$ref: "#/components/schemas/Integration"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/integrations/{id}/reconcile:
    parameters:
      - {$ref: "#/components/parameters/integrationPathId"}
    post:
      summary: Compare the integration's devices with AWS and repair what was changed there (admin)
      description: "Every settled device's thing, certificate, policy, attachments and group membership are read from AWS; what was deleted or changed in AWS directly is handed to the device's job, which makes it again. The repairs are recorded as aws.drift_repaired events once done."
      responses:
        "200": {description: "The devices with drift and what is being repaired; empty when AWS matches.", content: {application/json: {schema: {$ref: "#/components/schemas/DriftList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`integration_deleting`: the integration is being deleted.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  /v1/rules:
    get:
      summary: The tenant's rules, with what each did on this node (any role)
      responses:
        "200": {description: "Rules by name; at most \#(RuleRules.maximumRulesPerTenant).", content: {application/json: {schema: {$ref: "#/components/schemas/RuleList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
    post:
      summary: Add a rule that acts on device data (admin)
      description: "A rule reads a number from the messages of the devices it watches, puts each device in one of its states by the band the value falls in (a value between bands leaves the device where it is: hysteresis), and fires its actions when a device crosses from one state to another, once per crossing. Evaluated at ingest, in the same commit as the message: a crash neither loses a firing nor fires twice, and each device's state is kept in the store."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/RuleCreate"}}}
      responses:
        "201": {links: \#(Self.links(to: Self.ruleOperations)), description: "The rule.", headers: {Location: {description: "/v1/rules/{id}", schema: {type: string}}}, content: {application/json: {schema: {$ref: "#/components/schemas/Rule"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "409": {description: "`rule_exists`: the tenant has a rule of that name. `too_many_rules`: it has \#(RuleRules.maximumRulesPerTenant) already.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/rules/{id}:
    parameters:
      - {$ref: "#/components/parameters/rulePathId"}
    get:
      summary: One rule (any role)
      responses:
        "200": {description: "The rule.", content: {application/json: {schema: {$ref: "#/components/schemas/Rule"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
    patch:
      summary: Change a rule (admin)
      description: "Fields left out keep their values. Definition fields given replace those fields (`debounce: null` removes the debounce), and the whole definition is checked again. A changed definition starts every device afresh: its next reading sets its state and fires nothing."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/RulePatch"}}}
      responses:
        "200": {description: "The rule.", content: {application/json: {schema: {$ref: "#/components/schemas/Rule"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`rule_exists`: the tenant has another rule of that name.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
    delete:
      summary: Delete a rule and its devices' states (admin)
      description: "What it fired already (outbox rows, downlinks, webhook deliveries) still goes out."
      responses:
        "204": {description: "Deleted."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/rules/{id}/test:
    parameters:
      - {$ref: "#/components/parameters/rulePathId"}
    post:
      summary: "Dry run: what a message would do to a device in a state (any role); changes nothing"
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/RuleTest"}}}
      responses:
        "200": {description: "The value read (or why none was), the state the device would be in, and the actions that would fire, rendered.", content: {application/json: {schema: {$ref: "#/components/schemas/RuleDryRun"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/rules/{id}/states:
    parameters:
      - {$ref: "#/components/parameters/rulePathId"}
    get:
      summary: Where each device stands in the rule, by device id (any role)
      parameters:
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/deviceCursor"}
      responses:
        "200": {description: "The devices that have read a value in the rule.", content: {application/json: {schema: {$ref: "#/components/schemas/RuleStateList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/webhooks:
    get:
      summary: The tenant's webhooks by name, without their secrets (admin)
      responses:
        "200": {description: "Webhooks; at most \#(Webhooks.maximumPerTenant).", content: {application/json: {schema: {$ref: "#/components/schemas/WebhookList"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
    post:
      summary: Add a webhook (admin); its secret is in this answer only
      description: "Events of the types it takes are queued to it in the transaction that records them, and sent as Standard Webhooks specifies: a JSON body {type, timestamp, data}, with webhook-id (the same on every try), webhook-timestamp and webhook-signature (v1,<base64 HMAC-SHA256 of id.timestamp.body> with the secret's key). A device's events go in order. A failed try is tried again with exponential backoff and jitter, or after the endpoint's Retry-After, for up to 3 days; an endpoint that answers 410 Gone is paused. Redirects are not followed. The URL must reach a public address over https (every address its name resolves to is checked, again at each try), or be a scheme://host:port the operator allowlisted (webhooks.allowlist)."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/WebhookCreate"}}}
      responses:
        "201": {links: \#(Self.links(to: Self.webhookOperations)), description: "The webhook with its secret.", headers: {Location: {description: "/v1/webhooks/{id}", schema: {type: string}}, Cache-Control: {$ref: "#/components/headers/NoStore"}}, content: {application/json: {schema: {$ref: "#/components/schemas/WebhookWithSecret"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "409": {description: "`webhook_exists`: the tenant has a webhook of that name. `too_many_webhooks`: it has \#(Webhooks.maximumPerTenant) already.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
  /v1/webhooks/{id}:
    parameters:
      - {$ref: "#/components/parameters/webhookPathId"}
    get:
      summary: One webhook (admin)
      responses:
        "200": {description: "The webhook.", content: {application/json: {schema: {$ref: "#/components/schemas/Webhook"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
    patch:
      summary: Change a webhook, pause it or resume it (admin)
      description: "Fields left out keep their values; none may be null. `paused: false` resumes a paused webhook, and its held deliveries go at once."
      requestBody:
        required: true
        content: {application/json: {schema: {$ref: "#/components/schemas/WebhookPatch"}}}
      responses:
        "200": {description: "The webhook.", content: {application/json: {schema: {$ref: "#/components/schemas/Webhook"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`webhook_exists`: the tenant has another webhook of that name.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "413": {$ref: "#/components/responses/TooLarge"}
    delete:
      summary: Delete a webhook with its queue and delivery log (admin)
      responses:
        "204": {description: "Deleted."}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/webhooks/{id}/secret:
    parameters:
      - {$ref: "#/components/parameters/webhookPathId"}
    post:
      summary: Rotate the webhook's secret (admin); the new one is in this answer only
      description: "For a day the old secret signs beside the new one (two signatures in webhook-signature), so that the receiver can switch."
      responses:
        "200": {description: "The webhook with its new secret.", headers: {Cache-Control: {$ref: "#/components/headers/NoStore"}}, content: {application/json: {schema: {$ref: "#/components/schemas/WebhookWithSecret"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/webhooks/{id}/deliveries:
    parameters:
      - {$ref: "#/components/parameters/webhookPathId"}
    get:
      summary: The delivery log, newest first, with every try (admin)
      parameters:
        - {name: state, in: query, schema: {type: string, enum: [pending, delivered, failed]}}
        - {$ref: "#/components/parameters/limit"}
        - {$ref: "#/components/parameters/sequenceCursor"}
      responses:
        "200": {description: "Deliveries.", content: {application/json: {schema: {$ref: "#/components/schemas/WebhookDeliveryList"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
  /v1/webhooks/{id}/deliveries/{deliveryId}/resend:
    parameters:
      - {$ref: "#/components/parameters/webhookPathId"}
      - {name: deliveryId, in: path, required: true, schema: {type: string, pattern: "^[0-9]{1,18}$"}, description: "A delivery's id; any other names no delivery (404)."}
    post:
      summary: Send a delivery again (admin)
      description: "A new delivery of the same message (the same webhook-id, so that the receiver can drop a repeat), after the device's others."
      responses:
        "202": {description: "The new delivery.", content: {application/json: {schema: {$ref: "#/components/schemas/WebhookDelivery"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`delivery_pending`: it is still being sent.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  /v1/devices/{id}/shadow:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
      - {name: integration, in: query, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The integration whose thing's shadow is meant; when left out, the device's shadow integration (of those it has a thing in, the one made first), which its shadow topics use too."}
      - {name: name, in: query, schema: \#(S.string(FieldRules.shadowName)), description: "A named shadow; the classic shadow when left out."}
    get:
      summary: The device's shadow without AWS's metadata (any role)
      description: "GetThingShadow, read now. A provisioned device without a shadow reads as {\"desired\": {}, \"reported\": {}}."
      responses:
        "200": {description: "The shadow.", content: {application/json: {schema: {$ref: "#/components/schemas/Shadow"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`not_provisioned`: the device has no thing in AWS.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "502": {$ref: "#/components/responses/AWSError"}
    patch:
      summary: Change desired state (admin)
      description: "UpdateThingShadow with {state: {desired}}: the keys given are set, null removes a key, others stay. `reported` is the device's and is refused. AWS's limits are checked first: 8192 bytes of state, 6 levels of nesting, no null inside an array. With `version`, only if the shadow is at that version."
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [desired]
              additionalProperties: false
              properties:
                desired: {$ref: "#/components/schemas/ShadowState"}
                version: {type: [integer, "null"], minimum: 0, maximum: 999999999999999, description: "Change only if the shadow is at this version; 0 for one that does not exist yet."}
      responses:
        "200": {description: "The shadow after the change.", content: {application/json: {schema: {$ref: "#/components/schemas/Shadow"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`version_conflict`: the shadow is at another version, given as `currentVersion` beside the message. `not_provisioned`: the device has no thing in AWS.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "502": {$ref: "#/components/responses/AWSError"}
    delete:
      summary: Delete the shadow (admin)
      responses:
        "204": {description: "Deleted (or there was none)."}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`not_provisioned`: the device has no thing in AWS.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "502": {$ref: "#/components/responses/AWSError"}
  /v1/devices/{id}/shadows:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
      - {name: integration, in: query, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "When left out, the device's shadow integration."}
    get:
      summary: The names of the device's named shadows (any role)
      responses:
        "200": {description: "The names.", content: {application/json: {schema: {type: object, required: [items], properties: {items: {type: array, items: {type: string}}}}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`not_provisioned`: the device has no thing in AWS.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  /v1/things:
    post:
      summary: Create a thing as Para does, provisioned in AWS before the answer (admin)
      description: "Creates and accepts a device (label para:thing), provisions it in the tenant's AWS integration and answers with its credentials in `deviceDetails`, shown this once. Para's own object fields (appid, tags, ...) are accepted and ignored."
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [name, serviceBroker]
              additionalProperties: false
              properties:
                name: \#(S.string(FieldRules.displayName))
                serviceBroker: {type: string, pattern: "^[aA][wW][sS]$", description: "AWS (in any case)."}
                type: {type: [string, "null"], enum: [thing, null]}
                integrationId: \#(S.string(FieldRules.opaqueIdentifier, nullable: true, "description: \"Required when the tenant has several AWS integrations; any other text names no integration (404).\""))
                deviceState: {$ref: "#/components/schemas/ShadowState"}
              patternProperties: {\#(Self.paraFields): {description: "Para's own fields: accepted and ignored."}}
      responses:
        "201": {links: \#(Self.links(to: Self.thingOperations)), description: "Created, with deviceDetails.", content: {application/json: {schema: {$ref: "#/components/schemas/Thing"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {description: "No integration of that id in the token's tenant.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "409": {description: "`no_integration`: the tenant has no active AWS integration. `integration_required`: it has several; name one with integrationId. `integration_inactive`: the one named is not active. `integration_binds_devices`: it binds a list of devices; things go to integrations that bind all devices or by label. `aws_refused`: AWS refused what the integration asks for the thing (a policy it names does not exist...); nothing was kept.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "502": {description: "`aws_error`: AWS did not take the thing within a minute; nothing was kept.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    get:
      summary: The tenant's things, each with its deviceState read from AWS (any role)
      parameters:
        - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: \#(Things.maximumPageSize), default: \#(PageRequest.defaultLimit)}, description: "At most \#(Things.maximumPageSize): each thing listed is a call to AWS."}
        - {name: lastKey, in: query, schema: \#(S.string(FieldRules.deviceCursor)), description: "The lastKey of the previous page."}
      responses:
        "200": {description: "A page.", content: {application/json: {schema: {type: object, required: [items, totalHits], properties: {items: {type: array, items: {$ref: "#/components/schemas/Thing"}}, totalHits: {type: integer}, lastKey: {type: string}}}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
  /v1/things/{id}:
    parameters:
      - {$ref: "#/components/parameters/deviceId"}
    get:
      summary: The thing, its deviceState the shadow's desired state, read now; never its keys (any role)
      responses:
        "200": {description: "The thing.", content: {application/json: {schema: {$ref: "#/components/schemas/Thing"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "404": {$ref: "#/components/responses/NotFound"}
        "502": {$ref: "#/components/responses/AWSError"}
    patch:
      summary: Write deviceState as the shadow's desired state (admin)
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [deviceState]
              additionalProperties: false
              properties:
                deviceState: {$ref: "#/components/schemas/ShadowState"}
                name: {description: "Accepted and ignored."}
                type: {description: "Accepted and ignored."}
                serviceBroker: {description: "Accepted and ignored."}
              patternProperties: {\#(Self.paraFields): {description: "Para's own fields: accepted and ignored."}}
      responses:
        "200": {description: "The thing after the change.", content: {application/json: {schema: {$ref: "#/components/schemas/Thing"}}}}
        "400": {$ref: "#/components/responses/BadRequest"}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
        "409": {description: "`not_provisioned`: the thing has no thing in AWS yet.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "502": {$ref: "#/components/responses/AWSError"}
    delete:
      summary: Delete the thing, with its shadows, certificate, policy and thing in AWS (admin)
      description: "The device is deleted; its job removes the certificate, the policy, the shadows and the thing from AWS."
      responses:
        "200": {description: "Deleted; AWS is clean."}
        "502": {description: "`aws_error`: AWS is away or not clean yet; the removal goes on.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
        "401": {$ref: "#/components/responses/Unauthorized"}
        "403": {$ref: "#/components/responses/Forbidden"}
        "404": {$ref: "#/components/responses/NotFound"}
components:
  securitySchemes:
    bearer: {type: http, scheme: bearer}
  parameters:
    deviceId: {name: id, in: path, required: true, schema: \#(S.string(FieldRules.deviceID)), description: "The device's id; any other text names no device (404)."}
    limit: {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: \#(PageRequest.maxLimit), default: \#(PageRequest.defaultLimit)}}
    deviceCursor: {name: cursor, in: query, schema: \#(S.string(FieldRules.deviceCursor)), description: "The nextCursor of the previous page."}
    sequenceCursor: {name: cursor, in: query, schema: \#(S.string(FieldRules.sequenceCursor)), description: "The nextCursor of the previous page."}
    integrationPathId: {name: id, in: path, required: true, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The integration's id; any other text names no integration (404)."}
    webhookPathId: {name: id, in: path, required: true, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The webhook's id; any other text names no webhook (404)."}
    rulePathId: {name: id, in: path, required: true, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The rule's id; any other text names no rule (404)."}
    integrationId: {name: integrationId, in: path, required: true, schema: \#(S.string(FieldRules.opaqueIdentifier)), description: "The integration's id; any other text names no integration (404)."}
  responses:
    AWSError: {description: "`aws_error`: AWS failed or could not be reached; try again.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    BadRequest: {description: "A field breaks a rule; the message names both.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Unauthorized: {description: "No token, or an unknown or revoked one.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Forbidden: {description: "The token's role may not do this.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    NotFound: {description: "Nothing of that id in the token's tenant.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    Conflict: {description: "The id is taken (device ids are global, as MQTT client ids and AWS thing names are), or the transition is not allowed from the current status.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
    TooLarge: {description: "The body is over 1 MiB.", content: {application/json: {schema: {$ref: "#/components/schemas/Error"}}}}
  headers:
    NoStore: {description: "The body holds a secret shown once: caches must not keep it.", schema: {type: string, const: no-store}}
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
            code: {type: string, examples: [invalid_field, invalid_transition, not_found, forbidden, integration_exists, integration_deleting, integration_in_use, integration_changed, gateway_certificate_in_use, not_provisioned, credentials_issued, busy, integration_required, uplink_topic_out_of_scope, aws_refused]}
            message: {type: string}
    DeviceStatus: \#(S.enumeration(DeviceStatus.allCases.map(\.rawValue)))
    DisplayName: \#(S.string(FieldRules.displayName, "description: \"Not blank, no control characters; stored without the spaces around it.\""))
    DeviceCreate:
      type: object
      required: [name]
      additionalProperties: false
      properties:
        id: \#(S.string(FieldRules.deviceID, nullable: true, "description: \"Generated when left out or null. It is the device's MQTT client id and AWS IoT thing name, so it is unique across all tenants: an id another tenant holds is a 409 too.\""))
        name: {$ref: "#/components/schemas/DisplayName"}
        labels: {type: [array, "null"], maxItems: \#(FieldRules.maximumLabels), items: \#(S.string(FieldRules.label)), description: "Duplicates count, and are dropped. Null: none."}
        attributes: {type: [object, "null"], maxProperties: \#(FieldRules.maximumAttributes), propertyNames: \#(S.string(FieldRules.attributeKey)), additionalProperties: \#(S.string(FieldRules.attributeValue)), description: "Null: none."}
    DevicePatch:
      type: object
      additionalProperties: false
      properties:
        name: {$ref: "#/components/schemas/DisplayName"}
        labels: {type: [array, "null"], maxItems: \#(FieldRules.maximumLabels), items: \#(S.string(FieldRules.label)), description: "Replaces the labels; null or [] removes them all."}
        attributes: {type: object, propertyNames: \#(S.string(FieldRules.attributeKey)), additionalProperties: \#(S.string(FieldRules.attributeValue, nullable: true)), description: "Merged into the device's: null removes that attribute. The device keeps at most \#(FieldRules.maximumAttributes)."}
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
    DeviceCertificate:
      type: object
      additionalProperties: false
      required: [fingerprint, subject, notBefore, notAfter, enrolledAt, source, certificatePem]
      properties:
        fingerprint: {type: string, pattern: "^[0-9a-f]{64}$", description: "SHA-256 of the certificate's DER, hex."}
        subject: {type: string}
        notBefore: {type: string, format: date-time}
        notAfter: {type: string, format: date-time}
        enrolledAt: {type: string, format: date-time}
        source: {type: string, enum: [pem, csr], description: "pem: given; csr: signed by Conduit's device CA."}
        certificatePem: {type: string}
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
        type: {type: string, examples: [device.created, device.updated, device.accepted, device.rejected, device.decommissioned, device.deleted, device.secret_rotated, token.created, token.revoked, integration.created, integration.updated, integration.deleted, aws.provisioned, aws.disabled, aws.deprovisioned, aws.failed, aws.drift_repaired, aws.credentials_issued, aws.credentials_rotated, aws.message_dropped, uplink.dropped, downlink.skipped, rule.fired, rule.action_failed, webhook.paused, user.created, user.deleted, user.role_changed]}
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
    Downlink:
      type: object
      required: [id, payload_raw, confirmed, source, createdAt]
      properties:
        id: {type: string}
        payload_raw: {type: string, contentEncoding: base64}
        confirmed: {type: boolean}
        port: {type: integer}
        source: {type: string, description: "Who queued it: `token:<id>`, `cli`, or `aws:<integration id>`."}
        createdAt: {type: string, format: date-time}
    DownlinkList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Downlink"}}
        nextCursor: {type: "null"}
    Message:
      type: object
      required: [topic, payload, qos, retain, receivedAt, source]
      properties:
        topic: {type: string}
        source: {type: string, enum: [device, aws], description: "aws: taken from AWS IoT on one of an integration's ingest topics."}
        payload: {type: string, contentEncoding: base64}
        payloadText: {type: string, description: "The payload as text; present when it is valid UTF-8."}
        payloadJson: {description: "The payload as JSON; present when it parses as JSON."}
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
        role: \#(S.enumeration(Role.allCases.map(\.rawValue)))
        name: \#(S.string(FieldRules.displayName, nullable: true, "description: \"Null or left out: '{role} token'.\""))
    Token:
      type: object
      required: [id, name, role, hint, createdAt]
      properties:
        id: {type: string}
        name: {type: string}
        role: \#(S.enumeration(Role.allCases.map(\.rawValue)))
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
    AWSProvisioningState:
      type: string
      enum: \#(S.list(AWSProvisioningState.allCases.map(\.rawValue)))
      description: "pending: nothing to do in AWS yet (the device is pending). provisioned: thing, certificate and policy exist and the certificate is ACTIVE (the device is accepted). disabled: the certificate is INACTIVE (the device is rejected). deprovisioned: removed from AWS (the device is decommissioned, deleted or unbound). provisioning and deprovisioning: on the way. failed: an error that retrying will not fix by itself (see lastError); it is still retried, less often."
    IntegrationCredentialsInput:
      description: "One of: an access key; an IAM role that Conduit assumes with its own credentials; or Conduit's own credentials (the AWS SDKs' default chain). A member of another form may be given as null."
      oneOf:
        - type: object
          title: Access key
          required: [accessKeyId, secretAccessKey]
          additionalProperties: false
          properties:
            accessKeyId: \#(S.string(FieldRules.accessKeyID))
            secretAccessKey: \#(S.string(FieldRules.secretAccessKey, "writeOnly: true", "description: \"Stored sealed; never shown again (responses say `<hidden>`).\""))
            roleArn: {type: "null"}
            externalId: {type: "null"}
            source: {type: "null"}
        - type: object
          title: Role
          required: [roleArn]
          additionalProperties: false
          properties:
            roleArn: \#(S.string(FieldRules.roleARN, "examples: [\"arn:aws:iam::123456789012:role/conduit\"]"))
            externalId: \#(S.string(FieldRules.externalID, nullable: true, "description: \"Free in the default tenant; in any other, the tenant's id (filled in when left out).\""))
            accessKeyId: {type: "null"}
            secretAccessKey: {type: "null"}
            source: {type: "null"}
        - type: object
          title: Conduit's own credentials
          description: "The default tenant's only; 403 in any other."
          required: [source]
          additionalProperties: false
          properties:
            source: {type: string, const: default}
            accessKeyId: {type: "null"}
            secretAccessKey: {type: "null"}
            roleArn: {type: "null"}
            externalId: {type: "null"}
    IntegrationCredentials:
      type: object
      description: "The credentials as shown: the access key id with the secret as `<hidden>`, the role, or `{source: default}`."
      properties:
        accessKeyId: {type: string}
        secretAccessKey: {type: string, const: "<hidden>"}
        roleArn: {type: string}
        externalId: {type: string}
        source: {type: string, const: default}
    IntegrationPolicy:
      description: "The AWS IoT policy attached to each device's certificate: an existing one by name; a least-privilege one Conduit makes for each thing (the default), which lets the device connect as its own client id, publish on its uplink topic, receive on its downlink topic, and use its shadow; or one shared least-privilege policy Conduit makes for all the integration's things (conduit-shared@{integration id}), which grants each thing the same through AWS IoT's thing policy variable ${iot:Connection.Thing.ThingName} and lets a certificate connect only while attached to a thing. The shared policy needs no CreatePolicy per device (AWS allows 10 a second), and is deleted with the integration."
      oneOf:
        - type: object
          title: Existing policy
          required: [name]
          additionalProperties: false
          properties:
            name: \#(S.string(FieldRules.policyName))
            perThing: {enum: [false, null]}
            shared: {enum: [false, null]}
        - type: object
          title: One policy per thing
          required: [perThing]
          additionalProperties: false
          properties:
            perThing: {type: boolean, const: true}
            name: {type: "null"}
            shared: {enum: [false, null]}
        - type: object
          title: One shared policy
          required: [shared]
          additionalProperties: false
          properties:
            shared: {type: boolean, const: true}
            name: {type: "null"}
            perThing: {enum: [false, null]}
    IntegrationBind:
      description: "Which of the tenant's devices the integration mirrors: listed ids, every device with any of the labels, or all. A device that stops matching is removed from AWS. `{devices: []}` binds none. A member of another form may be given as null."
      oneOf:
        - type: object
          title: Devices
          required: [devices]
          additionalProperties: false
          properties:
            devices: {type: array, maxItems: 10000, items: \#(S.string(FieldRules.deviceID))}
            labels: {type: "null"}
            all: {type: "null"}
        - type: object
          title: Labels
          required: [labels]
          additionalProperties: false
          properties:
            labels: {type: array, minItems: 1, maxItems: \#(FieldRules.maximumLabels), items: \#(S.string(FieldRules.label))}
            devices: {type: "null"}
            all: {type: "null"}
        - type: object
          title: All
          required: [all]
          additionalProperties: false
          properties:
            all: {type: boolean, const: true}
            devices: {type: "null"}
            labels: {type: "null"}
    ThingAttribute: {allOf: [\#(S.string(FieldRules.attributeKey)), {not: {const: name}}]}
    IntegrationCreate:
      type: object
      required: [name, region, credentials, bind]
      additionalProperties: false
      description: "An optional member given as null takes its default. Unless `policy` names an existing policy, Conduit makes the policy (one per thing, or one shared), and `uplinkTopic` must be one such a policy can scope (PerThingUplinkTopic)."
      if: {required: [policy], properties: {policy: {type: object, required: [name], properties: {name: {type: string}}}}}
      else: {properties: {uplinkTopic: {oneOf: [{$ref: "#/components/schemas/PerThingUplinkTopic"}, {type: "null"}]}}}
      properties:
        name: {allOf: [{$ref: "#/components/schemas/DisplayName"}], description: "Unique in the tenant."}
        type: {type: [string, "null"], enum: [aws-iot-core, null], default: aws-iot-core}
        region: \#(S.string(FieldRules.region, "examples: [eu-west-1]"))
        endpointUrl: {type: [string, "null"], description: "`scheme://host[:port][/]` (no user info, path, query, fragment or percent-escape) overriding AWS IoT's control-plane endpoint: an AWS IoT host of the region over HTTPS on 443 (FIPS, VPC endpoints), or an endpoint listed in the operator's --aws-endpoint-allowlist; anything else is a 400. By default https://iot.{region}.amazonaws.com."}
        credentials: {$ref: "#/components/schemas/IntegrationCredentialsInput"}
        policy: {oneOf: [{$ref: "#/components/schemas/IntegrationPolicy"}, {type: "null"}], default: {perThing: true}}
        thingGroup: \#(S.string(FieldRules.thingGroup, nullable: true, "description: \"A thing group every thing joins; made when it does not exist, and then deleted with the integration.\""))
        thingAttributes: {type: [array, "null"], maxItems: \#(FieldRules.maximumThingAttributes), default: [], items: {$ref: "#/components/schemas/ThingAttribute"}, description: "Device attributes copied to the thing. The device's name always is, as `name`; a thing without a thing type holds 3 attributes."}
        uplinkTopic: \#(S.string(FieldRules.uplinkTopic, nullable: true, "default: \"conduit/{deviceId}/up\"", "description: \"The AWS IoT topic the device's messages go to. Placeholders: \(FieldRules.placeholders.map { "{\($0)}" }.joined(separator: ", ")). No MQTT wildcards (+, #), not starting with $, at most 7 slashes and 256 bytes of UTF-8.\""))
        payloadFormat: \#(S.enumeration(FieldRules.payloadFormats, nullable: true, "default: raw"))
        ingestTopics: {type: [array, "null"], maxItems: \#(FieldRules.maximumIngestTopics), items: {type: string, minLength: 1, maxLength: 256, pattern: "^(?!\\$)(?:(?:[^/+#{}\\x00]*|\\+)/)*\\{deviceId\\}(?:/(?:[^/+#{}\\x00]*|\\+))*$"}, description: "AWS IoT topic filters whose messages are taken back into Conduit, each with one {deviceId} level naming the device (waylay/{deviceId}/state); + stands for any level. The gateway subscribes to them and its policy grants exactly them; each message goes into its device's history marked source aws, and the rules see it (their subtopic is the levels after {deviceId}). A filter that a topic the uplink template can render would match is refused (Conduit would take its own messages back). Null or []: none."}
        downlinkPrefix: \#(S.string(FieldRules.downlinkPrefix, nullable: true, "default: conduit/devices", "description: \"Devices receive on {downlinkPrefix}/{deviceId}/down. No placeholders or MQTT wildcards, not starting with $ or ending with /, at most 5 slashes and 256 bytes of UTF-8.\""))
        active: {type: [boolean, "null"], default: true, description: "An inactive integration keeps what it made in AWS but does no new work."}
        bind: {$ref: "#/components/schemas/IntegrationBind"}
        mqttEndpoint: \#(S.string(FieldRules.mqttEndpoint, nullable: true, "examples: [\"a1b2c3d4e5f6g7-ats.iot.eu-west-1.amazonaws.com:8883\"]", "description: \"host:port of the MQTT data endpoint the downlink gateway connects to: an AWS IoT data host of the region on 8883 or 443, or mqtts://host:port listed in the operator's --aws-endpoint-allowlist; anything else is a 400. By default the account's iot:Data-ATS endpoint on 8883.\""))
        mqttTrustRoots: \#(S.string(FieldRules.mqttTrustRoots, nullable: true, "description: \"CA certificates (PEM, -----BEGIN CERTIFICATE-----), at least one, at most 262144 bytes, that the data endpoint's certificate must chain to; by default the system's trust store, which holds Amazon's roots.\""))
        gateway: {oneOf: [{$ref: "#/components/schemas/IntegrationGatewayInput"}, {type: "null"}], description: "The downlink gateway's certificate from your own CA, registered in AWS with RegisterCertificateWithoutCA; null or left out: AWS signs one for a key Conduit makes."}
    IntegrationGatewayInput:
      type: object
      required: [certificatePem, privateKey]
      additionalProperties: false
      properties:
        certificatePem: {type: string, description: "Exactly one X.509 certificate, PEM, valid now."}
        privateKey: {type: string, description: "Its private key, PEM (PKCS#8, SEC1 or PKCS#1). Stored sealed; never shown again."}
    PerThingUplinkTopic: \#(S.string(FieldRules.perThingUplinkTopic, "description: \"An uplink topic a policy Conduit makes (per thing or shared) can grant without granting other things' topics: {deviceId} once, as a whole level; {subtopic} only as the whole last level, after it; no {deviceName}, '*', '?' or '${'.\""))
    IntegrationPatch:
      type: object
      additionalProperties: false
      description: "With a policy Conduit makes (per thing or shared), the uplink topic must be one it can scope (PerThingUplinkTopic): a 400 when this request sets both, a 409 `uplink_topic_out_of_scope` when one of them is the integration's as it stands."
      if: {required: [policy, uplinkTopic], properties: {policy: {type: object, anyOf: [{required: [perThing], properties: {perThing: {const: true}}}, {required: [shared], properties: {shared: {const: true}}}]}}}
      then: {properties: {uplinkTopic: {$ref: "#/components/schemas/PerThingUplinkTopic"}}}
      properties:
        name: {$ref: "#/components/schemas/DisplayName"}
        region: \#(S.string(FieldRules.region))
        endpointUrl: {type: [string, "null"], description: "As on creation; null goes back to AWS IoT's regional endpoint."}
        credentials: {$ref: "#/components/schemas/IntegrationCredentialsInput"}
        policy: {$ref: "#/components/schemas/IntegrationPolicy"}
        thingGroup: \#(S.string(FieldRules.thingGroup, nullable: true, "description: \"null: things join no group.\""))
        thingAttributes: {type: array, maxItems: \#(FieldRules.maximumThingAttributes), items: {$ref: "#/components/schemas/ThingAttribute"}}
        uplinkTopic: \#(S.string(FieldRules.uplinkTopic, "description: \"As on creation.\""))
        payloadFormat: \#(S.enumeration(FieldRules.payloadFormats))
        ingestTopics: {type: [array, "null"], maxItems: \#(FieldRules.maximumIngestTopics), items: {type: string, minLength: 1, maxLength: 256, pattern: "^(?!\\$)(?:(?:[^/+#{}\\x00]*|\\+)/)*\\{deviceId\\}(?:/(?:[^/+#{}\\x00]*|\\+))*$"}, description: "AWS IoT topic filters whose messages are taken back into Conduit, each with one {deviceId} level naming the device (waylay/{deviceId}/state); + stands for any level. The gateway subscribes to them and its policy grants exactly them; each message goes into its device's history marked source aws, and the rules see it (their subtopic is the levels after {deviceId}). A filter that a topic the uplink template can render would match is refused (Conduit would take its own messages back). Null or []: none."}
        downlinkPrefix: \#(S.string(FieldRules.downlinkPrefix, "description: \"As on creation.\""))
        active: {type: boolean}
        bind: {$ref: "#/components/schemas/IntegrationBind"}
        mqttEndpoint: \#(S.string(FieldRules.mqttEndpoint, nullable: true, "description: \"As on creation; null: the account's iot:Data-ATS endpoint.\""))
        mqttTrustRoots: \#(S.string(FieldRules.mqttTrustRoots, nullable: true, "description: \"As on creation; null: the system's trust store.\""))
        gateway: {oneOf: [{$ref: "#/components/schemas/IntegrationGatewayInput"}, {type: "null"}], description: "null: back to a certificate AWS signs; the registered one is removed from AWS."}
    Integration:
      type: object
      required: [id, name, type, region, credentials, policy, thingAttributes, uplinkTopic, payloadFormat, downlinkPrefix, ingestTopics, gateway, active, bind, status, createdAt, updatedAt]
      properties:
        id: {type: string, examples: [int_4f1c9a2e7b3d5a6c8e01]}
        name: {type: string}
        type: {type: string, const: aws-iot-core}
        region: {type: string}
        endpointUrl: {type: string, description: "Only when set."}
        credentials: {$ref: "#/components/schemas/IntegrationCredentials"}
        policy: {$ref: "#/components/schemas/IntegrationPolicy"}
        thingGroup: {type: string, description: "Only when set."}
        thingAttributes: {type: array, items: {type: string}}
        uplinkTopic: {type: string}
        payloadFormat: {type: string, enum: [raw, envelope]}
        downlinkPrefix: {type: string}
        ingestTopics: {type: array, items: {type: string}}
        active: {type: boolean}
        bind: {$ref: "#/components/schemas/IntegrationBind"}
        status: {type: string, enum: [active, deleting], description: "deleting: its devices are being removed from AWS; the integration goes when they are."}
        dataEndpoint: {type: string, description: "The account's iot:Data-ATS endpoint, where devices connect; from DescribeEndpoint."}
        mqttEndpoint: {type: string, description: "Only when set."}
        mqttTrustRoots: {type: string, description: "Only when set."}
        gateway: {$ref: "#/components/schemas/IntegrationGateway"}
        createdAt: {type: string, format: date-time}
        updatedAt: {type: string, format: date-time}
    Shadow:
      type: object
      required: [desired, reported]
      properties:
        desired: {type: object}
        reported: {type: object}
        delta: {type: object, description: "Where desired differs from reported."}
        version: {type: integer, description: "Absent while the shadow does not exist."}
        timestamp: {type: integer, description: "When AWS last wrote it, seconds since 1970."}
        integration: {type: string, description: "The integration whose thing's shadow this is: the one named with `integration`, else the device's shadow integration, the one its shadow topics use (of those it has a thing in, the one made first)."}
    Thing:
      type: object
      required: [id, timestamp, type, name, serviceBroker, deviceState]
      properties:
        id: {type: string}
        timestamp: {type: integer, description: "Created, milliseconds since 1970."}
        type: {type: string, const: thing}
        name: {type: string}
        serviceBroker: {type: string, const: AWS}
        deviceState: {type: object, description: "The shadow's desired state."}
        deviceDetails:
          type: object
          description: "Only in the answer to POST /v1/things."
          properties:
            thingId: {type: string}
            thingName: {type: string}
            thingARN: {type: string}
            clientId: {type: string}
            clientCertId: {type: string}
            clientCertARN: {type: string}
            clientCert: {type: string}
            privateKey: {type: string}
            publicKey: {type: string}
            region: {type: string}
            port: {type: integer, const: 8883}
            host: {type: string}
    IntegrationGateway:
      type: object
      required: [thingName, certificateSource]
      description: "The integration's downlink gateway: a thing whose policy allows only to connect as itself, subscribe to {downlinkPrefix}/+/down and receive on it. Its state and certificate show on GET /v1/integrations/{id}; its connection, when this node runs one."
      properties:
        thingName: {type: string, examples: [conduit-gateway-int_4f1c9a2e7b3d5a6c8e01], description: "Also its MQTT client id; its policy is conduit-gateway@{integrationId}."}
        certificateSource: {type: string, enum: [aws, registered]}
        privateKey: {type: string, const: "<hidden>", description: "Only for a registered certificate."}
        state: {$ref: "#/components/schemas/AWSProvisioningState"}
        thingArn: {type: string}
        certificateId: {type: string}
        certificateStatus: {type: string}
        lastError: {type: string}
        endpoint: {type: string, description: "host:port it connects to."}
        connected: {type: boolean}
        connectionError: {type: string, description: "Why the last connection failed, until it connects again."}
    IntegrationDevice:
      type: object
      required: [deviceId, state, attempts, updatedAt]
      properties:
        deviceId: {type: string}
        state: {$ref: "#/components/schemas/AWSProvisioningState"}
        lastError: {type: string}
        attempts: {type: integer, minimum: 0}
        updatedAt: {type: string, format: date-time}
    IntegrationWithDevices:
      allOf:
        - {$ref: "#/components/schemas/Integration"}
        - type: object
          required: [devices]
          properties:
            devices:
              type: object
              required: [count, states, items, latestErrors]
              properties:
                count: {type: integer, minimum: 0, description: "The devices the integration has in AWS or is working on."}
                states: {type: object, propertyNames: {$ref: "#/components/schemas/AWSProvisioningState"}, additionalProperties: {type: integer, minimum: 0}, description: "How many devices are in each state; a state with none may be left out."}
                items: {type: array, maxItems: 100, items: {$ref: "#/components/schemas/IntegrationDevice"}, description: "The first 100 devices by id."}
                latestErrors: {type: array, items: {$ref: "#/components/schemas/IntegrationDevice"}, description: "The devices that failed most recently, with their errors."}
    IntegrationList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Integration"}}
        nextCursor: {type: "null"}
    DeviceAWS:
      type: object
      required: [integrationId, integrationName, state, thingName, attempts, updatedAt]
      properties:
        integrationId: {type: string}
        integrationName: {type: string}
        state: {$ref: "#/components/schemas/AWSProvisioningState"}
        thingName: {type: string, description: "The device id."}
        thingArn: {type: string}
        certificateId: {type: string}
        certificateStatus: {type: string, examples: [ACTIVE, INACTIVE]}
        endpoint: {type: string, description: "The account's iot:Data-ATS endpoint, where the device connects (port 8883)."}
        credentialsIssuedAt: {type: string, format: date-time, description: "When the certificate and key were handed out; until then POST .../credentials gives them."}
        lastError: {type: string, description: "Why the last attempt failed; gone once one succeeds."}
        attempts: {type: integer, minimum: 0}
        nextAttemptAt: {type: string, format: date-time, description: "After a failure: when the job is tried again."}
        updatedAt: {type: string, format: date-time}
    DeviceAWSList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/DeviceAWS"}}
        nextCursor: {type: "null"}
    AWSCredentials:
      type: object
      required: [deviceId, integrationId, clientId, thingName, certificateId, certificateArn, certificatePem, privateKey, region, port]
      properties:
        deviceId: {type: string}
        integrationId: {type: string}
        clientId: {type: string, description: "The MQTT client id to connect with: the device id."}
        thingName: {type: string}
        thingArn: {type: string}
        certificateId: {type: string}
        certificateArn: {type: string}
        certificatePem: {type: string, description: "The device certificate, PEM."}
        privateKey: {type: string, description: "The certificate's private key, PEM. Shown once; Conduit keeps no copy."}
        publicKey: {type: string, description: "The certificate's public key, PEM."}
        rootCA: {type: string, description: "Amazon Root CA 1, PEM: the CA of the ATS endpoints. Absent when the server has no copy."}
        endpoint: {type: string, description: "The account's iot:Data-ATS endpoint."}
        region: {type: string}
        port: {type: integer, examples: [8883]}
    Drift:
      type: object
      required: [deviceId, repairs]
      properties:
        deviceId: {type: string}
        repairs: {type: array, items: {type: string}, examples: [["certificate 3f1c was deleted in AWS: a new one was made; fetch the device's new credentials"]]}
    DriftList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Drift"}}
        nextCursor: {type: "null"}
    RuleSource:
      description: "Which of the tenant's devices the rule watches: listed ids, every device with any of the labels, or all. A member of another form may be given as null."
      oneOf:
        - type: object
          title: Devices
          required: [devices]
          additionalProperties: false
          properties:
            devices: {type: array, maxItems: 10000, items: \#(S.string(FieldRules.deviceID))}
            labels: {type: "null"}
            all: {enum: [false, null]}
        - type: object
          title: Labels
          required: [labels]
          additionalProperties: false
          properties:
            labels: {type: array, minItems: 1, maxItems: \#(FieldRules.maximumLabels), items: \#(S.string(FieldRules.label))}
            devices: {type: "null"}
            all: {enum: [false, null]}
        - type: object
          title: All
          required: [all]
          additionalProperties: false
          properties:
            all: {type: boolean, const: true}
            devices: {type: "null"}
            labels: {type: "null"}
    RuleBand:
      type: object
      description: "Values above `above` and below `below` (both exclusive); leave one out for no bound on that side. `above` must be less than `below`, and no two bands of a rule may overlap."
      additionalProperties: false
      properties:
        above: {type: [number, "null"]}
        below: {type: [number, "null"]}
      anyOf:
        - {required: [above], properties: {above: {type: number}}}
        - {required: [below], properties: {below: {type: number}}}
    RuleStates:
      type: object
      description: "The states by name, each a band of the value. Bands may not overlap; the gaps between them are the hysteresis."
      minProperties: 1
      maxProperties: \#(RuleRules.maximumStates)
      propertyNames: \#(S.string(FieldRules.ruleState))
      additionalProperties: {$ref: "#/components/schemas/RuleBand"}
      examples: [{Above: {above: 350}, Below: {below: 300}}]
    RuleDebounce:
      description: "A new state holds only once the value stayed in its band this long, or for this many readings in a row."
      oneOf:
        - type: object
          title: Time
          required: [forSeconds]
          additionalProperties: false
          properties:
            forSeconds: {type: number, exclusiveMinimum: 0, maximum: \#(Int(RuleRules.maximumSeconds))}
            samples: {type: "null"}
        - type: object
          title: Readings
          required: [samples]
          additionalProperties: false
          properties:
            samples: {type: integer, minimum: 1, maximum: \#(RuleRules.maximumSamples)}
            forSeconds: {type: "null"}
    RuleTransition:
      type: object
      required: [to]
      additionalProperties: false
      description: "Into `to` (one of the rule's states), from `from` (another of them) or from any state when left out. A device's first state is where it starts, not a crossing: nothing fires."
      properties:
        to: \#(S.string(FieldRules.ruleState))
        from: \#(S.string(FieldRules.ruleState, nullable: true))
    RulePayload:
      description: "JSON, at most 128 KB and 16 levels deep. In its strings {deviceId}, {deviceName}, {value}, {state} and {previousState} are filled in; a string that is only \"{value}\" becomes the number."
      examples: [{lightStatus: "off"}]
    RuleAction:
      type: object
      required: ["on"]
      additionalProperties: false
      description: "Exactly one of publish, downlink or webhook, fired once per crossing that `on` names, never again while the state holds."
      properties:
        "on": {$ref: "#/components/schemas/RuleTransition"}
        cooldownSeconds: {type: [number, "null"], exclusiveMinimum: 0, maximum: \#(Int(RuleRules.maximumSeconds)), description: "The shortest time between two firings of this action for one device."}
        publish:
          type: [object, "null"]
          required: [integrationId, topic, payload]
          additionalProperties: false
          description: "Publish to AWS IoT through an active AWS integration of the tenant, through the same durable outbox as uplinks (after the message that fired it)."
          properties:
            integrationId: \#(S.string(FieldRules.opaqueIdentifier))
            topic: \#(S.string(FieldRules.ruleTopic, "examples: [\"lights/{deviceId}/set\"]"))
            payload: {$ref: "#/components/schemas/RulePayload"}
        downlink:
          type: [object, "null"]
          required: [payload]
          additionalProperties: false
          description: "Queue a downlink to the device that crossed, or to the device named, through its durable queue."
          properties:
            deviceId: \#(S.string(FieldRules.deviceID, nullable: true))
            payload: {$ref: "#/components/schemas/RulePayload"}
        webhook:
          type: [object, "null"]
          required: [integrationId]
          additionalProperties: false
          description: "Send the firing to a webhook integration of the tenant."
          properties:
            integrationId: \#(S.string(FieldRules.opaqueIdentifier))
      oneOf:
        - {title: Publish, required: [publish], properties: {publish: {type: object}, downlink: {type: "null"}, webhook: {type: "null"}}}
        - {title: Downlink, required: [downlink], properties: {downlink: {type: object}, publish: {type: "null"}, webhook: {type: "null"}}}
        - {title: Webhook, required: [webhook], properties: {webhook: {type: object}, publish: {type: "null"}, downlink: {type: "null"}}}
    RuleCreate:
      type: object
      required: [name, source, subtopic, value, states, actions]
      additionalProperties: false
      properties:
        name: {$ref: "#/components/schemas/DisplayName"}
        enabled: {type: [boolean, "null"], description: "True when left out."}
        source: {$ref: "#/components/schemas/RuleSource"}
        subtopic: \#(S.string(FieldRules.ruleSubtopic, "description: \"The topic filter under devices/{id}/ whose messages the rule reads, MQTT wildcards allowed; at most 200 bytes.\"", "examples: [up, \"telemetry/#\"]"))
        value: \#(S.string(FieldRules.ruleValue, "description: \"Where the number is in a JSON message. Booleans read as 1 and 0; a message that is not JSON, lacks the path or holds no number there is counted as skipped.\"", "examples: [\"$.lightValue\", \"$.a.b[0]\"]"))
        states: {$ref: "#/components/schemas/RuleStates"}
        debounce: {oneOf: [{$ref: "#/components/schemas/RuleDebounce"}, {type: "null"}]}
        actions: {type: array, minItems: 1, maxItems: \#(RuleRules.maximumActions), items: {$ref: "#/components/schemas/RuleAction"}}
    RulePatch:
      type: object
      additionalProperties: false
      properties:
        name: {$ref: "#/components/schemas/DisplayName"}
        enabled: {type: boolean}
        source: {$ref: "#/components/schemas/RuleSource"}
        subtopic: \#(S.string(FieldRules.ruleSubtopic))
        value: \#(S.string(FieldRules.ruleValue))
        states: {$ref: "#/components/schemas/RuleStates"}
        debounce: {oneOf: [{$ref: "#/components/schemas/RuleDebounce"}, {type: "null"}]}
        actions: {type: array, minItems: 1, maxItems: \#(RuleRules.maximumActions), items: {$ref: "#/components/schemas/RuleAction"}}
    Rule:
      type: object
      required: [id, name, enabled, source, subtopic, value, states, debounce, actions, metrics, createdAt, updatedAt]
      properties:
        id: {type: string}
        name: {type: string}
        enabled: {type: boolean}
        source: {type: object}
        subtopic: {type: string}
        value: {type: string}
        states: {type: object}
        debounce: {type: [object, "null"]}
        actions: {type: array, items: {type: object}}
        metrics:
          type: object
          description: "What the rule did on the node that answers, since it started: messages that reached it, that held a value in one of its bands, that held no value, actions fired and actions that failed (recorded as rule.action_failed events). /metrics has the same per node."
          required: [evaluated, matched, skipped, fired, actionFailures]
          properties:
            evaluated: {type: integer, minimum: 0}
            matched: {type: integer, minimum: 0}
            skipped: {type: integer, minimum: 0}
            fired: {type: integer, minimum: 0}
            actionFailures: {type: integer, minimum: 0}
        createdAt: {type: string, format: date-time}
        updatedAt: {type: string, format: date-time}
    RuleList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Rule"}}
        nextCursor: {type: "null"}
    RuleTest:
      type: object
      required: [message]
      additionalProperties: false
      properties:
        message: {description: "The message as the device would send it: any JSON.", examples: [{lightValue: 400}]}
        deviceId: \#(S.string(FieldRules.deviceID, nullable: true, "description: \"A device of the tenant (400 when there is none of that id), whose id and name fill the templates; {deviceId} and {deviceName} stay as they are when left out.\""))
        state: \#(S.string(FieldRules.ruleState, nullable: true, "description: \"The device's state before the message (one of the rule's states); none, as for a device's first reading, when left out.\""))
    RuleDryRun:
      type: object
      required: [value, skipped, previousState, state, crossed, actions]
      properties:
        value: {type: [number, "null"]}
        skipped: {type: [string, "null"], enum: [not_json, no_value, not_a_number, null]}
        previousState: {type: [string, "null"]}
        state: {type: [string, "null"]}
        crossed: {type: boolean}
        actions:
          type: array
          items:
            type: object
            required: [index, kind, target, payload, coolingDown]
            properties:
              index: {type: integer}
              kind: {type: string, enum: [publish, downlink, webhook]}
              target: {type: string, description: "The AWS topic, the device, or the webhook integration."}
              payload: {description: "As rendered; null for a webhook."}
              coolingDown: {type: boolean, description: "In its cooldown: it would not fire."}
    RuleState:
      type: object
      required: [deviceId, state, candidate, candidateSince, candidateSamples, value, updatedAt, lastFired]
      properties:
        deviceId: {type: string}
        state: {type: [string, "null"]}
        candidate: {type: [string, "null"], description: "A state the value is in that does not hold yet (debounce)."}
        candidateSince: {type: [string, "null"], format: date-time}
        candidateSamples: {type: [integer, "null"]}
        value: {type: [number, "null"], description: "The value of the last reading that moved the device's standing."}
        updatedAt: {type: [string, "null"], format: date-time}
        lastFired: {type: object, additionalProperties: {type: string, format: date-time}, description: "When each action, by index, last fired for the device."}
    RuleStateList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/RuleState"}}
        nextCursor: {type: [string, "null"]}
    WebhookEvents: {type: array, minItems: 1, maxItems: \#(Webhooks.maximumEventTypes), items: \#(S.enumeration(Webhooks.eventTypes)), description: "The event types it takes."}
    WebhookURL: {type: string, minLength: 1, maxLength: 2048, pattern: "^https?://[^#\\\\]+$", examples: ["https://example.com/hooks/conduit"], description: "https at a public address, or a scheme://host:port (http too) the operator allowlisted; no user info or fragment."}
    WebhookCreate:
      type: object
      required: [name, url, events]
      additionalProperties: false
      properties:
        type: {type: [string, "null"], enum: [webhook, null]}
        name: {$ref: "#/components/schemas/DisplayName"}
        url: {$ref: "#/components/schemas/WebhookURL"}
        events: {$ref: "#/components/schemas/WebhookEvents"}
    WebhookPatch:
      type: object
      additionalProperties: false
      properties:
        name: {$ref: "#/components/schemas/DisplayName"}
        url: {$ref: "#/components/schemas/WebhookURL"}
        events: {$ref: "#/components/schemas/WebhookEvents"}
        paused: {type: boolean}
    Webhook:
      type: object
      required: [id, type, name, url, events, paused, pausedReason, pending, previousSecretUntil, createdAt, updatedAt]
      properties:
        id: {type: string}
        type: {type: string, const: webhook}
        name: {type: string}
        url: {type: string}
        events: {type: array, items: {type: string}}
        paused: {type: boolean}
        pausedReason: {type: [string, "null"]}
        pending: {type: integer, minimum: 0, description: "Deliveries waiting."}
        previousSecretUntil: {type: [string, "null"], format: date-time, description: "Until when the secret before the last rotation signs beside the new one."}
        createdAt: {type: string, format: date-time}
        updatedAt: {type: string, format: date-time}
    WebhookWithSecret:
      allOf:
        - {$ref: "#/components/schemas/Webhook"}
        - type: object
          required: [secret]
          properties:
            secret: {type: string, pattern: "^whsec_[A-Za-z0-9+/=]+$", description: "Shown this once; stored sealed. Standard Webhooks' libraries take it as it is."}
    WebhookList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/Webhook"}}
        nextCursor: {type: "null"}
    WebhookDelivery:
      type: object
      required: [id, messageId, eventType, deviceId, state, attempts, nextAttemptAt, lastStatus, lastError, createdAt, finishedAt, body, tries]
      properties:
        id: {type: integer}
        messageId: {type: string, description: "The webhook-id header."}
        eventType: {type: string}
        deviceId: {type: [string, "null"]}
        state: {type: string, enum: [pending, delivered, failed]}
        attempts: {type: integer, minimum: 0}
        nextAttemptAt: {type: [string, "null"], format: date-time}
        lastStatus: {type: [integer, "null"]}
        lastError: {type: [string, "null"]}
        createdAt: {type: string, format: date-time}
        finishedAt: {type: [string, "null"], format: date-time}
        body: {description: "What is sent."}
        tries:
          type: array
          items:
            type: object
            required: [attempt, at, status, latencyMs, error]
            properties:
              attempt: {type: integer}
              at: {type: string, format: date-time}
              status: {type: [integer, "null"], description: "The HTTP status, when an answer came."}
              latencyMs: {type: integer}
              error: {type: [string, "null"]}
    WebhookDeliveryList:
      type: object
      required: [items, nextCursor]
      properties:
        items: {type: array, items: {$ref: "#/components/schemas/WebhookDelivery"}}
        nextCursor: {type: [string, "null"]}
\#(S.shadowSchemas)
"""#

    /// The operations on a device, which the `id` a device's creation answers with names. Not GET
    /// .../certificate (a new device has none: a 404), nor DELETE .../downlinks (it empties the
    /// queue, which is still there to read: not a deletion of what the link names).
    private static let deviceOperations: [(path: String, method: String)] = [
        ("/v1/devices/{id}", "get"), ("/v1/devices/{id}", "patch"), ("/v1/devices/{id}/secret", "post"), ("/v1/devices/{id}/messages", "get"),
        ("/v1/devices/{id}/downlinks", "post"), ("/v1/devices/{id}/downlinks", "get"),
        ("/v1/devices/{id}/accept", "post"), ("/v1/devices/{id}/reject", "post"), ("/v1/devices/{id}/aws", "get"),
        ("/v1/devices/{id}/shadow", "get"), ("/v1/devices/{id}/shadows", "get"), ("/v1/devices/{id}/certificate", "post"),
        ("/v1/devices/{id}/decommission", "post"), ("/v1/devices/{id}", "delete"),
    ]
    /// Not DELETE: an integration's deletion is a 202 and it reads as `deleting` until AWS is clean.
    private static let integrationOperations: [(path: String, method: String)] = [
        ("/v1/integrations/{id}", "get"), ("/v1/integrations/{id}", "patch"), ("/v1/integrations/{id}/reconcile", "post"),
    ]
    private static let ruleOperations: [(path: String, method: String)] = [
        ("/v1/rules/{id}", "get"), ("/v1/rules/{id}", "patch"), ("/v1/rules/{id}/test", "post"), ("/v1/rules/{id}/states", "get"),
        ("/v1/rules/{id}", "delete"),
    ]
    private static let webhookOperations: [(path: String, method: String)] = [
        ("/v1/webhooks/{id}", "get"), ("/v1/webhooks/{id}", "patch"), ("/v1/webhooks/{id}/deliveries", "get"), ("/v1/webhooks/{id}", "delete"),
    ]
    private static let thingOperations: [(path: String, method: String)] = [
        ("/v1/things/{id}", "get"), ("/v1/things/{id}", "patch"), ("/v1/things/{id}", "delete"),
    ]

    /// OpenAPI links from a creation's answer to `operations`, their `id` the answer's.
    private static func links(to operations: [(path: String, method: String)]) -> String {
        let links = operations.map { operation in
            let pointer = operation.path.replacingOccurrences(of: "/", with: "~1").replacingOccurrences(of: "{", with: "%7B")
                .replacingOccurrences(of: "}", with: "%7D")
            let name = (operation.method + operation.path).split(whereSeparator: { !$0.isLetter }).map { $0.prefix(1).uppercased() + $0.dropFirst() }
                .joined()
            return "\(name): {operationRef: \"#/paths/\(pointer)/\(operation.method)\", parameters: {id: \"$response.body#/id\"}}"
        }
        return "{" + links.joined(separator: ", ") + "}"
    }

    /// Para's own object fields, which its clients send and Conduit accepts and ignores (any JSON),
    /// as a quoted pattern of exactly those names.
    private static var paraFields: String {
        S.quoted("^(?:" + ThingRoutes.paraFields.sorted().joined(separator: "|") + ")$")
    }
}
