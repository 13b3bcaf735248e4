"""A thin synchronous wrapper around paho-mqtt 2.x for tests.

Every call waits for its acknowledgement with a timeout, every received message lands in a
queue, and nothing reconnects by itself, so a test reads top to bottom.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTv5, MQTTv31, MQTTv311, CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

V31, V311, V5 = MQTTv31, MQTTv311, MQTTv5
PROTOCOL_NAMES = {V31: "v31", V311: "v311", V5: "v5"}

TIMEOUT = 5.0


def uid(prefix: str = "t") -> str:
    """A unique, short (MQTT 3.1 allows 23 characters) identifier."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def props(packet_type: int, **values) -> Properties:
    """props(PacketTypes.PUBLISH, UserProperty=[("k", "v")], ContentType="text/plain")"""
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


def prop(properties, name, default=None):
    """A property of a received packet, or default when absent."""
    if properties is None:
        return default
    return getattr(properties, name, default)


@dataclass
class Msg:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    properties: Properties | None

    def prop(self, name, default=None):
        return prop(self.properties, name, default)

    @property
    def user_properties(self) -> list:
        return list(self.prop("UserProperty", []))

    @property
    def sub_ids(self) -> list:
        v = self.prop("SubscriptionIdentifier", [])
        return list(v) if isinstance(v, (list, tuple)) else [v]


@dataclass
class ConnResult:
    reason_code: int
    session_present: bool
    properties: Properties | None

    def prop(self, name, default=None):
        return prop(self.properties, name, default)


