#!/usr/bin/env python3
"""schemathesis, every check, against a `conduit serve` of its own and a moto_server standing in for
AWS IoT, all three in a network namespace that has nothing but loopback.

Usage: unshare --net -- python3 schemathesis_run.py CONDUIT_EXECUTABLE [--max-examples N] [--seed N] [--keep]
       [--phases P,...] [other `schemathesis run` options]

Why a namespace of its own: the document lets an integration use AWS's own endpoints (that is the
default), and schemathesis makes whatever the document allows; in here, a request Conduit makes to
anything but loopback fails at once instead of leaving the machine.

What it prepares, so that schemathesis reaches past the 404s: an accepted device provisioned in an
integration at moto (a fresh moto account, through AssumeRole), and a spare token, which is the one
DELETE /v1/tokens/{id} revokes (a `parameters` pin), never the one schemathesis runs with.
schemathesis_hooks.py gives integration and certificate bodies the endpoints the operator
allowlisted and real certificates, rules the document can state only in words.

Prints schemathesis' report and exits with its status.
"""

import argparse
import ctypes
import datetime
import fcntl
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def loopback_only():
    """Brings `lo` up and makes sure it is the only interface: the namespace is ours and empty."""
    names = [name for _, name in socket.if_nameindex()]
    if names != ["lo"]:
        sys.exit(f"refusing to run outside a network namespace of loopback only (interfaces: {names}); run me under `unshare --net`")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def die_with_parent():
    """Run in each child before it starts: the kernel kills it when this script dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def warm_up(moto):
    """moto loads a service on its first request, which takes seconds on a loaded machine: longer
    than Conduit's check of a new integration waits. One unsigned call each to IoT and STS loads them."""
    for service, path, body in (("iot", "/endpoint?endpointType=iot%3AData-ATS", None), ("sts", "/", b"Action=GetCallerIdentity&Version=2011-06-15")):
        request = urllib.request.Request(moto + path, data=body)
        request.add_header("Authorization", f"AWS4-HMAC-SHA256 Credential=AKIAWARMUP/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0")
        try:
            urllib.request.urlopen(request, timeout=60).read()
        except urllib.error.URLError:
            pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(what, condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


class API:
    def __init__(self, port, token):
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method, path, body=None, expect=None):
        request = urllib.request.Request(self.base + path, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, data, timeout=60) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        if expect is not None and status != expect:
            raise SystemExit(f"setup: {method} {path} answered {status}, not {expect}: {text}")
        return json.loads(text) if text else None


