"""Messages that can never reach AWS are refused as MQTT says, and nothing of them is stored.

- MQTT 5.0, a QoS 1 payload of 128 KiB + 1 byte (a packet the broker takes, a message AWS
  cannot): PUBACK with reason code 0x83.
- MQTT 5.0, a packet over the broker's maximum packet size: DISCONNECT 0x95 (Packet too large).
- MQTT 3.1.1, the same packet: the connection is closed.
- 300 empty QoS 0 messages, then a QoS 1 one: it is acknowledged (empty messages count against
  the bound on unanswered messages, and are counted off again).
Prints one line per case: "puback 131", "disconnect 149", "closed", "empty then acked".

usage: oversize.py PORT ID SECRET
"""
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

port, device, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3]
topic = f"devices/{device}/big"


def client(protocol):
    done = threading.Event()
    state = {}
    c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=protocol)
    c.username_pw_set(device, secret)

    def on_connect(client, userdata, flags, reason_code, properties):
        state["connected"] = True
        done.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        state["puback"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        done.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        state["disconnect"] = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        done.set()

    c.on_connect, c.on_publish, c.on_disconnect = on_connect, on_publish, on_disconnect
    if protocol == mqtt.MQTTv5:
        c.connect("127.0.0.1", port, keepalive=30, clean_start=True)
    else:
        c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    assert done.wait(10) and state.get("connected"), "not connected"
    done.clear()
    return c, state, done


c, state, done = client(mqtt.MQTTv5)
c.publish(topic, b"a" * (128 * 1024 + 1), qos=1)
done.wait(10)
print(f"puback {state.get('puback')}")
c.disconnect()
c.loop_stop()

c, state, done = client(mqtt.MQTTv5)
c.publish(topic, b"b" * 200_000, qos=1)
done.wait(10)
print(f"disconnect {state.get('disconnect')}")
c.loop_stop()

c, state, done = client(mqtt.MQTTv311)
c.publish(topic, b"c" * 200_000, qos=1)
done.wait(10)
print("closed" if "disconnect" in state and not c.is_connected() else f"open {state}")
c.loop_stop()

c, state, done = client(mqtt.MQTTv311)
for _ in range(300):
    c.publish(f"devices/{device}/empty", b"", qos=0)
info = c.publish(f"devices/{device}/after", b"after", qos=1)
info.wait_for_publish(15)
print("empty then acked" if info.is_published() else "empty then not acked")
c.disconnect()
c.loop_stop()
