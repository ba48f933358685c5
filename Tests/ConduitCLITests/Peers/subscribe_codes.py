#!/usr/bin/env python3
"""Subscribes as a device, one filter at a time, and prints what the broker answered.

usage: subscribe_codes.py PORT VERSION(3|5) CLIENT SECRET WAIT FILTER:QOS...

For each FILTER:QOS, prints `suback FILTER QOS CODE [REASON]` (CODE in hex; REASON is a 5.0
reason string). Then it waits WAIT seconds and prints `message TOPIC QOS PAYLOAD` for every
message received meanwhile (acknowledged as paho does, after the callback), and disconnects.
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

port, version, client_id, secret, wait = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
requests = [item.rsplit(":", 1) for item in sys.argv[6:]]
protocol = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311

client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
client.username_pw_set(client_id, secret)
connected = threading.Event()
answered = threading.Event()
answer = {}
lines = []
lock = threading.Lock()


def on_connect(c, userdata, flags, reason_code, properties):
    connected.set()


def on_subscribe(c, userdata, mid, reason_codes, properties):
    reason = getattr(properties, "ReasonString", None) if properties is not None else None
    answer["codes"] = [code.value for code in reason_codes]
    answer["reason"] = reason
    answered.set()


def on_message(c, userdata, message):
    with lock:
        lines.append(f"message {message.topic} {message.qos} {message.payload.decode(errors='replace')}")


client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect("127.0.0.1", port, keepalive=30)
client.loop_start()
if not connected.wait(15):
    print("no CONNACK", flush=True)
    sys.exit(2)
for topic, qos in requests:
    answered.clear()
    client.subscribe(topic, qos=int(qos))
    if not answered.wait(15):
        print(f"no SUBACK for {topic}", flush=True)
        sys.exit(2)
    line = f"suback {topic} {qos} {answer['codes'][0]:#04x}"
    if answer["reason"]:
        line += f" {answer['reason']}"
    print(line, flush=True)
time.sleep(wait)
with lock:
    for line in lines:
        print(line, flush=True)
client.disconnect()
client.loop_stop()
