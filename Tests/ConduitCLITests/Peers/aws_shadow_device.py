"""A device written for AWS IoT, unchanged: AWS's own device SDK (awsiotsdk, the AWS IoT Device
SDK v2 for Python) and its shadow client, connected over TLS with the device's certificate to
Conduit's broker instead of AWS IoT's.

It plays the shadow's round trips and prints what it saw as one JSON object for the test to
check; the test then reads the shadow in moto. Usage:

    aws_shadow_device.py CONFIG_JSON

CONFIG_JSON: {tls, ca, cert, key, thing, http, token, moto, roleArn, externalId, mosquitto}
"""
import json
import subprocess
import sys
import threading
import urllib.request

import boto3
from awscrt import mqtt
from awsiot import iotshadow, mqtt_connection_builder

config = json.loads(sys.argv[1])
thing = config["thing"]
WAIT = 120  # a bound for a loaded machine, not a timing
seen = {}
lock = threading.Condition()


def note(key, value):
    with lock:
        seen.setdefault(key, []).append(value)
        lock.notify_all()


def wait_for(key, predicate=lambda value: True, what=None):
    """The first value noted under key that passes predicate; fails after WAIT seconds."""
    with lock:
        found = lock.wait_for(lambda: any(predicate(v) for v in seen.get(key, [])), timeout=WAIT)
        if not found:
            raise SystemExit(f"no {what or key} within {WAIT} s; seen: {json.dumps(seen, default=str)}")
        return next(v for v in seen[key] if predicate(v))


def api(method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{config['http']}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {config['token']}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def connect():
    connection = mqtt_connection_builder.mtls_from_path(
        endpoint="127.0.0.1", port=config["tls"], cert_filepath=config["cert"], pri_key_filepath=config["key"],
        ca_filepath=config["ca"], client_id=thing, clean_session=True, keep_alive_secs=60,
    )
    connection.connect().result(WAIT)
    return connection, iotshadow.IotShadowClient(connection)


def subscribe(shadow, name=None):
    """The SDK's own subscriptions, as its shadow sample makes them."""
    qos = mqtt.QoS.AT_LEAST_ONCE
    prefix = f"{name}:" if name else ""
    futures = []
    if name is None:
        futures += [
            shadow.subscribe_to_update_shadow_accepted(iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos,
                                                       lambda r: note("update/accepted", {"token": r.client_token, "version": r.version, "reported": r.state.reported if r.state else None}))[0],
            shadow.subscribe_to_update_shadow_rejected(iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), qos,
                                                       lambda r: note("update/rejected", {"token": r.client_token, "code": r.code, "message": r.message}))[0],
            shadow.subscribe_to_shadow_delta_updated_events(iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), qos,
                                                            lambda e: note("delta", {"state": e.state, "version": e.version}))[0],
            shadow.subscribe_to_shadow_updated_events(iotshadow.ShadowUpdatedSubscriptionRequest(thing_name=thing), qos,
                                                      lambda e: note("documents", {"version": e.current.version, "desired": e.current.state.desired if e.current.state else None}))[0],
            shadow.subscribe_to_get_shadow_accepted(iotshadow.GetShadowSubscriptionRequest(thing_name=thing), qos,
                                                    lambda r: note("get/accepted", {"token": r.client_token, "version": r.version, "desired": r.state.desired, "reported": r.state.reported, "delta": r.state.delta}))[0],
            shadow.subscribe_to_get_shadow_rejected(iotshadow.GetShadowSubscriptionRequest(thing_name=thing), qos,
                                                    lambda r: note("get/rejected", {"token": r.client_token, "code": r.code}))[0],
        ]
    else:
        futures += [
            shadow.subscribe_to_update_named_shadow_accepted(iotshadow.UpdateNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name), qos,
                                                             lambda r: note(prefix + "update/accepted", {"token": r.client_token, "version": r.version}))[0],
            shadow.subscribe_to_update_named_shadow_rejected(iotshadow.UpdateNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name), qos,
                                                             lambda r: note(prefix + "update/rejected", {"token": r.client_token, "code": r.code, "message": r.message}))[0],
            shadow.subscribe_to_named_shadow_delta_updated_events(iotshadow.NamedShadowDeltaUpdatedSubscriptionRequest(thing_name=thing, shadow_name=name), qos,
                                                                  lambda e: note(prefix + "delta", {"state": e.state, "version": e.version}))[0],
            shadow.subscribe_to_get_named_shadow_accepted(iotshadow.GetNamedShadowSubscriptionRequest(thing_name=thing, shadow_name=name), qos,
                                                          lambda r: note(prefix + "get/accepted", {"token": r.client_token, "version": r.version, "desired": r.state.desired, "reported": r.state.reported}))[0],
        ]
    for future in futures:
        future.result(WAIT)


