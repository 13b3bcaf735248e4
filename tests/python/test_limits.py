"""Configured limits: packet size, connect timeout, CONNECT size, connection count, subscriptions
per session, topic length and levels, queue overflow. Each test starts its own broker with a
small limit in a TOML config."""

import time

import pytest
import rawmqtt
from mqttc import V5, V311, props, uid
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import CONNACK, DISCONNECT, PUBACK, PUBLISH, Closed, RawClient
from test_management import metric

PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
SERVER_BUSY = 0x89
TOPIC_NAME_INVALID = 0x90
TOPIC_FILTER_INVALID = 0x8F
V3_SUBACK_FAILURE = 0x80


def assert_pubsub_works(broker, clients, protocol=V5):
    topic = uid("alive") + "/t"
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    sub.subscribe(topic, 1)
    pub.publish(topic, b"still working", 1)
    assert sub.expect_one().payload == b"still working"
    sub.disconnect()
    pub.disconnect()


# -- max_packet_size ---------------------------------------------------------------------------

@pytest.fixture
def small_packets(make_broker):
    # FerryMQ requires max_connect_packet_size <= max_packet_size.
    return make_broker(limits={"max_packet_size": 1024, "max_connect_packet_size": 1024})


def test_v5_packet_above_max_packet_size_is_rejected(small_packets, clients):
    b = small_packets
    watcher = clients.connect(b, protocol=V5)
    topic = uid("big") + "/t"
    watcher.subscribe(topic, 1)
    c = clients.raw(b, uid("big"), version=5)
    assert c.connack.properties.get("MaximumPacketSize") == 1024
    c.publish(topic, b"ok", qos=1)
    assert c.expect(PUBACK).reason == 0
    assert watcher.expect_one().payload == b"ok"
    c.try_send(rawmqtt.publish_packet(topic, b"x" * 2000, qos=1, packet_id=9))
    packets = c.wait_closed(5)
    assert all(p.type != PUBACK for p in packets), packets
    watcher.expect_none(0.3)
    # Other clients are unaffected.
    assert_pubsub_works(b, clients)


def test_v5_packet_too_large_disconnect_reason(small_packets, clients):
    c = clients.raw(small_packets, uid("big"), version=5)
    c.try_send(rawmqtt.publish_packet(uid("big") + "/t", b"x" * 2000, qos=1, packet_id=9))
    packets = c.wait_closed(5)
    assert [p.type for p in packets] == [DISCONNECT], packets
    assert packets[0].reason == PACKET_TOO_LARGE


def test_v311_packet_above_max_packet_size_closes(small_packets, clients):
    c = clients.raw(small_packets, uid("big"), version=4)
    c.try_send(rawmqtt.publish_packet("big/t", b"x" * 2000, qos=1, packet_id=9, version=4))
    assert c.wait_closed(5) == []
    assert_pubsub_works(small_packets, clients, V311)


def test_announced_header_alone_is_enough_to_reject(small_packets, clients):
    """Only the fixed header of an oversized packet is sent: the broker must not wait for the
    body it is never going to accept."""
    c = clients.raw(small_packets, uid("hdr"), version=4)
    c.send(bytes([0x32]) + rawmqtt.varint(10_000_000))
    assert c.wait_closed(5) == []


def test_message_just_below_the_limit_is_delivered(small_packets, clients):
    topic = uid("big") + "/t"
    sub = clients.connect(small_packets, protocol=V311)
    sub.subscribe(topic, 1)
    pub = clients.connect(small_packets, protocol=V311)
    pub.publish(topic, b"y" * 900, 1)
    assert sub.expect_one().payload == b"y" * 900


# -- connect timeout ---------------------------------------------------------------------------

@pytest.fixture
def quick_timeout(make_broker):
    return make_broker(mqtt={"connect_timeout_secs": 2})


