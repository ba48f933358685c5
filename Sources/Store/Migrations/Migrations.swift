extension Migration {
    /// Every step of Conduit's schema, oldest first.
    public static let all: [Migration] = [
        Migration(version: 1, name: "tenants, tokens, devices, events") { dialect in
            [
                """
                CREATE TABLE tenants (
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL UNIQUE,
                    created_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE api_tokens (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    role TEXT NOT NULL,
                    token_hash TEXT NOT NULL UNIQUE,
                    hint TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    last_used_at BIGINT
                )
                """,
                "CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at)",
                """
                CREATE TABLE devices (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    status TEXT NOT NULL,
                    labels TEXT NOT NULL,
                    attributes TEXT NOT NULL,
                    secret_hash TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    status_changed_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX devices_tenant_id ON devices (tenant_id, id)",
                "CREATE INDEX devices_tenant_status_id ON devices (tenant_id, status, id)",
                """
                CREATE TABLE device_labels (
                    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
                    tenant_id TEXT NOT NULL,
                    label TEXT NOT NULL,
                    PRIMARY KEY (device_id, label)
                )
                """,
                "CREATE INDEX device_labels_tenant_label ON device_labels (tenant_id, label, device_id)",
                """
                CREATE TABLE events (
                    seq \(dialect.identityPrimaryKey),
                    tenant_id TEXT NOT NULL,
                    type TEXT NOT NULL,
                    device_id TEXT,
                    actor TEXT NOT NULL,
                    data TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX events_tenant_seq ON events (tenant_id, seq)",
                "CREATE INDEX events_tenant_device_seq ON events (tenant_id, device_id, seq)",
                "CREATE INDEX events_tenant_type_seq ON events (tenant_id, type, seq)",
            ]
        },
        Migration(version: 2, name: "device message history") { dialect in
            [
                """
                CREATE TABLE device_messages (
                    seq \(dialect.identityPrimaryKey),
                    tenant_id TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    topic TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    qos INTEGER NOT NULL,
                    retain INTEGER NOT NULL,
                    received_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX device_messages_device_seq ON device_messages (tenant_id, device_id, seq)",
            ]
        },
        Migration(version: 3, name: "AWS IoT Core integrations and per-device provisioning jobs") { dialect in
            [
                """
                CREATE TABLE integrations (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    type TEXT NOT NULL,
                    settings TEXT NOT NULL,
                    credentials TEXT NOT NULL,
                    active INTEGER NOT NULL,
                    status TEXT NOT NULL,
                    data_endpoint TEXT,
                    created_groups TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (tenant_id, name)
                )
                """,
                """
                CREATE TABLE aws_things (
                    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
                    device_id TEXT NOT NULL,
                    tenant_id TEXT NOT NULL,
                    wanted TEXT NOT NULL,
                    bound INTEGER NOT NULL,
                    state TEXT NOT NULL,
                    progress TEXT NOT NULL,
                    private_key TEXT,
                    needs_work INTEGER NOT NULL,
                    last_error TEXT,
                    attempts INTEGER NOT NULL,
                    next_attempt_at BIGINT NOT NULL,
                    lease_owner TEXT,
                    lease_until BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (integration_id, device_id)
                )
                """,
                "CREATE INDEX aws_things_due ON aws_things (needs_work, next_attempt_at)",
                "CREATE INDEX aws_things_device ON aws_things (tenant_id, device_id)",
                "CREATE INDEX aws_things_integration_state ON aws_things (integration_id, state)",
            ]
        },
        Migration(version: 4, name: "uplink outbox") { dialect in
            [
                """
                CREATE TABLE outbox (
                    seq \(dialect.identityPrimaryKey),
                    tenant_id TEXT NOT NULL,
                    integration_id TEXT NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
                    device_id TEXT NOT NULL,
                    message_seq BIGINT NOT NULL,
                    topic TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    qos INTEGER NOT NULL,
                    received_at BIGINT NOT NULL,
                    attempts INTEGER NOT NULL
                )
                """,
                "CREATE INDEX outbox_device_seq ON outbox (integration_id, device_id, seq)",
            ]
        },
        Migration(version: 5, name: "downlink queue") { dialect in
            [
                """
                CREATE TABLE downlinks (
                    seq \(dialect.identityPrimaryKey),
                    tenant_id TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    payload TEXT NOT NULL,
                    confirmed INTEGER NOT NULL,
                    port INTEGER,
                    source TEXT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX downlinks_device_seq ON downlinks (device_id, seq)",
            ]
        },
        Migration(version: 6, name: "downlink gateway leases") { _ in
            [
                """
                CREATE TABLE gateway_leases (
                    integration_id TEXT PRIMARY KEY REFERENCES integrations(id) ON DELETE CASCADE,
                    owner TEXT NOT NULL,
                    lease_until BIGINT NOT NULL
                )
                """
            ]
        },
        Migration(version: 7, name: "console users, sessions and setup links") { _ in
            [
                """
                CREATE TABLE users (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    email TEXT NOT NULL UNIQUE,
                    password_hash TEXT NOT NULL,
                    role TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    last_sign_in_at BIGINT
                )
                """,
                "CREATE INDEX users_tenant ON users (tenant_id, email)",
                """
                CREATE TABLE console_sessions (
                    id_hash TEXT PRIMARY KEY,
                    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
                    created_at BIGINT NOT NULL,
                    last_seen_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX console_sessions_user ON console_sessions (user_id)",
                """
                CREATE TABLE console_setup_links (
                    token_hash TEXT PRIMARY KEY,
                    created_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL
                )
                """,
            ]
        },
        Migration(version: 8, name: "persistent MQTT sessions") { _ in
            [
                """
                CREATE TABLE mqtt_sessions (
                    client_id TEXT PRIMARY KEY,
                    record TEXT NOT NULL,
                    updated_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE mqtt_session_messages (
                    client_id TEXT NOT NULL,
                    seq BIGINT NOT NULL,
                    record TEXT NOT NULL,
                    PRIMARY KEY (client_id, seq)
                )
                """,
            ]
        },
        Migration(version: 9, name: "a generation of what ingest routes by, bumped by every change to it") { dialect in
            // Ingest answers "which device is this, may it publish, which integrations take its
            // messages, under which AWS topic" from memory. Triggers bump this one number on any change to those rows,
            // by this process, an admin command beside it, or another node, so that a batch
            // reads the number (one query) and knows whether its memory is still right.
            var statements = [
                "CREATE TABLE routing_generation (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)",
                "INSERT INTO routing_generation (id, generation) VALUES (1, 0)",
            ]
            let bump = "UPDATE routing_generation SET generation = generation + 1 WHERE id = 1"
            switch dialect {
            case .sqlite:
                // SQLite has row triggers only; a cascade fires them too.
                let triggers: [(name: String, event: String, when: String?)] = [
                    ("devices_routing_insert", "INSERT ON devices", nil),
                    ("devices_routing_delete", "DELETE ON devices", nil),
                    ("devices_routing_status", "UPDATE OF status, name ON devices", "OLD.status IS NOT NEW.status OR OLD.name IS NOT NEW.name"),
                    ("aws_things_routing_insert", "INSERT ON aws_things", nil),
                    ("aws_things_routing_delete", "DELETE ON aws_things", nil),
                    ("aws_things_routing_wanted", "UPDATE OF wanted ON aws_things", "OLD.wanted IS NOT NEW.wanted"),
                    ("integrations_routing_delete", "DELETE ON integrations", nil),
                    (
                        "integrations_routing_state", "UPDATE OF active, status, settings ON integrations",
                        "OLD.active IS NOT NEW.active OR OLD.status IS NOT NEW.status OR OLD.settings IS NOT NEW.settings"
                    ),
                ]
                for trigger in triggers {
                    let when = trigger.when.map { " WHEN \($0)" } ?? ""
                    statements.append("CREATE TRIGGER \(trigger.name) AFTER \(trigger.event) FOR EACH ROW\(when) BEGIN \(bump); END")
                }
            case .postgres:
                // One bump per statement, however many rows a cascade touches.
                statements.append(
                    "CREATE FUNCTION conduit_routing_changed() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \(bump); RETURN NULL; END $$"
                )
                let triggers = [
                    ("devices_routing", "INSERT OR DELETE OR UPDATE OF status, name ON devices"),
                    ("aws_things_routing", "INSERT OR DELETE OR UPDATE OF wanted ON aws_things"),
                    ("integrations_routing", "DELETE OR UPDATE OF active, status, settings ON integrations"),
                ]
                for (name, event) in triggers {
                    statements.append("CREATE TRIGGER \(name) AFTER \(event) FOR EACH STATEMENT EXECUTE FUNCTION conduit_routing_changed()")
                }
            }
            return statements
        },
        Migration(version: 10, name: "a device's enrolled TLS certificate") { _ in
            ["ALTER TABLE devices ADD COLUMN certificate TEXT"]
        },
        Migration(version: 11, name: "rules, each device's state in them, and outbox rows a rule publishes") { dialect in
            var statements = [
                """
                CREATE TABLE rules (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    definition TEXT NOT NULL,
                    enabled INTEGER NOT NULL,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (tenant_id, name)
                )
                """,
                """
                CREATE TABLE rule_states (
                    rule_id TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    state TEXT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    PRIMARY KEY (rule_id, device_id)
                )
                """,
                // No key to rules: ingest writes states in its own transaction, and one that a rule's
                // deletion committed beside would fail the whole batch on PostgreSQL (a rule's
                // deletion removes its states itself).
                // A rule's publish: to this AWS topic, its payload as it is (no uplink template, no envelope).
                "ALTER TABLE outbox ADD COLUMN aws_topic TEXT",
            ]
            // Ingest evaluates rules from memory, with the routes: a change to a rule, or to a
            // device's labels (which rules may watch by), bumps the routing generation.
            let bump = "UPDATE routing_generation SET generation = generation + 1 WHERE id = 1"
            switch dialect {
            case .sqlite:
                let triggers: [(name: String, event: String, when: String?)] = [
                    ("rules_routing_insert", "INSERT ON rules", nil),
                    ("rules_routing_delete", "DELETE ON rules", nil),
                    (
                        "rules_routing_update", "UPDATE OF name, definition, enabled ON rules",
                        "OLD.name IS NOT NEW.name OR OLD.definition IS NOT NEW.definition OR OLD.enabled IS NOT NEW.enabled"
                    ),
                    ("devices_routing_labels", "UPDATE OF labels ON devices", "OLD.labels IS NOT NEW.labels"),
                ]
                for trigger in triggers {
                    let when = trigger.when.map { " WHEN \($0)" } ?? ""
                    statements.append("CREATE TRIGGER \(trigger.name) AFTER \(trigger.event) FOR EACH ROW\(when) BEGIN \(bump); END")
                }
            case .postgres:
                for (name, event) in [
                    ("rules_routing", "INSERT OR DELETE OR UPDATE OF name, definition, enabled ON rules"), ("devices_routing_labels", "UPDATE OF labels ON devices"),
                ] {
                    statements.append("CREATE TRIGGER \(name) AFTER \(event) FOR EACH STATEMENT EXECUTE FUNCTION conduit_routing_changed()")
                }
            }
            return statements
        },
        Migration(version: 12, name: "webhooks, the event types each takes, and their durable deliveries and tries") { dialect in
            [
                """
                CREATE TABLE webhooks (
                    id TEXT PRIMARY KEY,
                    tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
                    name TEXT NOT NULL,
                    url TEXT NOT NULL,
                    secret TEXT NOT NULL,
                    previous_secret TEXT,
                    previous_secret_until BIGINT,
                    events TEXT NOT NULL,
                    paused_reason TEXT,
                    created_at BIGINT NOT NULL,
                    updated_at BIGINT NOT NULL,
                    UNIQUE (tenant_id, name)
                )
                """,
                // What each webhook takes, by event type: an event's append finds its webhooks here
                // in the statement that queues their deliveries, in the event's own transaction.
                """
                CREATE TABLE webhook_subscriptions (
                    tenant_id TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                    PRIMARY KEY (tenant_id, event_type, webhook_id)
                )
                """,
                """
                CREATE TABLE webhook_deliveries (
                    seq \(dialect.identityPrimaryKey),
                    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
                    tenant_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    event_type TEXT NOT NULL,
                    body TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    state TEXT NOT NULL,
                    attempts INTEGER NOT NULL,
                    next_attempt_at BIGINT NOT NULL,
                    last_status INTEGER,
                    last_error TEXT,
                    finished_at BIGINT
                )
                """,
                // A device's deliveries to a webhook go in order: the queue's head is its oldest pending one.
                "CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (webhook_id, device_id, state, seq)",
                "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at)",
                "CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, seq)",
                "CREATE INDEX webhook_deliveries_message ON webhook_deliveries (webhook_id, message_id)",
                """
                CREATE TABLE webhook_attempts (
                    delivery_seq BIGINT NOT NULL REFERENCES webhook_deliveries(seq) ON DELETE CASCADE,
                    attempt INTEGER NOT NULL,
                    at BIGINT NOT NULL,
                    status INTEGER,
                    latency_ms INTEGER NOT NULL,
                    error TEXT,
                    PRIMARY KEY (delivery_seq, attempt)
                )
                """,
            ]
        },
        Migration(version: 13, name: "where a device's message came from (the device, or AWS IoT)") { _ in
            ["ALTER TABLE device_messages ADD COLUMN source TEXT"]
        },
        Migration(version: 14, name: "webhooks that take uplinks move the routing generation") { dialect in
            // Ingest knows from memory which tenants' webhooks take every uplink: a change to who
            // takes them bumps the generation, as a change to a rule does.
            let bump = "UPDATE routing_generation SET generation = generation + 1 WHERE id = 1"
            switch dialect {
            case .sqlite:
                return [
                    "CREATE TRIGGER webhook_uplinks_insert AFTER INSERT ON webhook_subscriptions FOR EACH ROW WHEN NEW.event_type = 'uplink' BEGIN \(bump); END",
                    "CREATE TRIGGER webhook_uplinks_delete AFTER DELETE ON webhook_subscriptions FOR EACH ROW WHEN OLD.event_type = 'uplink' BEGIN \(bump); END",
                ]
            case .postgres:
                return [
                    "CREATE TRIGGER webhook_uplinks AFTER INSERT OR DELETE ON webhook_subscriptions FOR EACH STATEMENT EXECUTE FUNCTION conduit_routing_changed()"
                ]
            }
        },
        Migration(version: 15, name: "any change to who takes which events moves the routing generation") { dialect in
            // Ingest knows from memory whether anyone takes a rule's events, as it knows who takes
            // uplinks: the events rules append then build no webhook body for nobody. (PostgreSQL's
            // trigger of version 14 fires for every change already.)
            let bump = "UPDATE routing_generation SET generation = generation + 1 WHERE id = 1"
            switch dialect {
            case .sqlite:
                return [
                    "DROP TRIGGER webhook_uplinks_insert", "DROP TRIGGER webhook_uplinks_delete",
                    "CREATE TRIGGER webhook_subscriptions_insert AFTER INSERT ON webhook_subscriptions FOR EACH ROW BEGIN \(bump); END",
                    "CREATE TRIGGER webhook_subscriptions_delete AFTER DELETE ON webhook_subscriptions FOR EACH ROW BEGIN \(bump); END",
                ]
            case .postgres:
                return []
            }
        },
        Migration(version: 16, name: "the nodes on one database, and which of them forwards each shard of the uplink outbox") { _ in
            [
                """
                CREATE TABLE cluster_nodes (
                    id TEXT PRIMARY KEY,
                    started_at BIGINT NOT NULL,
                    heartbeat_at BIGINT NOT NULL
                )
                """,
                """
                CREATE TABLE uplink_shard_leases (
                    shard INTEGER PRIMARY KEY,
                    owner TEXT NOT NULL,
                    lease_until BIGINT NOT NULL
                )
                """,
            ]
        },
        Migration(version: 17, name: "which node holds each device's connection, and what nodes must tell each other of devices") { dialect in
            [
                """
                CREATE TABLE device_sessions (
                    device_id TEXT PRIMARY KEY,
                    node_id TEXT NOT NULL,
                    epoch BIGINT NOT NULL,
                    connected_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX device_sessions_node ON device_sessions (node_id)",
                """
                CREATE TABLE node_mail (
                    seq \(dialect.identityPrimaryKey),
                    node_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    device_id TEXT NOT NULL,
                    epoch BIGINT NOT NULL,
                    created_at BIGINT NOT NULL
                )
                """,
                "CREATE INDEX node_mail_node ON node_mail (node_id, seq)",
            ]
        },
        Migration(version: 18, name: "what a node's mail carries for a device: the shadow messages to send it") { _ in
            ["ALTER TABLE node_mail ADD COLUMN body TEXT"]
        },
    ]
}