class Client:
    def __init__(self, broker, client_id: str | None = None, *, protocol=V311,
                 username: str | None = "guest", password: str | None = "guest",
                 clean: bool = True, transport: str = "tcp"):
        self.broker = broker
        self.transport = transport
        self.client_id = uid("c") if client_id is None else client_id
        self.protocol = protocol
        self.clean = clean
        kw = {} if protocol == V5 else {"clean_session": clean}
        # transport="websockets": MQTT over the broker's WebSocket listener, path /mqtt.
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=protocol, reconnect_on_failure=False,
                             transport=transport, **kw)
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        if username is not None:
            self.c.username_pw_set(username, password)
        self.messages: "queue.Queue[Msg]" = queue.Queue()
        self.connacks: "queue.Queue[ConnResult]" = queue.Queue()
        self.disconnects: "queue.Queue[tuple[int, Properties | None]]" = queue.Queue()
        self._cond = threading.Condition()
        self._subacks: dict[int, list[int]] = {}
        self._unsubacks: dict[int, list[int]] = {}
        self._pubacks: dict[int, int] = {}
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_publish = self._on_publish
        self.loop_running = False

    # -- callbacks ------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connacks.put(ConnResult(int(reason_code.value), bool(flags.session_present),
                                     properties))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnects.put((int(reason_code.value), properties))

    def _on_message(self, client, userdata, m):
        self.messages.put(Msg(m.topic, bytes(m.payload), m.qos, bool(m.retain), bool(m.dup),
                              getattr(m, "properties", None)))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cond:
            self._subacks[mid] = [int(rc.value) for rc in reason_codes]
            self._cond.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cond:
            self._unsubacks[mid] = [int(rc.value) for rc in reason_codes]
            self._cond.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        with self._cond:
            self._pubacks[mid] = int(reason_code.value)
            self._cond.notify_all()

    # -- operations -----------------------------------------------------------------------

    def will_set(self, topic, payload=b"", qos=0, retain=False, properties=None):
        self.c.will_set(topic, payload, qos, retain, properties)
        return self

    def connect(self, *, keepalive=60, properties=None, timeout=TIMEOUT,
                expect_success=True) -> ConnResult:
        kw = {}
        if self.protocol == V5:
            kw["clean_start"] = self.clean
            kw["properties"] = properties
        port = self.broker.ws_port if self.transport == "websockets" else self.broker.port
        self.c.connect(self.broker.host, port, keepalive, **kw)
        self.c.loop_start()
        self.loop_running = True
        try:
            res = self.connacks.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no CONNACK within {timeout}s for {self.client_id}")
        if expect_success:
            assert res.reason_code == 0, (
                f"connect of {self.client_id} refused: reason code {res.reason_code:#x}")
        return res

    def _wait(self, table, mid, timeout, what):
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in table:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} for mid {mid} within {timeout}s")
                self._cond.wait(left)
            return table.pop(mid)

    def subscribe(self, topic, qos=0, *, no_local=False, retain_as_published=False,
                  retain_handling=0, sub_id=None, timeout=TIMEOUT) -> list[int]:
        """Subscribe one filter (or a list of (filter, qos)); returns the SUBACK codes."""
        properties = None
        if sub_id is not None:
            properties = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=sub_id)
        if isinstance(topic, list):
            if self.protocol == V5:
                topic = [(t, SubscribeOptions(qos=q)) for t, q in topic]
            rc, mid = self.c.subscribe(topic, properties=properties)
        elif self.protocol == V5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local,
                                    retainAsPublished=retain_as_published,
                                    retainHandling=retain_handling)
            rc, mid = self.c.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        return self._wait(self._subacks, mid, timeout, "SUBACK")

    def unsubscribe(self, topic, timeout=TIMEOUT) -> list[int]:
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        return self._wait(self._unsubacks, mid, timeout, "UNSUBACK")

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None,
                timeout=TIMEOUT) -> int:
        """Publish and wait until it is acknowledged (QoS 1/2) or written (QoS 0).
        Returns the PUBACK/PUBREC reason code (0 for QoS 0 and for v3)."""
        info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {info.rc}"
        if qos == 0:
            info.wait_for_publish(timeout)
            return 0
        return self._wait(self._pubacks, info.mid, timeout, "PUBACK/PUBCOMP")

    def expect(self, n=1, timeout=TIMEOUT) -> list[Msg]:
        """Exactly n more messages must arrive within timeout (total)."""
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id}: expected {n} message(s) within {timeout}s, got "
                    f"{len(got)}: {[(m.topic, m.payload[:30]) for m in got]}")
        return got

    def expect_one(self, timeout=TIMEOUT) -> Msg:
        return self.expect(1, timeout)[0]

    def expect_none(self, wait=1.0) -> None:
        """No message may arrive within `wait` seconds."""
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m.topic!r} {m.payload!r}")

    def drain(self, wait=0.5) -> list[Msg]:
        """All messages that arrive until the queue stays quiet for `wait` seconds."""
        got = []
        while True:
            try:
                got.append(self.messages.get(timeout=wait))
            except queue.Empty:
                return got

    def wait_disconnect(self, timeout=TIMEOUT) -> tuple[int, Properties | None]:
        try:
            return self.disconnects.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id} still connected after {timeout}s")

    def disconnect(self, reason_code: int | None = None, properties=None) -> None:
        """Clean DISCONNECT (v5: with an optional reason code)."""
        if self.loop_running:
            if reason_code is not None:
                self.c.disconnect(ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code),
                                  properties)
            else:
                self.c.disconnect(properties=properties)
            self.c.loop_stop()
            self.loop_running = False

    def abort(self) -> None:
        """Drop the TCP connection without a DISCONNECT packet."""
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self.loop_running:
            self.c.loop_stop()
            self.loop_running = False
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Best-effort cleanup (used in finally blocks)."""
        try:
            if self.loop_running:
                self.disconnect()
        except Exception:
            self.abort()


def connect(broker, client_id=None, *, protocol=V311, clean=True, keepalive=60, properties=None,
            **kw) -> Client:
    """A connected Client (guest/guest by default)."""
    c = Client(broker, client_id, protocol=protocol, clean=clean, **kw)
    c.connect(keepalive=keepalive, properties=properties)
    return c
