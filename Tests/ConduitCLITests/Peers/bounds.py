#!/usr/bin/env python3
"""Tries the broker's bounds as a hostile client would, and prints what it answered.

usage: bounds.py PORT STEP ARGS...
  subscriptions CLIENT SECRET N      subscribe N filters, one SUBSCRIBE each: `suback FILTER CODE`
  retained CLIENT SECRET TOPIC...    publish each retained at QoS 1 (5.0): `puback TOPIC CODE`
  connect-size BYTES                 a CONNECT of about BYTES: `closed-without-connack` or `connack CODE`
  hold N                             open N TCP connections, send nothing, print `held N`, wait to be killed
  connack CLIENT SECRET [N]          N CONNECTs (5.0) one after another: `connack CODE [REASON]` each
  will CLIENT SECRET                 a CONNECT (5.0) with a retained will: `connack CODE [REASON]`
"""
import socket
import struct
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

port, step, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]


def client(client_id, secret):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(client_id, secret)
    return c


def connected(c):
    done = threading.Event()
    result = {}

    def on_connect(_c, _u, _f, reason_code, properties):
        result["code"] = reason_code.value
        result["reason"] = getattr(properties, "ReasonString", None) if properties else None
        done.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not done.wait(15):
        print("no CONNACK", flush=True)
        sys.exit(2)
    return result


if step == "subscriptions":
    c = client(args[0], args[1])
    assert connected(c)["code"] == 0
    answered = threading.Event()
    codes = []
    c.on_subscribe = lambda _c, _u, _m, reason_codes, _p: (codes.append(reason_codes[0].value), answered.set())
    for index in range(int(args[2])):
        answered.clear()
        c.subscribe(f"devices/{args[0]}/cmd/{index}", qos=1)
        answered.wait(15)
        print(f"suback devices/{args[0]}/cmd/{index} {codes[-1]:#04x}", flush=True)
    c.disconnect()
elif step == "retained":
    c = client(args[0], args[1])
    assert connected(c)["code"] == 0
    acked = {}
    events = {}
    c.on_publish = lambda _c, _u, mid, reason_code, _p: (acked.__setitem__(mid, reason_code.value), events[mid].set())
    for topic in args[2:]:
        info = c.publish(topic, b"state", qos=1, retain=True)
        events.setdefault(info.mid, threading.Event())
        events[info.mid].wait(15)
        print(f"puback {topic} {acked.get(info.mid, -1):#04x}", flush=True)
    c.disconnect()
elif step == "connect-size":
    size = int(args[0])
    # CONNECT 5.0, clean start, a will of `size` bytes (flags 0x06: will, clean start).
    client_id = b"big"
    will_topic = b"devices/big/will"
    will = b"w" * size
    variable = b"\x00\x04MQTT\x05\x06\x00\x1e\x00"
    payload = struct.pack(">H", len(client_id)) + client_id + b"\x00" + struct.pack(">H", len(will_topic)) + will_topic + struct.pack(">H", len(will)) + will
    body = variable + payload
    length = b""
    remaining = len(body)
    while True:
        byte = remaining % 128
        remaining //= 128
        length += bytes([byte | (0x80 if remaining else 0)])
        if not remaining:
            break
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(b"\x10" + length + body)
        data = s.recv(64)
        print("closed-without-connack" if not data else f"connack {data[3] if len(data) > 3 else -1:#04x}", flush=True)
    except (ConnectionResetError, BrokenPipeError):
        print("closed-without-connack", flush=True)
elif step == "hold":
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(int(args[0]))]
    print(f"held {len(sockets)}", flush=True)
    threading.Event().wait(60)
elif step == "will":
    c = client(args[0], args[1])
    c.will_set(f"devices/{args[0]}/last-words", b"gone", qos=1, retain=True)
    result = connected(c)
    line = f"connack {result['code']:#04x}"
    if result.get("reason"):
        line += f" {result['reason']}"
    print(line, flush=True)
    c.loop_stop()
elif step == "connack":
    for _ in range(int(args[2]) if len(args) > 2 else 1):
        c = client(args[0], args[1])
        result = connected(c)
        line = f"connack {result['code']:#04x}"
        if result.get("reason"):
            line += f" {result['reason']}"
        print(line, flush=True)
        c.disconnect()
        c.loop_stop()
