"""schemathesis hooks for schemathesis_run.py: what the document can state only in words.

An integration's endpoints must be AWS's own for its region or ones the operator allowlisted, and
its trust roots and gateway certificate must be real PEM; a device's certificate too. The document
says so in words, and schemathesis generates any string there. Before each request whose body was
generated to follow the schema, these fields are given values of the test's own that follow the
rules in words too: moto's URL and a loopback MQTT port (both on the allowlist), a CA and a leaf
certificate made for the run, and a region that exists. An integration body always names moto, so that Conduit never turns to
AWS's own endpoints. Bodies generated to break the schema are sent as generated.

A webhook's URL must reach a public address, which this network has none of: bodies that
follow the schema name the run's allowlisted loopback receiver.

A rule's states are bands that may not overlap, its actions fire on crossings into its own states,
and publish through an integration of the tenant: bodies that follow the schema get the bands of
Waylay's seed (Above 350, Below 300), actions on those states, and the run's integration while it
is active (a scenario may delete it: a publish action then becomes a downlink); a dry run names
one of those states and no device (any may have been deleted by then).

Likewise, shadow states larger than AWS keeps are not generated.

The values come from the JSON file named by CONDUIT_SCHEMATHESIS_PINS.
"""

import json
import os
import urllib.error
import urllib.request

import boto3
import schemathesis

PINS = json.load(open(os.environ["CONDUIT_SCHEMATHESIS_PINS"]))
# The regions moto serves; AWS has no other either. The document can say only what a region looks like.
REGIONS = set(boto3.session.Session().get_available_regions("iot"))


# AWS IoT keeps at most this many bytes of shadow state, `{"state": {"desired": ...}}` as sent:
# the document says it in words, which JSON Schema cannot. The server measures compact JSON in UTF-8;
# this measure (ASCII escapes, slashes counted twice) is never less.
STATE_BYTES = 8192
SHADOW_STATE = {"PATCH /v1/devices/{id}/shadow": "desired", "POST /v1/things": "deviceState", "PATCH /v1/things/{id}": "deviceState"}


@schemathesis.hook
def filter_body(context, body):
    operation = context.operation
    if operation is None or not isinstance(body, dict):
        return True
    key = SHADOW_STATE.get(f"{operation.method.upper()} {operation.path}")
    if key is None or not isinstance(body.get(key), dict):
        return True
    encoded = json.dumps({"state": {"desired": body[key]}}, separators=(",", ":"))
    return len(encoded) + encoded.count("/") <= STATE_BYTES


def body_follows_schema(case):
    meta = getattr(case, "meta", None)
    return meta is None or not meta.is_negative_at("body")


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if not isinstance(body, dict) or not body_follows_schema(case):
        return
    label = f"{case.method.upper()} {case.path}"
    if label in ("POST /v1/integrations", "PATCH /v1/integrations/{id}"):
        body["endpointUrl"] = PINS["endpointUrl"]
        if isinstance(body.get("region"), str) and body["region"] not in REGIONS:
            body["region"] = "us-east-1"
        # Ingest filters must not overlap the uplink topic, which the schema cannot say.
        if body.get("ingestTopics"):
            body["ingestTopics"] = ["waylay/{deviceId}/state"]
        for key in ("mqttEndpoint", "mqttTrustRoots", "gateway"):
            if body.get(key) is not None:
                body[key] = PINS[key]
    elif label == "POST /v1/devices/{id}/certificate":
        if body.get("certificatePem") is not None:
            body["certificatePem"] = PINS["certificatePem"]
    else:
        fix_rule_bodies(label, body)


RULE_STATES = {"Above": {"above": 350}, "Below": {"below": 300}}
# Once deleted, the run's integration stays deleted.
INTEGRATION = {"active": True}


def integration_active():
    """Whether the run's integration is still active: asked of the server itself."""
    if INTEGRATION["active"]:
        request = urllib.request.Request(f"{PINS['api']}/v1/integrations/{PINS['integrationId']}")
        request.add_header("Authorization", f"Bearer {PINS['token']}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                INTEGRATION["active"] = json.load(response).get("status") == "active"
        except urllib.error.HTTPError as error:
            if error.code == 404:
                INTEGRATION["active"] = False
    return INTEGRATION["active"]


def fix_rule(body):
    """A rule body that follows the schema, made to follow the rules in words too."""
    if isinstance(body.get("states"), dict):
        body["states"] = dict(RULE_STATES)
    for index, action in enumerate(body.get("actions") or []):
        if not isinstance(action, dict):
            continue
        action["on"] = {"to": "Above", "from": "Below"} if index % 2 else {"to": "Below"}
        if isinstance(action.get("publish"), dict):
            if integration_active():
                action["publish"]["integrationId"] = PINS["integrationId"]
            else:
                action["publish"], action["downlink"], action["webhook"] = None, {"payload": {}}, None
        # The run's webhook may have been deleted by then (DELETE /v1/webhooks/{id} is tested too).
        if isinstance(action.get("webhook"), dict):
            action["webhook"], action["downlink"] = None, {"payload": {}}


def fix_rule_bodies(label, body):
    if label in ("POST /v1/webhooks", "PATCH /v1/webhooks/{id}"):
        if body.get("url") is not None:
            body["url"] = PINS["webhookUrl"]
    elif label in ("POST /v1/rules", "PATCH /v1/rules/{id}"):
        fix_rule(body)
    elif label == "POST /v1/rules/{id}/test":
        if body.get("state") is not None:
            body["state"] = "Above" if len(body["state"]) % 2 else "Below"
        # A device named must exist, and the run's may have been deleted by then.
        body["deviceId"] = None