def certificates(directory):
    """A CA certificate (the data endpoint's trust root) and a gateway certificate and key it signs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def certificate(subject, key, issuer, issuer_key, ca):
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256())
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("conduit schemathesis CA", ca_key, "conduit schemathesis CA", ca_key, True)
    gateway_key = ec.generate_private_key(ec.SECP256R1())
    gateway = certificate("conduit schemathesis gateway", gateway_key, "conduit schemathesis CA", ca_key, False)
    pem = lambda cert: cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = gateway_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem(ca), pem(gateway), key_pem


def toml_string(value):
    return json.dumps(value)  # a JSON string is a TOML basic string


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("conduit")
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", default="1")
    parser.add_argument("--phases", default=None, help="schemathesis' --phases (all by default)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server log, database, reports)")
    # Anything else is for `schemathesis run` (--include-path-regex ..., to look at a few operations).
    arguments, extra = parser.parse_known_args()

    loopback_only()
    # A SIGTERM (the test's time limit) ends the run through the `finally` below, which stops the children.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    conduit = os.path.abspath(arguments.conduit)
    work = tempfile.mkdtemp(prefix="conduit-schemathesis-")
    children = []

    def start(command, log, environment=None):
        process = subprocess.Popen(
            command, stdout=open(log, "w"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment, cwd=work,
            preexec_fn=die_with_parent,
        )
        children.append(process)
        return process

    try:
        moto_port = free_port()
        moto = f"http://127.0.0.1:{moto_port}"
        start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)], os.path.join(work, "moto.log"))
        wait_for("moto_server", lambda: urllib.request.urlopen(f"{moto}/moto-api/", timeout=2).status == 200)
        warm_up(moto)

        # Nothing listens here: the gateway's connections to it are refused, at once.
        mqtt_endpoint = f"127.0.0.1:{free_port()}"
        environment = {key: value for key, value in os.environ.items() if not key.startswith("CONDUIT_")}
        webhook_port = free_port()
        environment.update(
            {
                "AWS_ACCESS_KEY_ID": "AKIACONDUITSCHEMATHESIS",
                "AWS_SECRET_ACCESS_KEY": "moto",
                "AWS_ENDPOINT_URL_STS": moto,
                "AWS_EC2_METADATA_DISABLED": "true",
                "CONDUIT_AWS_ENDPOINT_ALLOWLIST": f"{moto},mqtts://{mqtt_endpoint}",
                # Webhooks go to a loopback port nothing answers on: their deliveries wait and retry.
                "CONDUIT_WEBHOOKS_ALLOWLIST": f"http://127.0.0.1:{webhook_port}",
            }
        )
        server_log = os.path.join(work, "conduit.log")
        start(
            [conduit, "serve", "--http-port", "0", "--mqtt-port", "0", "--data-dir", os.path.join(work, "data")],
            server_log,
            environment,
        )
        marker, port, token = "conduit.http=http://127.0.0.1:", None, None

        def serving():
            nonlocal port, token
            text = open(server_log).read()
            if marker not in text or "conduit.token=" not in text:
                return False
            port = int(text.split(marker, 1)[1].split()[0].rstrip(":"))
            token = text.split("conduit.token=", 1)[1].split()[0]
            return True

        wait_for("conduit serve", serving)
        api = API(port, token)

        # A device provisioned at moto, for the shadow, credentials and AWS operations.
        api.call("POST", "/v1/devices", {"id": "meter-1", "name": "Meter 1", "labels": ["fleet"]}, expect=201)
        api.call("POST", "/v1/devices/meter-1/accept", expect=200)
        api.call("POST", "/v1/devices", {"id": "meter-2", "name": "Meter 2"}, expect=201)
        account = "%012d" % random.randrange(10**11, 10**12)
        integration = api.call(
            "POST",
            "/v1/integrations",
            {
                "name": "moto",
                "region": "us-east-1",
                "endpointUrl": moto,
                "credentials": {"roleArn": f"arn:aws:iam::{account}:role/conduit", "externalId": "conduit-schemathesis"},
                "bind": {"all": True},
                "mqttEndpoint": mqtt_endpoint,
            },
            expect=201,
        )
        wait_for(
            "meter-1 provisioned at moto",
            lambda: api.call("GET", "/v1/devices/meter-1/aws")["items"][0]["state"] == "provisioned",
        )
        spare = api.call("POST", "/v1/tokens", {"role": "reader", "name": "spare"}, expect=201)["id"]
        webhook_url = f"http://127.0.0.1:{webhook_port}/hooks/conduit"
        webhook = api.call("POST", "/v1/webhooks", {"name": "ops", "url": webhook_url, "events": ["rule.fired"]}, expect=201)
        rule = api.call(
            "POST",
            "/v1/rules",
            {
                "name": "light",
                "source": {"all": True},
                "subtopic": "up",
                "value": "$.lightValue",
                "states": {"Above": {"above": 350}, "Below": {"below": 300}},
                "actions": [
                    {"on": {"to": "Above"}, "publish": {"integrationId": integration["id"], "topic": "lights/{deviceId}/set", "payload": {"lightStatus": "off"}}},
                    {"on": {"to": "Below"}, "downlink": {"payload": {"lightStatus": "on"}}},
                ],
            },
            expect=201,
        )

        ca, gateway, gateway_key = certificates(work)
        config = os.path.join(work, "schemathesis.toml")
        with open(config, "w") as file:
            file.write(
                f"""
[[operations]]
include-name = "DELETE /v1/tokens/{{id}}"
parameters = {{ "path.id" = {toml_string(spare)} }}
# A scenario would follow a token's creation to this revocation of another token: no scenario for it.
phases.stateful.enabled = false

