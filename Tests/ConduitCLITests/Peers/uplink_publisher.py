"""A device that publishes COUNT QoS 1 messages ("m-0", "m-1", ...) to devices/ID/up and keeps at
it through the broker going away: a message counts as sent only once the broker acknowledged
it; whatever was not acknowledged when the connection dropped is sent again after reconnecting.
Writes its progress to PROGRESS_FILE (acknowledged count) and prints "acked N" at the end.

usage: uplink_publisher.py PORT ID SECRET COUNT PROGRESS_FILE
"""
import sys
import time

import paho.mqtt.client as mqtt

port, device, secret, count, progress_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
topic = f"devices/{device}/up"

client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv311)
client.username_pw_set(device, secret)
client.reconnect_delay_set(0.2, 1)
client.max_inflight_messages_set(50)
client.connect_async("127.0.0.1", port, keepalive=10)
client.loop_start()

acked = set()
pending = list(range(count))
deadline = time.time() + 240
window = 50
while pending and time.time() < deadline:
    while not client.is_connected() and time.time() < deadline:
        time.sleep(0.05)
    batch = pending[:window]
    infos = [(i, client.publish(topic, f"m-{i}", qos=1)) for i in batch]
    for i, info in infos:
        try:
            info.wait_for_publish(3)
        except (RuntimeError, ValueError):
            pass
        if info.is_published():
            acked.add(i)
    pending = [i for i in pending if i not in acked]
    with open(progress_file, "w") as f:
        f.write(str(len(acked)))

client.disconnect()
client.loop_stop()
print(f"acked {len(acked)}")
sys.exit(0 if not pending else 1)