def update(shadow, token, reported=None, desired=None, version=None, name=None):
    state = iotshadow.ShadowState(reported=reported, desired=desired)
    if name is None:
        request = iotshadow.UpdateShadowRequest(thing_name=thing, state=state, client_token=token, version=version)
        shadow.publish_update_shadow(request, mqtt.QoS.AT_LEAST_ONCE).result(WAIT)
    else:
        request = iotshadow.UpdateNamedShadowRequest(thing_name=thing, shadow_name=name, state=state, client_token=token, version=version)
        shadow.publish_update_named_shadow(request, mqtt.QoS.AT_LEAST_ONCE).result(WAIT)


results = {}
connection, shadow = connect()
subscribe(shadow)
subscribe(shadow, "config")

# 1. Reported state: update/accepted, with the token echoed.
update(shadow, "report-1", reported={"power": "off", "temp": 21})
results["reported"] = wait_for("update/accepted", lambda v: v["token"] == "report-1")

# 2. Desired changed through Conduit's API reaches the SDK as a delta.
api("PATCH", f"/v1/devices/{thing}/shadow", {"desired": {"power": "on"}})
results["apiDelta"] = wait_for("delta", lambda v: v["state"].get("power") == "on", "delta from the API")
results["apiDocuments"] = wait_for("documents", lambda v: (v["desired"] or {}).get("power") == "on", "documents from the API")

# 3. Desired changed in AWS directly (another app): the shadow changes in moto, and the data
#    endpoint (mosquitto standing in) publishes update/documents as AWS does.
credentials = boto3.client("sts", endpoint_url=config["moto"], region_name="us-east-1", aws_access_key_id="AKIAAWSSDKTEST000001",
                           aws_secret_access_key="moto").assume_role(RoleArn=config["roleArn"], RoleSessionName="another-app",
                                                                     ExternalId=config["externalId"])["Credentials"]
data = boto3.client("iot-data", endpoint_url=config["moto"], region_name="us-east-1", aws_access_key_id=credentials["AccessKeyId"],
                    aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"])
before = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
data.update_thing_shadow(thingName=thing, payload=json.dumps({"state": {"desired": {"power": "eco"}}}).encode())
after = json.loads(data.get_thing_shadow(thingName=thing)["payload"].read())
documents = {
    "previous": {"state": {k: v for k, v in before["state"].items() if k != "delta"}, "metadata": before["metadata"], "version": before["version"]},
    "current": {"state": {k: v for k, v in after["state"].items() if k != "delta"}, "metadata": after["metadata"], "version": after["version"]},
    "timestamp": after["timestamp"],
}
subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(config["mosquitto"]), "-i", "aws-shadow-service", "-q", "1",
                "-t", f"$aws/things/{thing}/shadow/update/documents", "-m", json.dumps(documents)], check=True, timeout=60)
results["awsDelta"] = wait_for("delta", lambda v: v["state"].get("power") == "eco", "delta from AWS")

# 4. get, and an update at a stale version.
shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="get-1"), mqtt.QoS.AT_LEAST_ONCE).result(WAIT)
results["get"] = wait_for("get/accepted", lambda v: v["token"] == "get-1")
update(shadow, "stale-1", reported={"power": "eco"}, version=1)
results["stale"] = wait_for("update/rejected", lambda v: v["token"] == "stale-1")

# 5. A named shadow, the same way.
update(shadow, "named-1", reported={"interval": 60}, name="config")
results["namedReported"] = wait_for("config:update/accepted", lambda v: v["token"] == "named-1")
api("PATCH", f"/v1/devices/{thing}/shadow?name=config", {"desired": {"interval": 30}})
results["namedDelta"] = wait_for("config:delta", lambda v: v["state"].get("interval") == 30, "the named shadow's delta")
shadow.publish_get_named_shadow(iotshadow.GetNamedShadowRequest(thing_name=thing, shadow_name="config", client_token="get-2"), mqtt.QoS.AT_LEAST_ONCE).result(WAIT)
results["namedGet"] = wait_for("config:get/accepted", lambda v: v["token"] == "get-2")
update(shadow, "stale-2", reported={"interval": 30}, version=1, name="config")
results["namedStale"] = wait_for("config:update/rejected", lambda v: v["token"] == "stale-2")

# 6. Away while desired changes: on subscribing again, the current delta.
connection.disconnect().result(WAIT)
api("PATCH", f"/v1/devices/{thing}/shadow", {"desired": {"temp": 19}})
with lock:
    seen.clear()
connection, shadow = connect()
subscribe(shadow)
results["resubscribedDelta"] = wait_for("delta", lambda v: v["state"].get("temp") == 19, "the delta on subscribing again")
connection.disconnect().result(WAIT)
print(json.dumps(results))