@pytest.mark.ferrymq_only  # mqtt.connect_timeout_secs is FerryMQ's knob
def test_silent_socket_closed_after_connect_timeout(quick_timeout, clients):
    c = clients.raw_socket(quick_timeout)
    start = time.monotonic()
    assert c.wait_closed(2 + 4) == []
    assert time.monotonic() - start >= 1.0  # not closed straight away
    assert_pubsub_works(quick_timeout, clients)


@pytest.mark.ferrymq_only  # mqtt.connect_timeout_secs is FerryMQ's knob
def test_trickled_connect_does_not_extend_the_deadline(quick_timeout, clients):
    c = clients.raw_socket(quick_timeout)
    data = rawmqtt.connect_packet(uid("slow"), version=5, password="g" * 40)
    assert len(data) * 0.5 > 2 + 4  # trickling all of it would take well past the deadline
    start = time.monotonic()
    closed = False
    for byte in data:
        if not c.try_send(bytes([byte])):
            closed = True
            break
        if not c.is_open(0.5):
            closed = True
            break
        assert time.monotonic() - start < 2 + 4, "still open well after the connect timeout"
    assert closed, "the whole CONNECT was trickled in without the connection being closed"
    assert time.monotonic() - start < 2 + 4


def test_connect_in_time_is_not_affected_by_connect_timeout(quick_timeout, clients):
    c = clients.raw(quick_timeout, uid("ok"), version=5)
    time.sleep(2.5)
    c.send(rawmqtt.PINGREQ_PACKET)
    assert c.expect(rawmqtt.PINGRESP).type == rawmqtt.PINGRESP


# -- max_connect_packet_size -------------------------------------------------------------------

@pytest.mark.ferrymq_only  # limits.max_connect_packet_size is FerryMQ's knob
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_connect_larger_than_max_connect_packet_size_is_refused(make_broker, clients, version):
    b = make_broker(limits={"max_connect_packet_size": 1024})
    c = clients.raw_socket(b, version)
    c.try_send(rawmqtt.connect_packet(uid("huge"), version=version,
                                      will={"topic": "w", "payload": b"w" * 4000}))
    packets = c.wait_closed(5)
    assert all(p.type == CONNACK and p.body[1] != 0 for p in packets), packets
    # A normal-sized CONNECT still works.
    ok = clients.raw(b, uid("small"), version=version)
    assert ok.connack.reason == 0


# -- max_connections ---------------------------------------------------------------------------

def _connect_outcome(broker, version=5):
    """'ok', or a description of the refusal (CONNACK code / closed)."""
    c = RawClient(broker.host, broker.port, version=version)
    try:
        c.send(rawmqtt.connect_packet(uid("n"), version=version))
        p = c.recv(5)
        if p.type == CONNACK and p.reason == 0:
            return "ok", c
        c.close()
        return ("connack", p.reason) if p.type == CONNACK else ("other", p.type), None
    except (Closed, OSError):
        c.close()
        return ("closed", None), None


def _hold(broker, clients, version=5):
    """A connection that counts against max_connections. Retries briefly: the readiness probe's
    connection may still be counted for a moment after the broker started."""
    deadline = time.monotonic() + 5
    while True:
        outcome, c = _connect_outcome(broker, version)
        if outcome == "ok":
            clients.made.append(c)
            return c
        assert time.monotonic() < deadline, f"could not connect: {outcome}"
        time.sleep(0.2)


def test_max_connections(make_broker, clients):
    b = make_broker(limits={"max_connections": 3})
    held = [_hold(b, clients) for _ in range(3)]
    outcome, extra = _connect_outcome(b)
    assert outcome != "ok", "the 4th connection was accepted with max_connections = 3"
    kind, code = outcome
    assert kind in ("connack", "closed"), outcome
    if kind == "connack":
        assert code in (QUOTA_EXCEEDED, SERVER_BUSY), outcome
    # The existing connections are unaffected.
    for c in held:
        c.send(rawmqtt.PINGREQ_PACKET)
        assert c.expect(rawmqtt.PINGRESP).type == rawmqtt.PINGRESP
    # Closing one makes room again (the broker may take a moment to notice).
    held[0].disconnect(0)
    deadline = time.monotonic() + 5
    while True:
        outcome, extra = _connect_outcome(b)
        if outcome == "ok":
            extra.close()
            break
        assert time.monotonic() < deadline, f"no room after a disconnect: {outcome}"
        time.sleep(0.2)


