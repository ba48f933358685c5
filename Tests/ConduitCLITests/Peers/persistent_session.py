"""A paho-mqtt client with a persistent session, in three steps:

  subscribe PORT VERSION CLIENT TOPIC    connect (3.1.1 clean session 0, or 5.0 session expiry
                                         3600), subscribe to TOPIC at QoS 1, disconnect normally
  publish PORT TOPIC COUNT               publish "m-0" .. "m-COUNT-1" at QoS 1, each acknowledged
  receive PORT VERSION CLIENT TOPIC COUNT
                                         reconnect without subscribing, print "session present
                                         True/False", then each message as "TOPIC PAYLOAD"; after
                                         COUNT, publish "live" to TOPIC and print it when it comes
                                         back (the subscription is still there)

VERSION is 3 (3.1.1) or 5. Exits non-zero when something does not arrive within 30 s.
"""
import sys
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

step, port = sys.argv[1], int(sys.argv[2])


def client_for(version, client_id):
    if version == "5":
        return mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False)


def connect(client, version, announce=False):
    connected = threading.Event()
    result = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        result["present"] = flags.session_present
        result["code"] = reason_code
        # Here, on the network thread, before any message of the session is handled.
        if announce:
            print(f"session present {flags.session_present}", flush=True)
        connected.set()

    client.on_connect = on_connect
    if version == "5":
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, keepalive=30, clean_start=False, properties=properties)
    else:
        client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not connected.wait(30) or result["code"] != 0:
        sys.exit(f"no CONNACK or refused: {result}")
    return result["present"]


if step == "subscribe":
    version, client_id, topic = sys.argv[3], sys.argv[4], sys.argv[5]
    client = client_for(version, client_id)
    connect(client, version)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.subscribe(topic, qos=1)
    if not subscribed.wait(30):
        sys.exit("no SUBACK")
    client.disconnect()
    client.loop_stop()
    print("subscribed")
elif step == "publish":
    topic, count = sys.argv[3], int(sys.argv[4])
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{topic.replace('/', '-')}", protocol=mqtt.MQTTv5)
    connect(client, "5")
    for info in [client.publish(topic, f"m-{i}", qos=1) for i in range(count)]:
        info.wait_for_publish(30)
        if not info.is_published():
            sys.exit("a publish was not acknowledged")
    client.disconnect()
    client.loop_stop()
    print(f"published {count}")
else:
    version, client_id, topic, count = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
    client = client_for(version, client_id)
    received = []
    queued_done = threading.Event()
    live = threading.Event()
    lock = threading.Lock()

    def on_message(client, userdata, message):
        payload = message.payload.decode()
        with lock:
            received.append(f"{message.topic} {payload}")
            print(received[-1], flush=True)
            if payload == "live":
                live.set()
            elif len(received) >= count:
                queued_done.set()

    client.on_message = on_message
    connect(client, version, announce=True)
    if count > 0 and not queued_done.wait(30):
        sys.exit(f"only {len(received)} of {count} queued messages came")
    client.publish(topic, "live", qos=1)
    if not live.wait(30):
        sys.exit("the subscription did not survive: the live message never came")
    client.disconnect()
    client.loop_stop()
