"""One device floods the broker while another publishes as usual.

The flooder writes QoS 0 PUBLISHes of SIZE bytes on a raw socket as fast as the socket takes
them for SECONDS/2, then QoS 1 ones through paho (100 in flight) for SECONDS/2, recording which
QoS 1 messages the broker acknowledged. Meanwhile the normal device publishes 100 QoS 1
messages, one every 50 ms. Then it reads the store (SQLite, DB) and checks that every
acknowledged QoS 1 message of the flooder and every message of the normal device is there.
Prints a summary line; exits 1 on a loss.

usage: flood.py PORT FLOOD_ID FLOOD_SECRET NORMAL_ID NORMAL_SECRET SECONDS SIZE DB
"""
import base64
import socket
import sqlite3
import struct
import sys
import threading
import time

import paho.mqtt.client as mqtt

port, flood_id, flood_secret, normal_id, normal_secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
seconds, size, db = float(sys.argv[6]), int(sys.argv[7]), sys.argv[8]


def remaining_length(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(s):
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def raw_qos0_flood(duration):
    sock = socket.create_connection(("127.0.0.1", port))
    body = string("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60) + string(flood_id) + string(flood_id) + string(flood_secret)
    sock.sendall(bytes([0x10]) + remaining_length(len(body)) + body)
    ack = sock.recv(4)
    assert ack[:2] == b"\x20\x02" and ack[3] == 0, f"CONNACK {ack!r}"
    topic = string(f"devices/{flood_id}/flood0")
    sent = 0
    deadline = time.time() + duration
    while time.time() < deadline:
        payload = struct.pack(">Q", sent) + b"x" * (size - 8)
        packet = bytes([0x30]) + remaining_length(len(topic) + len(payload)) + topic + payload
        sock.sendall(packet)
        sent += 1
    sock.close()
    return sent


def qos1_flood(duration):
    acked = set()
    lock = threading.Lock()
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=flood_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(flood_id, flood_secret)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(100)
    mids = {}

    def on_publish(client, userdata, mid, reason_code, properties):
        with lock:
            if mid in mids:
                acked.add(mids.pop(mid))

    client.on_publish = on_publish
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    index = 0
    deadline = time.time() + duration
    while time.time() < deadline:
        info = client.publish(f"devices/{flood_id}/flood1", struct.pack(">Q", index) + b"y" * (size - 8), qos=1)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            time.sleep(0.001)
            continue
        with lock:
            mids[info.mid] = index
        index += 1
    time.sleep(2)
    client.disconnect()
    client.loop_stop()
    with lock:
        return index, set(acked)


normal_acked = []


def normal():
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=normal_id, protocol=mqtt.MQTTv311)
    client.username_pw_set(normal_id, normal_secret)
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    for i in range(100):
        info = client.publish(f"devices/{normal_id}/up", f"n-{i}", qos=1)
        info.wait_for_publish(30)
        if info.is_published():
            normal_acked.append(i)
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()


normal_thread = threading.Thread(target=normal)
normal_thread.start()
qos0_sent = raw_qos0_flood(seconds / 2)
qos1_sent, qos1_acked = qos1_flood(seconds / 2)
normal_thread.join()

connection = sqlite3.connect(db, timeout=30)
stored = {}
for topic, payload in connection.execute("SELECT topic, payload FROM device_messages"):
    stored.setdefault(topic, []).append(base64.b64decode(payload))
stored_flood1 = {struct.unpack(">Q", p[:8])[0] for p in stored.get(f"devices/{flood_id}/flood1", [])}
stored_normal = {p.decode() for p in stored.get(f"devices/{normal_id}/up", [])}
lost_flood = qos1_acked - stored_flood1
lost_normal = {f"n-{i}" for i in normal_acked} - stored_normal
print(
    f"qos0 written {qos0_sent}, stored {len(stored.get(f'devices/{flood_id}/flood0', []))}; "
    f"qos1 sent {qos1_sent}, acknowledged {len(qos1_acked)}, stored {len(stored_flood1)}, lost {len(lost_flood)}; "
    f"normal acknowledged {len(normal_acked)}/100, stored {len(stored_normal)}, lost {len(lost_normal)}"
)
sys.exit(0 if not lost_flood and not lost_normal and len(normal_acked) == 100 else 1)