def test_max_connections_v3(make_broker, clients):
    b = make_broker(limits={"max_connections": 2})
    _hold(b, clients, 4)
    _hold(b, clients, 4)
    outcome, _ = _connect_outcome(b, version=4)
    assert outcome != "ok"
    kind, code = outcome
    assert kind in ("connack", "closed"), outcome
    if kind == "connack":
        assert code in (3, 5), outcome  # server unavailable / not authorized


# -- max_subscriptions_per_session -------------------------------------------------------------

@pytest.mark.ferrymq_only  # limits.max_subscriptions_per_session is FerryMQ's knob
def test_max_subscriptions_per_session_v5(make_broker, clients):
    b = make_broker(limits={"max_subscriptions_per_session": 2})
    c = clients.raw(b, uid("subs"), version=5)
    base = uid("subs")
    ack = c.subscribe([(f"{base}/a", 1), (f"{base}/b", 1), (f"{base}/c", 1)])
    assert ack.codes == [1, 1, QUOTA_EXCEEDED]
    ack = c.subscribe([(f"{base}/d", 0)])
    assert ack.codes == [QUOTA_EXCEEDED]
    # Re-subscribing to an existing filter is a replacement, not an extra subscription.
    assert c.subscribe([(f"{base}/a", 2)]).codes == [2]
    # The granted subscriptions work.
    c.publish(f"{base}/b", b"x", qos=0)
    assert c.expect(PUBLISH).topic == f"{base}/b"


@pytest.mark.ferrymq_only  # limits.max_subscriptions_per_session is FerryMQ's knob
def test_max_subscriptions_per_session_v3(make_broker, clients):
    b = make_broker(limits={"max_subscriptions_per_session": 2})
    c = clients.raw(b, uid("subs"), version=4)
    base = uid("subs")
    ack = c.subscribe([(f"{base}/a", 1), (f"{base}/b", 2), (f"{base}/c", 0)])
    assert ack.codes == [1, 2, V3_SUBACK_FAILURE]


@pytest.mark.ferrymq_only  # limits.max_subscriptions_per_session is FerryMQ's knob
def test_unsubscribe_frees_a_subscription_slot(make_broker, clients):
    b = make_broker(limits={"max_subscriptions_per_session": 1})
    c = clients.connect(b, protocol=V5)
    assert c.subscribe("x/1", 1) == [1]
    assert c.subscribe("x/2", 1) == [QUOTA_EXCEEDED]
    c.unsubscribe("x/1")
    assert c.subscribe("x/2", 1) == [1]


# -- topic length and levels -------------------------------------------------------------------

@pytest.fixture
def topic_limits(make_broker):
    return make_broker(limits={"max_topic_length": 64, "max_topic_levels": 4})


@pytest.mark.ferrymq_only  # limits.max_topic_length / max_topic_levels are FerryMQ's knobs
@pytest.mark.parametrize("topic", ["t/" + "x" * 80, "a/b/c/d/e"], ids=["length", "levels"])
def test_v5_publish_to_invalid_topic_disconnects(topic_limits, clients, topic):
    c = clients.raw(topic_limits, uid("tl"), version=5)
    c.publish("a/b/c/d", b"fine", qos=1)   # exactly at the limits
    assert c.expect(PUBACK).reason in (0, 0x10)
    c.try_send(rawmqtt.publish_packet(topic, b"x", qos=1, packet_id=5))
    packets = c.wait_closed(5)
    assert [p.type for p in packets] == [DISCONNECT], packets
    assert packets[0].reason == TOPIC_NAME_INVALID
    assert_pubsub_works(topic_limits, clients)