# Stateful scenarios follow the document's links, no links guessed (from field names or Location
# headers): those would follow a device's creation to its certificate, which a new device has not
# (a 404), or an integration's deletion, which takes a while (a 202, and it reads as deleting), to
# a read that still finds it.
[phases.stateful.inference]
algorithms = []

# The shadow and certificate operations take the provisioned device, and its integration, half the
# time: a device made by a scenario has no thing in AWS (409) and no certificate, a generated id
# names no device (404), and once schemathesis made integrations that bind all devices, the
# device is in several (409 without `integration`).
[dictionaries.provisioned]
values = ["meter-1"]

[dictionaries.integration]
values = [{toml_string(integration["id"])}]

# The rule operations take the run's rule half the time, as the shadow ones take its device.
[dictionaries.rule]
values = [{toml_string(rule["id"])}]

[[operations]]
include-path-regex = '^/v1/rules/\\{{id\\}}(/test|/states)?$'
parameters = {{ "path.id" = {{ dictionary = "rule", probability = 0.5 }} }}

[dictionaries.webhook]
values = [{toml_string(webhook["id"])}]

[[operations]]
include-path-regex = '^/v1/webhooks/\\{{id\\}}/'
parameters = {{ "path.id" = {{ dictionary = "webhook", probability = 0.5 }} }}

[[operations]]
include-path-regex = '^/v1/devices/\\{{id\\}}/(shadow|shadows|certificate)$'
parameters = {{ "path.id" = {{ dictionary = "provisioned", probability = 0.5 }}, "query.integration" = {{ dictionary = "integration", probability = 0.5 }} }}

# (The filters of one [[operations]] are alternatives: a name is the one way to name one operation.)
# The coverage phase walks every branch of a schema; the shadow state's (nested to AWS's depth
# limit) makes it over a thousand requests for each operation that takes one, each a call to AWS.
# Fuzzing and stateful testing cover these three, a bounded number of examples each.
[[operations]]
include-name = "PATCH /v1/devices/{{id}}/shadow"
phases.coverage.enabled = false

[[operations]]
include-name = "POST /v1/things"
phases.coverage.enabled = false

[[operations]]
include-name = "PATCH /v1/things/{{id}}"
phases.coverage.enabled = false

"""
            )
        pins = os.path.join(work, "pins.json")
        with open(pins, "w") as file:
            json.dump(
                {
                    "endpointUrl": moto,
                    "mqttEndpoint": mqtt_endpoint,
                    "mqttTrustRoots": ca,
                    "gateway": {"certificatePem": gateway, "privateKey": gateway_key},
                    "certificatePem": gateway,
                    "integrationId": integration["id"],
                    "webhookUrl": webhook_url,
                    "api": f"http://127.0.0.1:{port}",
                    "token": token,
                },
                file,
            )
        hooks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schemathesis_hooks.py")
        print(f"conduit at 127.0.0.1:{port}, moto at {moto}, integration {integration['id']}, work directory {work}", flush=True)

        seed = arguments.seed if arguments.seed is not None else random.randrange(2**31)
        command = [
            sys.executable, "-c", "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())",
            "--config-file", config,
            "run", f"http://127.0.0.1:{port}/openapi.yaml",
            "--checks", "all",
            "--header", f"Authorization: Bearer {token}",
            "--max-examples", str(arguments.max_examples),
            "--seed", str(seed),
            "--workers", arguments.workers,
            "--request-timeout", "90",
            "--no-color",
            *(["--phases", arguments.phases] if arguments.phases else []),
            *extra,
            "--report", "junit,ndjson", "--report-dir", os.path.join(work, "reports"),
        ]
        started = time.monotonic()
        st_environment = dict(os.environ, SCHEMATHESIS_HOOKS=hooks, CONDUIT_SCHEMATHESIS_PINS=pins)
        status = subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, env=st_environment, preexec_fn=die_with_parent).returncode
        print(f"schemathesis exited {status} after {time.monotonic() - started:.0f} s (seed {seed})", flush=True)
        if status != 0:
            print("--- conduit serve's log, last lines ---")
            print("".join(open(server_log).readlines()[-40:]))
        return status
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                child.kill()
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
