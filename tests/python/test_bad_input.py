"""Malformed and hostile input closes that one connection; everybody else keeps working.

Every case runs while a background publisher streams sequenced QoS 1 messages to a subscriber;
at the end every message must have arrived, in order, exactly once.
"""

import random
import struct
import threading
import time

import pytest
import rawmqtt
from mqttc import V311, V5, uid
from rawmqtt import CONNACK, PUBACK, packet


class Traffic:
    """A publisher sending sequence numbers to a subscriber while a test runs."""

    def __init__(self, broker, clients, protocol=V311):
        self.topic = uid("traffic") + "/seq"
        self.sub = clients.connect(broker, protocol=protocol)
        self.sub.subscribe(self.topic, 1)
        self.pub = clients.connect(broker, protocol=protocol)
        self.sent = 0
        self._stop = threading.Event()
        self._error = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self._stop.is_set():
                self.pub.publish(self.topic, str(self.sent).encode(), 1, timeout=5)
                self.sent += 1
                time.sleep(0.02)
        except Exception as e:  # reported by stop()
            self._error = e

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stop.set()
        self._thread.join(10)
        if exc_type is not None:
            return False
        assert self._error is None, f"publisher failed during the test: {self._error!r}"
        # One more message after the bad connection is gone.
        self.pub.publish(self.topic, str(self.sent).encode(), 1)
        self.sent += 1
        got = [int(m.payload) for m in self.sub.expect(self.sent, timeout=10)]
        assert got == list(range(self.sent)), "messages lost, duplicated or reordered"
        self.sub.expect_none(0.2)
        return False


def _random_bytes(seed, n=4096):
    rnd = random.Random(seed)
    return bytes(rnd.getrandbits(8) for _ in range(n))


def _connect_with_flags(flags):
    vh = rawmqtt.mqtt_str("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
    return packet(1, 0, vh + rawmqtt.mqtt_str("flags") + rawmqtt.mqtt_str("guest")
                  + rawmqtt.mqtt_str("guest"))


BEFORE_CONNECT = {
    # first byte 0xE0 = DISCONNECT, so the garbage is never a (slow) CONNECT
    "random-bytes-1": b"\xe0" + _random_bytes(1),
    "random-bytes-2": b"\x30\x05" + _random_bytes(2),
    "http-request": b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "reserved-type-0": b"\x00\x00",
    "publish-first": rawmqtt.publish_packet("a/b", b"x", version=4),
    "subscribe-first": rawmqtt.subscribe_packet(1, [("a/#", 0)], version=4),
    "pingreq-first": rawmqtt.PINGREQ_PACKET,
    "remaining-length-5-bytes": b"\x10\xff\xff\xff\xff\x7f",
    "connect-reserved-flag": _connect_with_flags(0xC3),
    "connect-password-without-username": _connect_with_flags(0x42),
    "connect-bad-flags-nibble": b"\x11" + rawmqtt.connect_packet("x", version=4)[1:],
    "connect-truncated-string": packet(1, 0, rawmqtt.mqtt_str("MQTT") + bytes([4, 2, 0, 60])
                                       + b"\x00\x40abc"),
    "connect-invalid-utf8-client-id": packet(1, 0, rawmqtt.mqtt_str("MQTT") + bytes([4, 2, 0, 60])
                                             + b"\x00\x02\xc3\x28"),
}

AFTER_CONNECT = {
    "reserved-type-0": b"\x00\x00",
    "publish-qos-3": bytes([0x36]) + b"\x06" + rawmqtt.mqtt_str("a/b") + b"\x00\x01"[:1],
    "second-connect": rawmqtt.connect_packet("again", version=4),
    "subscribe-wrong-flags": b"\x80" + rawmqtt.subscribe_packet(1, [("a", 0)], version=4)[1:],
    "subscribe-no-filters": packet(8, 2, b"\x00\x01"),
    "publish-wildcard-topic": rawmqtt.publish_packet("a/+/b", b"x", qos=1, packet_id=1,
                                                     version=4),
    "publish-truncated-topic": packet(3, 0, b"\x00\x64abc"),
    "random-bytes": b"\x00" + _random_bytes(3),
    "auth-in-v311": b"\xf0\x00",
}


@pytest.mark.parametrize("case", list(BEFORE_CONNECT), ids=list(BEFORE_CONNECT))
def test_bad_input_before_connect(broker, clients, case):
    with Traffic(broker, clients):
        c = clients.raw_socket(broker, 4)
        c.try_send(BEFORE_CONNECT[case])
        packets = c.wait_closed(5)
        assert all(p.type == CONNACK and p.reason != 0 for p in packets), packets


@pytest.mark.parametrize("case", list(AFTER_CONNECT), ids=list(AFTER_CONNECT))
def test_bad_input_after_connect_v311(broker, clients, case):
    with Traffic(broker, clients):
        c = clients.raw(broker, uid("bad"), version=4)
        c.try_send(AFTER_CONNECT[case])
        packets = c.wait_closed(5)
        assert all(p.type != PUBACK for p in packets), packets


V5_AFTER_CONNECT = {
    "reserved-type-0": b"\x00\x00",
    "publish-qos-3": bytes([0x36]) + b"\x07" + rawmqtt.mqtt_str("a/b") + b"\x00\x01\x00",
    "second-connect": rawmqtt.connect_packet("again", version=5),
    "publish-wildcard-topic": rawmqtt.publish_packet("a/#", b"x", qos=1, packet_id=1),
    "bad-property-id": packet(3, 0, rawmqtt.mqtt_str("a/b") + b"\x02\x7f\x00"),
    "properties-length-overflows": packet(3, 0, rawmqtt.mqtt_str("a/b") + b"\x40\x01\x01"),
    "random-bytes": b"\x00" + _random_bytes(4),
}


@pytest.mark.parametrize("case", list(V5_AFTER_CONNECT), ids=list(V5_AFTER_CONNECT))
def test_bad_input_after_connect_v5(broker, clients, case):
    with Traffic(broker, clients, protocol=V5):
        c = clients.raw(broker, uid("bad"), version=5)
        c.try_send(V5_AFTER_CONNECT[case])
        packets = c.wait_closed(5)
        assert all(p.type != PUBACK for p in packets), packets
        for p in packets:
            if p.type == rawmqtt.DISCONNECT:
                assert p.reason >= 0x80, packets


def test_many_bad_connections_at_once(broker, clients):
    with Traffic(broker, clients):
        bad = [clients.raw_socket(broker, 4) for _ in range(20)]
        for i, c in enumerate(bad):
            c.try_send(b"\xe0" + _random_bytes(100 + i, 512))
        for c in bad:
            c.wait_closed(5)


def test_half_open_connection_does_not_block_others(broker, clients):
    """A client that sends half a packet and stalls only holds its own connection."""
    with Traffic(broker, clients):
        c = clients.raw(broker, uid("half"), version=4)
        full = rawmqtt.publish_packet("half/t", b"y" * 100, qos=1, packet_id=3, version=4)
        c.send(full[:20])
        time.sleep(1.0)
    assert c.is_open(0.1)