@pytest.mark.ferrymq_only  # limits.max_topic_length / max_topic_levels are FerryMQ's knobs
@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_subscribe_to_invalid_filter_fails(topic_limits, clients, version):
    c = clients.raw(topic_limits, uid("tl"), version=version)
    ack = c.subscribe([("ok/+/#", 1), ("f/" + "x" * 80, 1), ("a/b/c/d/e", 1), ("a/+/c/#", 1)])
    bad = TOPIC_FILTER_INVALID if version == 5 else V3_SUBACK_FAILURE
    assert ack.codes == [1, bad, bad, 1]
    assert c.is_open(0.3)


@pytest.mark.ferrymq_only  # limits.max_topic_length / max_topic_levels are FerryMQ's knobs
def test_v311_publish_to_invalid_topic_closes(topic_limits, clients):
    c = clients.raw(topic_limits, uid("tl"), version=4)
    c.try_send(rawmqtt.publish_packet("a/b/c/d/e/f", b"x", qos=1, packet_id=5, version=4))
    assert all(p.type != PUBACK for p in c.wait_closed(5))


# -- queue overflow ----------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_offline_queue_overflow(make_broker, clients, protocol):
    limit = 5
    b = make_broker(limits={"max_queued_messages": limit})
    cid = uid("q")
    topic = uid("q") + "/t"
    connect_props = props(PacketTypes.CONNECT, SessionExpiryInterval=300) if protocol == V5 \
        else None
    s = clients.new(b, cid, protocol=protocol, clean=protocol == V5)
    s.connect(properties=connect_props)
    s.subscribe(topic, 1)
    s.disconnect()

    pub = clients.connect(b, protocol=protocol)
    for i in range(30):
        pub.publish(topic, f"{i}".encode(), 1)

    s2 = clients.new(b, cid, protocol=protocol, clean=False)
    assert s2.connect(properties=connect_props).session_present is True
    got = [m.payload for m in s2.drain(1.0)]
    assert 1 <= len(got) <= limit, got
    assert len(set(got)) == len(got)
    # The broker and the session keep working.
    pub.publish(topic, b"after", 1)
    assert s2.expect_one().payload == b"after"
    assert_pubsub_works(b, clients, protocol)


def test_qos0_publisher_is_not_held_back_by_a_subscriber_that_reads_nothing(make_broker, clients):
    """QoS 0 may be lost: a subscriber whose client reads nothing (a browser tab on a dead
    link, say) keeps its newest messages and loses older ones, and never slows its publishers
    down, although QoS 1/2 publishers would wait for it (back-pressure; an hour here)."""
    b = make_broker(limits={"max_queued_messages": 10,
                            "publish_backpressure_timeout_secs": 3600})
    topic = uid("deaf") + "/t"
    deaf = clients.raw(b, uid("deaf"))
    assert deaf.subscribe([(topic, rawmqtt.sub_options(0))]).codes == [0]
    pub = clients.connect(b, protocol=V311)
    # 16 MB: far more than the socket buffers between the broker and the subscriber hold.
    n, filler = 4000, b"x" * 4096
    for i in range(n):
        pub.c.publish(topic, b"%06d:" % i + filler, 0)
    # A QoS 1 round trip behind them: answered only once the broker has read them all.
    assert pub.publish(uid("probe") + "/t", b"after", 1, timeout=30) == 0

    got = []
    while (p := deaf.recv_or_none(2.0)) is not None:
        if p.type == PUBLISH:
            got.append(int(p.payload.split(b":")[0]))
    assert got == sorted(got), "delivered in order"
    assert len(got) < n, "the subscriber read nothing for a while: older messages were dropped"
    assert got[-1] == n - 1, "the newest message is kept"
    # QoS 0 publishers wait only for the first 5 ms of a subscriber's client being behind
    # (and while the broker, not the client, is behind), not 5 ms per message: 60-80 of the
    # 4,000 held their publisher back when measured, about 3,100 when the hold restarted for
    # every message.
    blocked = metric(b, "publishes_blocked_total")
    assert blocked < n // 10, f"{blocked} of {n} QoS 0 messages held their publisher back"
    assert_pubsub_works(b, clients)
