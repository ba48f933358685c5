"""A fleet of devices behind one address (a load balancer in front of several nodes), each with a
persistent session (MQTT 3.1.1, clean session 0), as real devices that must not miss a downlink
keep one.

Each device publishes COUNT QoS 1 messages ("PREFIX-0", "PREFIX-1", ...) to devices/ID/up. A
message counts as sent only once acknowledged; one not acknowledged when the connection dropped is
sent again after reconnecting (so after a crash the hub may get it twice, never lose it). Each
device subscribes to devices/ID/down only when its CONNACK says no session was present: a device
that comes back to another node and finds its session there does not subscribe again, and gets its
downlinks through the session alone.

The fleet runs until every message is acknowledged and the file STOP exists (the test writes it
once it has what it waits for), or for 300 s. Every 0.2 s it writes PROGRESS as JSON: per device,
the acknowledged count, each CONNACK's session-present flag in order, and the downlinks received.

usage: fleet_devices.py PORT COUNT PREFIX PROGRESS STOP ID:SECRET...
"""
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt

port, count, prefix, progress_file, stop_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
devices = [pair.split(":", 1) for pair in sys.argv[6:]]
deadline = time.time() + 300
lock = threading.Lock()
state = {device: {"acked": 0, "sessionPresent": [], "downlinks": []} for device, _ in devices}


def run(device, secret):
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311, clean_session=False
    )
    client.username_pw_set(device, secret)
    client.reconnect_delay_set(0.2, 1)
    client.max_inflight_messages_set(20)

    def on_connect(client, userdata, flags, reason, properties):
        if reason.is_failure:
            return
        with lock:
            state[device]["sessionPresent"].append(bool(flags.session_present))
        if not flags.session_present:
            client.subscribe(f"devices/{device}/down", qos=1)

    def on_message(client, userdata, message):
        with lock:
            state[device]["downlinks"].append(message.payload.decode("utf-8", "replace"))

    client.on_connect, client.on_message = on_connect, on_message
    client.connect_async("127.0.0.1", port, keepalive=10)
    client.loop_start()
    topic = f"devices/{device}/up"
    pending = list(range(count))
    while pending and time.time() < deadline:
        while not client.is_connected() and time.time() < deadline:
            time.sleep(0.05)
        infos = [(i, client.publish(topic, f"{prefix}-{i}", qos=1)) for i in pending[:20]]
        acked = set()
        for i, info in infos:
            try:
                info.wait_for_publish(3)
            except (RuntimeError, ValueError):
                pass
            if info.is_published():
                acked.add(i)
        pending = [i for i in pending if i not in acked]
        with lock:
            state[device]["acked"] = count - len(pending)
    while not os.path.exists(stop_file) and time.time() < deadline:
        time.sleep(0.1)
    client.disconnect()
    client.loop_stop()


def write_progress():
    with lock:
        text = json.dumps(state)
    with open(progress_file + ".tmp", "w") as f:
        f.write(text)
    os.replace(progress_file + ".tmp", progress_file)


threads = [threading.Thread(target=run, args=(device, secret), daemon=True) for device, secret in devices]
for thread in threads:
    thread.start()
while any(thread.is_alive() for thread in threads):
    write_progress()
    time.sleep(0.2)
write_progress()
sys.exit(0 if all(entry["acked"] == count for entry in state.values()) else 1)
