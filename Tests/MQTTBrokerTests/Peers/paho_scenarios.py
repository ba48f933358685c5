"""Scenarios that drive Conduit's MQTT broker with paho-mqtt, a real client library.

Usage: python3 paho_scenarios.py SCENARIO PORT
Prints OK and exits 0 when the broker behaved as the MQTT specification says; otherwise an
AssertionError names what differed. Every wait is bounded.
"""
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5


class Client:
    """A paho client that records what it receives and lets a scenario wait for it."""

    def __init__(self, port, client_id, protocol=V5, clean=True, session_expiry=None, receive_maximum=None,
                 will=None, manual_ack=False, keepalive=30, topic_alias_maximum=None, expect_refusal=False):
        kwargs = {"callback_api_version": mqtt.CallbackAPIVersion.VERSION2, "client_id": client_id,
                  "protocol": protocol, "manual_ack": manual_ack}
        if protocol == V311:
            kwargs["clean_session"] = clean
        self.client = mqtt.Client(**kwargs)
        self.messages = []
        self.connack = None
        self.disconnect_reason = None
        self.subacks = []
        self.lock = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        if will:
            topic, payload, qos, retain, props = will
            self.client.will_set(topic, payload, qos=qos, retain=retain, properties=props)
        properties = None
        if protocol == V5:
            properties = Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                properties.SessionExpiryInterval = session_expiry
            if receive_maximum is not None:
                properties.ReceiveMaximum = receive_maximum
            if topic_alias_maximum is not None:
                properties.TopicAliasMaximum = topic_alias_maximum
        self.client.reconnect_delay_set(60, 60)
        connect_kwargs = {"keepalive": keepalive, "properties": properties}
        if protocol == V5:
            connect_kwargs["clean_start"] = clean
        self.client.connect(HOST, port, **connect_kwargs)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None, "CONNACK")
        if not expect_refusal:
            assert not self.connack[1].is_failure, f"{client_id} refused: {self.connack[1]}"

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        with self.lock:
            self.connack = (flags.session_present, reason_code, properties)
            self.lock.notify_all()

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)
            self.lock.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        with self.lock:
            self.disconnect_reason = reason_code
            self.lock.notify_all()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self.lock:
            self.subacks.append(reason_codes)
            self.lock.notify_all()

    def wait(self, condition, what, timeout=120):  # a bound for a loaded machine, not a timing
        deadline = time.time() + timeout
        with self.lock:
            while not condition():
                remaining = deadline - time.time()
                assert remaining > 0, f"timed out waiting for {what}"
                self.lock.wait(remaining)

    def subscribe(self, topic, qos=1, options=None, properties=None):
        count = len(self.subacks)
        if options is not None:
            self.client.subscribe(topic, options=options, properties=properties)
        else:
            self.client.subscribe(topic, qos=qos, properties=properties)
        self.wait(lambda: len(self.subacks) > count, f"SUBACK for {topic}")
        return self.subacks[-1]

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            info.wait_for_publish(8)
            assert info.is_published(), f"publish to {topic} not acknowledged"

    def payloads(self):
        with self.lock:
            return [m.payload.decode() for m in self.messages]

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Ends the connection without DISCONNECT, as a device losing power would."""
        self.client.loop_stop()
        self.client.socket().close()


def persistent_session_v311(port):
    sub = Client(port, "persist-311", protocol=V311, clean=False)
    sub.subscribe("fleet/+/cmd", qos=1)
    sub.stop()
    pub = Client(port, "pub-311", protocol=V311)
    for i in range(3):
        pub.publish(f"fleet/d{i}/cmd", f"m{i}", qos=1)
    pub.stop()
    again = Client(port, "persist-311", protocol=V311, clean=False)
    assert again.connack[0], "session present flag not set on reconnect"
    again.wait(lambda: len(again.messages) >= 3, "3 queued messages")
    assert again.payloads() == ["m0", "m1", "m2"], again.payloads()
    again.stop()
    fresh = Client(port, "persist-311", protocol=V311, clean=True)
    assert not fresh.connack[0], "a clean session must not be present"
    fresh.stop()


def persistent_session_v5(port):
    sub = Client(port, "persist-5", session_expiry=60, clean=True)
    sub.subscribe("fleet/#", qos=2)
    sub.stop()
    pub = Client(port, "pub-5")
    # QoS 0 is not kept for an offline session. It goes first: the acknowledged QoS 1 and 2
    # publishes after it prove the broker has handled it before the subscriber comes back.
    pub.publish("fleet/c", "q0", qos=0)
    pub.publish("fleet/a", "q1", qos=1)
    pub.publish("fleet/b", "q2", qos=2)
    pub.stop()
    again = Client(port, "persist-5", session_expiry=60, clean=False)
    assert again.connack[0], "session present flag not set"
    again.wait(lambda: len(again.messages) >= 2, "queued messages")
    time.sleep(0.3)
    assert again.payloads() == ["q1", "q2"], again.payloads()
    again.stop()
    # Session expiry 0: the session ends with the connection.
    gone = Client(port, "short-5", session_expiry=0)
    gone.subscribe("fleet/#", qos=1)
    gone.stop()
    # Let the broker see the connection end: a reconnect that beats it is a takeover of a live
    # session, which is rightly "present".
    time.sleep(1.0)
    back = Client(port, "short-5", session_expiry=0, clean=False)
    assert not back.connack[0], "a session with expiry 0 must not survive its connection"
    back.stop()


def qos2_exactly_once(port):
    for protocol in (V311, V5):
        sub = Client(port, f"q2-sub-{protocol}", protocol=protocol)
        sub.subscribe("exact/#", qos=2)
        pub = Client(port, f"q2-pub-{protocol}", protocol=protocol)
        for i in range(20):
            pub.publish(f"exact/{i % 3}", f"n{i}", qos=2)
        sub.wait(lambda: len(sub.messages) >= 20, "20 QoS 2 messages")
        time.sleep(0.3)
        assert sub.payloads() == [f"n{i}" for i in range(20)], sub.payloads()
        assert all(m.qos == 2 for m in sub.messages)
        pub.stop()
        sub.stop()


def wills(port):
    watcher = Client(port, "will-watch")
    watcher.subscribe("status/#", qos=1)
    # An abrupt loss publishes the will.
    device = Client(port, "will-dev", will=("status/will-dev", "offline", 1, False, None))
    device.drop()
    watcher.wait(lambda: "offline" in watcher.payloads(), "will after connection loss")
    # A clean DISCONNECT does not.
    polite = Client(port, "will-polite", will=("status/will-polite", "polite-offline", 1, False, None))
    polite.stop()
    time.sleep(0.5)
    assert "polite-offline" not in watcher.payloads(), watcher.payloads()
    # A 5.0 DISCONNECT with a reason other than 0x00 keeps the will [MQTT-3.1.2-8].
    failing = Client(port, "will-failing", will=("status/will-failing", "failed-offline", 1, False, None))
    from paho.mqtt.reasoncodes import ReasonCode
    failing.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=0x80))
    watcher.wait(lambda: "failed-offline" in watcher.payloads(), "will after DISCONNECT 0x80")
    failing.client.loop_stop()
    # 3.1.1 too.
    old = Client(port, "will-311", protocol=V311, will=("status/will-311", "gone-311", 0, False, None))
    old.drop()
    watcher.wait(lambda: "gone-311" in watcher.payloads(), "3.1.1 will")
    watcher.stop()


def will_delay(port):
    watcher = Client(port, "delay-watch")
    watcher.subscribe("status/#", qos=1)
    props = Properties(PacketTypes.WILLMESSAGE)
    props.WillDelayInterval = 2
    device = Client(port, "delay-dev", session_expiry=30, will=("status/delay-dev", "late", 1, False, props))
    started = time.time()
    device.drop()
    watcher.wait(lambda: "late" in watcher.payloads(), "delayed will")
    elapsed = time.time() - started
    assert elapsed >= 1.5, f"will came after {elapsed:.2f}s, before its 2s delay"
    # Reconnecting within the delay cancels the will. The delay is long enough that a loaded
    # machine's slow reconnect still lands inside it.
    longer = Properties(PacketTypes.WILLMESSAGE)
    longer.WillDelayInterval = 4
    device2 = Client(port, "delay-dev2", session_expiry=30, will=("status/delay-dev2", "never", 1, False, longer))
    device2.drop()
    time.sleep(0.5)
    back = Client(port, "delay-dev2", session_expiry=30, clean=False)
    time.sleep(4.5)
    assert "never" not in watcher.payloads(), watcher.payloads()
    back.stop()
    watcher.stop()


def retained(port):
    pub = Client(port, "ret-pub")
    pub.publish("config/a", "A", qos=1, retain=True)
    pub.publish("config/b", "B", qos=1, retain=True)
    sub = Client(port, "ret-sub")
    sub.subscribe("config/#", qos=1)
    sub.wait(lambda: len(sub.messages) >= 2, "retained messages")
    assert sorted(sub.payloads()) == ["A", "B"], sub.payloads()
    assert all(m.retain for m in sub.messages), "retained messages must arrive with RETAIN set"
    # Retain handling 2: none on subscribe.
    quiet = Client(port, "ret-quiet")
    quiet.subscribe("config/#", options=SubscribeOptions(qos=1, retainHandling=2))
    time.sleep(0.5)
    assert quiet.payloads() == [], quiet.payloads()
    # Retain as published: a live retained message keeps its flag only with the option.
    rap = Client(port, "ret-rap")
    rap.subscribe("config/c", options=SubscribeOptions(qos=1, retainAsPublished=True))
    pub.publish("config/c", "C", qos=1, retain=True)
    rap.wait(lambda: "C" in rap.payloads(), "retain-as-published message")
    assert rap.messages[-1].retain, "retain-as-published lost the flag"
    sub.wait(lambda: "C" in sub.payloads(), "live retained message")
    assert not sub.messages[-1].retain, "a live message must not carry RETAIN without retain-as-published"
    # An empty retained message clears it.
    pub.publish("config/a", "", qos=1, retain=True)
    late = Client(port, "ret-late")
    late.subscribe("config/a", qos=1)
    time.sleep(0.5)
    assert late.payloads() == [], late.payloads()
    for c in (pub, sub, quiet, rap, late):
        c.stop()


def topic_aliases(port):
    sub = Client(port, "alias-sub")
    sub.subscribe("long/topic/name/for/aliases", qos=1)
    pub = Client(port, "alias-pub")
    assert pub.connack[2].TopicAliasMaximum >= 1, "broker must offer topic aliases"
    first = Properties(PacketTypes.PUBLISH)
    first.TopicAlias = 1
    pub.publish("long/topic/name/for/aliases", "one", qos=1, properties=first)
    second = Properties(PacketTypes.PUBLISH)
    second.TopicAlias = 1
    pub.publish("", "two", qos=1, properties=second)
    sub.wait(lambda: len(sub.messages) >= 2, "aliased messages")
    assert sub.payloads() == ["one", "two"], sub.payloads()
    assert all(m.topic == "long/topic/name/for/aliases" for m in sub.messages)
    pub.stop()
    sub.stop()


def outbound_topic_aliases(port):
    """A 5.0 client that allows topic aliases gets a topic once, with its alias, then the alias
    alone, and a topic past its maximum in full; a client that allows none gets topics in full."""
    sub = Client(port, "alias-in", topic_alias_maximum=1)
    sub.subscribe("alias/#", qos=1)
    plain = Client(port, "alias-none")
    plain.subscribe("alias/#", qos=1)
    pub = Client(port, "alias-out")
    for topic, payload in [("alias/one", "a"), ("alias/one", "b"), ("alias/two", "c"), ("alias/one", "d")]:
        pub.publish(topic, payload, qos=1)
    sub.wait(lambda: len(sub.messages) >= 4, "four messages")
    plain.wait(lambda: len(plain.messages) >= 4, "four messages")
    seen = [(m.topic, getattr(m.properties, "TopicAlias", None), m.payload.decode()) for m in sub.messages]
    assert seen == [("alias/one", 1, "a"), ("", 1, "b"), ("alias/two", None, "c"), ("", 1, "d")], seen
    full = [(m.topic, getattr(m.properties, "TopicAlias", None)) for m in plain.messages]
    assert full == [("alias/one", None), ("alias/one", None), ("alias/two", None), ("alias/one", None)], full
    for c in (sub, plain, pub):
        c.stop()


def limited_server(port):
    """A broker configured with keep-alive at most 10 s, QoS at most 1, and no retained, wildcard,
    shared or identified subscriptions says so in CONNACK and holds clients to it."""
    client = Client(port, "limited", keepalive=30)
    props = client.connack[2]
    assert props.ServerKeepAlive == 10, props
    assert props.MaximumQoS == 1, props
    assert props.RetainAvailable == 0 and props.WildcardSubscriptionAvailable == 0, props
    assert props.SharedSubscriptionAvailable == 0 and props.SubscriptionIdentifierAvailable == 0, props
    assert [c.value for c in client.subscribe("plain/topic", qos=2)] == [1], "QoS 2 asked, QoS 1 granted"
    assert [c.value for c in client.subscribe("plain/#", qos=1)] == [0xA2]
    assert [c.value for c in client.subscribe("$share/g/plain/topic", qos=1)] == [0x9E]
    client.publish("plain/topic", "at one", qos=1)
    client.wait(lambda: len(client.messages) >= 1, "its own message back")
    client.client.publish("plain/topic", "too high", qos=2)
    client.wait(lambda: client.disconnect_reason is not None, "DISCONNECT for QoS 2")
    assert client.disconnect_reason == 0x9B, client.disconnect_reason
    client.client.loop_stop()
    retainer = Client(port, "limited-retain")
    retainer.client.publish("plain/topic", "kept?", qos=0, retain=True)
    retainer.wait(lambda: retainer.disconnect_reason is not None, "DISCONNECT for a retained message")
    assert retainer.disconnect_reason == 0x9A, retainer.disconnect_reason
    retainer.client.loop_stop()
    # 3.1.1 cannot be told a shorter keep-alive: asking for more is refused (identifier rejected).
    old = Client(port, "limited-v311", protocol=V311, keepalive=30, expect_refusal=True)
    assert old.connack[1].value in (2, 0x85), old.connack[1]
    old.client.loop_stop()
    ok = Client(port, "limited-v311-ok", protocol=V311, keepalive=10)
    ok.stop()


def shared_subscriptions(port):
    workers = [Client(port, f"worker-{i}") for i in range(2)]
    for w in workers:
        w.subscribe("$share/pool/jobs/#", qos=1)
    plain = Client(port, "observer")
    plain.subscribe("jobs/#", qos=1)
    pub = Client(port, "job-pub")
    for i in range(10):
        pub.publish(f"jobs/{i}", f"job{i}", qos=1)
    deadline = time.time() + 8
    while sum(len(w.messages) for w in workers) < 10 and time.time() < deadline:
        time.sleep(0.05)
    received = sorted(p for w in workers for p in w.payloads())
    assert received == sorted(f"job{i}" for i in range(10)), received
    assert all(len(w.messages) > 0 for w in workers), [len(w.messages) for w in workers]
    plain.wait(lambda: len(plain.messages) >= 10, "every message for the ordinary subscriber")
    for c in workers + [plain, pub]:
        c.stop()


def v5_properties(port):
    sub = Client(port, "props-sub")
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 7
    sub.subscribe("rpc/request", qos=1, properties=sub_props)
    me = Client(port, "props-self")
    me.subscribe("rpc/request", options=SubscribeOptions(qos=1, noLocal=True))
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "rpc/response/42"
    props.CorrelationData = b"\x00\x01corr"
    props.UserProperty = [("trace", "abc"), ("trace", "def")]
    props.ContentType = "application/json"
    props.PayloadFormatIndicator = 1
    me.publish("rpc/request", '{"x":1}', qos=1, properties=props)
    sub.wait(lambda: len(sub.messages) >= 1, "request")
    got = sub.messages[0].properties
    assert got.ResponseTopic == "rpc/response/42", got
    assert got.CorrelationData == b"\x00\x01corr", got
    assert got.UserProperty == [("trace", "abc"), ("trace", "def")], got.UserProperty
    assert got.ContentType == "application/json"
    assert got.SubscriptionIdentifier == [7], got.SubscriptionIdentifier
    time.sleep(0.4)
    assert me.payloads() == [], "no-local subscription received its own message"
    me.stop()
    sub.stop()


def message_expiry(port):
    pub = Client(port, "exp-pub")
    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = 1
    pub.publish("expiring/news", "stale soon", qos=1, retain=True, properties=props)
    keep = Properties(PacketTypes.PUBLISH)
    keep.MessageExpiryInterval = 60
    pub.publish("expiring/other", "fresh", qos=1, retain=True, properties=keep)
    time.sleep(2.2)
    sub = Client(port, "exp-sub")
    sub.subscribe("expiring/#", qos=1)
    sub.wait(lambda: len(sub.messages) >= 1, "unexpired retained message")
    time.sleep(0.4)
    assert sub.payloads() == ["fresh"], sub.payloads()
    remaining = sub.messages[0].properties.MessageExpiryInterval
    assert 0 < remaining <= 60, remaining
    pub.stop()
    sub.stop()


def flow_control(port):
    sub = Client(port, "flow-sub", receive_maximum=2, manual_ack=True)
    sub.subscribe("flow/#", qos=1)
    pub = Client(port, "flow-pub")
    for i in range(6):
        pub.publish(f"flow/{i}", f"f{i}", qos=1)
    sub.wait(lambda: len(sub.messages) >= 2, "first two messages")
    time.sleep(0.6)
    assert len(sub.messages) == 2, f"receive maximum 2 exceeded: {len(sub.messages)} in flight"
    # Acknowledge each message as it comes, until all six have: the next ones are sent only as
    # acknowledgements free the window (a fixed number of rounds raced a slow machine).
    acked = set()
    deadline = time.time() + 8
    while time.time() < deadline:
        with sub.lock:
            pending = [m for m in sub.messages if id(m) not in acked]
            count = len(sub.messages)
        if count >= 6 and not pending:
            break
        for m in pending:
            sub.client.ack(m.mid, m.qos)
            acked.add(id(m))
        time.sleep(0.05)
    sub.wait(lambda: len(sub.messages) >= 6, "all six after acknowledging")
    assert sub.payloads() == [f"f{i}" for i in range(6)], sub.payloads()
    pub.stop()
    sub.stop()


def takeover(port):
    first = Client(port, "same-id")
    second = Client(port, "same-id")
    first.wait(lambda: first.disconnect_reason is not None, "takeover DISCONNECT")
    assert first.disconnect_reason == 0x8E, f"reason {first.disconnect_reason}"
    second.stop()
    first.client.loop_stop()


def raw_connect(port, keepalive=0, version=5):
    s = socket.create_connection((HOST, port), timeout=5)
    body = bytes([0, 4]) + b"MQTT" + bytes([version, 0x02]) + keepalive.to_bytes(2, "big")
    if version == 5:
        body += b"\x00"
    body += bytes([0, 3]) + b"raw"
    s.sendall(bytes([0x10, len(body)]) + body)
    ack = s.recv(64)
    assert ack[0] == 0x20, ack
    return s


def keep_alive(port):
    s = raw_connect(port, keepalive=1)
    started = time.time()
    s.settimeout(5)
    data = s.recv(64)
    while data:
        data = s.recv(64)
    elapsed = time.time() - started
    assert 1.0 <= elapsed <= 3.5, f"closed after {elapsed:.2f}s; keep-alive 1s allows 1.5s"


def malformed(port):
    s = raw_connect(port)
    s.sendall(bytes([0x36, 0x02, 0x00, 0x00]))  # PUBLISH with QoS 3
    s.settimeout(5)
    data = s.recv(64)
    assert data[:1] == b"\xe0" and data[2] == 0x81, f"expected DISCONNECT 0x81, got {data!r}"
    assert s.recv(64) == b"", "connection not closed"
    # The broker still serves everyone else.
    ok = Client(port, "after-malformed")
    ok.subscribe("x", qos=1)
    ok.stop()


def garbage(port):
    """Random and mutated bytes on many connections; the broker must close each bad one and keep serving."""
    import random
    rng = random.Random(20261124)
    valid_connect = bytes([0x10, 0x0F, 0, 4]) + b"MQTT" + bytes([5, 2, 0, 60, 0, 0, 3]) + b"fzz"
    for i in range(300):
        s = socket.create_connection((HOST, port), timeout=3)
        if i % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        elif i % 3 == 1:
            data = bytearray(valid_connect)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = valid_connect + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        try:
            s.sendall(data)
        except OSError:
            pass
        s.close()
    ok = Client(port, "after-garbage")
    ok.subscribe("still/here", qos=1)
    ok.publish("still/here", "alive", qos=1)
    ok.wait(lambda: "alive" in ok.payloads(), "the broker to keep serving")
    ok.stop()


def slow_subscriber(port):
    """A subscriber far slower than its publisher loses nothing: the broker holds the publisher back."""
    sub = Client(port, "slow-sub", manual_ack=True)
    sub.subscribe("firehose", qos=1)
    stop = threading.Event()

    def acknowledge_slowly():
        acked = 0
        while not stop.is_set():
            with sub.lock:
                pending = sub.messages[acked:]
            for m in pending:
                time.sleep(0.001)
                sub.client.ack(m.mid, m.qos)
            acked += len(pending)
            time.sleep(0.002)

    worker = threading.Thread(target=acknowledge_slowly, daemon=True)
    worker.start()
    pub = Client(port, "fast-pub")
    total = 1500
    infos = [pub.client.publish("firehose", f"{i}", qos=1) for i in range(total)]
    for info in infos:
        info.wait_for_publish(30)
    sub.wait(lambda: len(sub.messages) >= total, f"{total} messages", timeout=120)
    stop.set()
    assert sub.payloads() == [f"{i}" for i in range(total)], "messages lost or reordered"
    pub.stop()
    sub.stop()


def qos2_store_retry(port):
    """The broker's store fails once (the test's observer does that for payloads starting with
    'fail-once'): the client is cut off unacknowledged, sends again, and the subscriber still gets
    exactly one copy."""
    sub = Client(port, "retry-sub")
    sub.subscribe("devices/retry/#", qos=2)
    pub = Client(port, "retry-pub", clean=False, session_expiry=60)
    pub.client.reconnect_delay_set(1, 2)
    info = pub.client.publish("devices/retry/up", "fail-once:important", qos=2)
    info.wait_for_publish(20)
    assert info.is_published(), "the message was never acknowledged after the retry"
    time.sleep(0.5)
    assert sub.payloads() == ["fail-once:important"], sub.payloads()
    pub.stop()
    sub.stop()


def quota_refusal(port):
    """The broker's store refuses a message once (the test's observer does that for payloads
    starting with 'refuse-once', as a full uplink backlog does): a 5.0 client hears 0x97 Quota
    exceeded in its PUBACK and may send it again; a 3.1.1 client, which cannot hear a refusal, gets
    no PUBACK: the broker ends the connection, and the client sends it again once back."""
    acks = {}
    v5 = Client(port, "quota-v5")

    def on_publish(client, userdata, mid, reason_code, properties):
        with v5.lock:
            acks[mid] = reason_code.value
            v5.lock.notify_all()
    v5.client.on_publish = on_publish
    first = v5.client.publish("devices/quota/up", "refuse-once:a", qos=1)
    v5.wait(lambda: first.mid in acks, "a PUBACK for the refused message")
    assert acks[first.mid] == 0x97, f"PUBACK reason {acks[first.mid]:#x}, not 0x97"
    again = v5.client.publish("devices/quota/up", "refuse-once:a", qos=1)
    v5.wait(lambda: again.mid in acks, "a PUBACK for the message sent again")
    assert acks[again.mid] == 0, f"PUBACK reason {acks[again.mid]:#x} for the second try"
    v5.stop()
    old = Client(port, "quota-v311", protocol=V311)
    refused = old.client.publish("devices/quota/up", "refuse-once:b", qos=1)
    old.wait(lambda: old.disconnect_reason is not None, "the broker to end the connection")
    assert not refused.is_published(), "a refused 3.1.1 message was acknowledged"
    old.client.loop_stop()


SCENARIOS = {f.__name__: f for f in [
    garbage, slow_subscriber, qos2_store_retry, quota_refusal,
    persistent_session_v311, persistent_session_v5, qos2_exactly_once, wills, will_delay, retained, topic_aliases,
    shared_subscriptions, v5_properties, message_expiry, flow_control, takeover, keep_alive, malformed,
    outbound_topic_aliases, limited_server,
]}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](int(sys.argv[2]))
    print("OK")
