#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into Corpus/<target>/: a few valid inputs each,
byte for byte as a client, a broker or a route would see them. Run it after changing a seed;
scripts/fuzz copies the corpus before a run, so runs never grow it."""
import json
import pathlib
import shutil
import struct

corpus = pathlib.Path(__file__).resolve().parent / "Corpus"


# --- MQTT (3.1.1 and 5.0) ---------------------------------------------------------------
def vbi(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def b(data):
    return struct.pack(">H", len(data)) + data


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def props(*items):
    body = b"".join(items)
    return vbi(len(body)) + body


def packet(kind, flags, body=b""):
    return bytes([kind << 4 | flags]) + vbi(len(body)) + body


def connect(level, client, flags, keepalive=60, properties=None, will=None, user=None, password=None):
    body = s("MQIsdp" if level == 3 else "MQTT") + bytes([level, flags]) + u16(keepalive)
    if properties is not None:
        body += properties
    body += s(client)
    if will:
        body += will
    if user is not None:
        body += s(user)
    if password is not None:
        body += b(password)
    return packet(1, 0, body)


v3 = {
    "session.bin": connect(4, "sensor-1", 0xEE, will=s("devices/sensor-1/status") + b(b"offline"), user="sensor-1", password=b"s3cret")
    + packet(3, 0, s("devices/sensor-1/up") + b'{"t":21.5}')
    + packet(3, 0x03, s("devices/sensor-1/state") + u16(1) + b'{"on":true}')
    + packet(8, 2, u16(2) + s("devices/sensor-1/down") + b"\x01" + s("cmd/#") + b"\x00")
    + packet(4, 0, u16(5))
    + packet(10, 2, u16(3) + s("cmd/#"))
    + packet(12, 0)
    + packet(14, 0),
    "connect-minimal.bin": connect(4, "", 0x02, keepalive=0),
    "connect-mqisdp.bin": connect(3, "old-1", 0x02) + packet(12, 0),
    "broker.bin": packet(2, 0, b"\x00\x00")
    + packet(9, 0, u16(2) + b"\x01\x80")
    + packet(3, 0x02, s("devices/sensor-1/down") + u16(7) + b"\x01\x02\x03")
    + packet(11, 0, u16(3))
    + packet(13, 0),
    "qos2.bin": packet(3, 0x0C, s("a/b") + u16(9) + b"x" * 40) + packet(5, 0, u16(9)) + packet(6, 2, u16(9)) + packet(7, 0, u16(9)),
    "connack-refused.bin": packet(2, 0, b"\x00\x05"),
}

user = b"\x26" + s("site") + s("lab")
v5 = {
    "session.bin": connect(
        5, "sensor-1", 0xEE,
        properties=props(b"\x11" + u32(3600), b"\x21" + u16(20), b"\x22" + u16(10), b"\x17\x01", user),
        will=props(b"\x18" + u32(5), b"\x01\x01", b"\x03" + s("text/plain")) + s("devices/sensor-1/status") + b(b"offline"),
        user="sensor-1", password=b"s3cret",
    )
    + packet(3, 0x02, s("devices/sensor-1/up") + u16(1)
             + props(b"\x23" + u16(1), b"\x02" + u32(60), b"\x03" + s("application/json"), b"\x08" + s("devices/sensor-1/reply"),
                     b"\x09" + b(b"req-1"), user) + b'{"t":21.5}')
    + packet(3, 0, s("") + props(b"\x23" + u16(1)) + b'{"t":21.6}')
    + packet(8, 2, u16(2) + props(b"\x0B" + vbi(42), user) + s("devices/sensor-1/down") + b"\x2D" + s("$share/g/cmd/+") + b"\x00")
    + packet(10, 2, u16(3) + props() + s("cmd/+"))
    + packet(12, 0)
    + packet(14, 0, b"\x04" + props(b"\x11" + u32(0))),
    "connect-auth.bin": connect(5, "c2", 0x02, properties=props(b"\x15" + s("SCRAM-SHA-1"), b"\x16" + b(b"n,,n=user,r=abc")))
    + packet(15, 0, b"\x18" + props(b"\x15" + s("SCRAM-SHA-1"), b"\x16" + b(b"c=biws,r=abcdef"))),
    "connect-minimal.bin": connect(5, "", 0x02, keepalive=0, properties=props()),
    "broker.bin": packet(2, 0, b"\x01\x00" + props(b"\x24\x01", b"\x25\x01", b"\x27" + u32(65536), b"\x12" + s("auto-1"), b"\x22" + u16(10),
                                                    b"\x28\x01", b"\x29\x01", b"\x2A\x00", b"\x13" + u16(30), b"\x1F" + s("welcome")))
    + packet(9, 0, u16(2) + props(b"\x1F" + s("QoS 0 is refused")) + b"\x01\x83")
    + packet(3, 0x02, s("devices/sensor-1/down") + u16(7) + props(b"\x0B" + vbi(42)) + b"\x01\x02\x03")
    + packet(11, 0, u16(3) + props() + b"\x00\x11")
    + packet(4, 0, u16(1) + b"\x10" + props(b"\x1F" + s("no subscribers")))
    + packet(13, 0)
    + packet(14, 0, b"\x8B" + props(b"\x1F" + s("bye"), b"\x1C" + s("other.example"))),
    "qos2.bin": packet(3, 0x0C, s("a/b") + u16(9) + props() + b"x" * 40)
    + packet(5, 0, u16(9) + b"\x10")
    + packet(6, 2, u16(9) + b"\x92" + props(b"\x1F" + s("gone")))
    + packet(7, 0, u16(9)),
}

# --- JSON bodies, as the routes take them --------------------------------------------------
bodies = {
    "device.json": {"id": "sensor-1", "name": "Sensor 1", "labels": {"site": "lab", "floor": "2"}, "attributes": {"model": "T1000"}},
    "device-patch.json": {"name": None, "labels": {"site": None}, "status": "active"},
    "downlink.json": {"payload_raw": "AQID", "confirmed": True, "port": 2},
    "integration.json": {
        "name": "eu", "type": "aws-iot", "region": "eu-west-1", "active": True, "thingGroup": "conduit",
        "credentials": {"source": "static", "accessKeyId": "AKIDEXAMPLE", "secretAccessKey": "secret"},
        "policy": {"name": "conduit-device", "perThing": False}, "thingAttributes": {"site": "lab"},
        "bind": {"devices": ["sensor-1", "sensor-2"], "labels": {"site": "lab"}, "all": False},
        "mqttTrustRoots": ["-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"],
    },
    "shadow.json": {"desired": {"led": "on", "interval": 30, "limits": {"max": 21.5, "min": -4e2}}, "version": 7},
    "thing.json": {
        "id": "t1", "appid": "app", "timestamp": 1700000000000, "tags": ["a", "b"], "votes": 0, "stored": True, "name": "T",
        "serviceBroker": "aws", "deviceState": {"temp": 21.5, "on": False, "raw": None, "u": "\u00e9\\"},
    },
    "token.json": {"role": "operator", "name": "ci token"},
}


# --- SigV4 requests: flags, date, then NUL-separated fields (see FuzzSigV4/main.swift) ----
def request(flags, seconds, method, path, query="", body="", headers=()):
    fields = [method, path, query, body] + [part for header in headers for part in header]
    return bytes([flags]) + u32(seconds) + b"\x00".join(field.encode() for field in fields)


iot = "data-ats.iot.eu-west-1.amazonaws.com"
requests = {
    "iot-publish.bin": request(0x11, 1714564800, "POST", "/topics/devices/sensor-1/up", "qos=1&retain=false", '{"t":21.5}',
                               [("host", iot), ("content-type", "application/json")]),
    "suite-query-order.bin": request(0x11, 1440938160, "GET", "/", "Param2=value2&Param1=value1", "",
                                     [("host", "example.amazonaws.com")]),
    "suite-relative-path.bin": request(0x11, 1440938160, "GET", "/example1/example2/../../example space/\u1234", "", "",
                                       [("Host", "example.amazonaws.com")]),
    "header-values.bin": request(0x15, 1440938160, "post", "/", "", "body",
                                 [("My-Header1", "  value1  with   spaces "), ("my-header1", "value2"), ("X-Amz-Meta", "\ta\tb\t")]),
    "presigned-mqtt.bin": request(0x0F, 1714564800, "GET", "/mqtt", "", "", [("host", iot + ":443")]),
    "control-plane.bin": request(0x71, 1714564800, "PUT", "/things/my thing/principals", "", "",
                                 [("host", "iot.eu-west-1.amazonaws.com"), ("x-amzn-principal", "arn:aws:iot:eu-west-1:123456789012:cert/abc")]),
    "query-escapes.bin": request(0x01, 0, "GET", "//a/./b//", "a=%20b&c+d=e%2Ff&empty=&noval&%E1%88%B4=%zz", "", []),
}


def write(target, files):
    folder = corpus / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


write("FuzzMQTT311", v3)
write("FuzzMQTT5", v5)
write("FuzzJSONBody", {name: json.dumps(body, indent=1 if "integration" in name else None).encode() for name, body in bodies.items()})
write("FuzzSigV4", requests)
