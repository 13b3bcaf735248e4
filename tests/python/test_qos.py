"""Publish / subscribe with QoS 0, 1, 2 in both directions, overlapping subscriptions, No Local,
Retain As Published."""

import pytest
from mqttc import V5, V311, uid
from rawmqtt import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL

PROTOCOLS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_pubsub_qos_is_min_of_publish_and_subscription(broker, clients, protocol, pub_qos,
                                                       sub_qos):
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    topic = uid("qos") + f"/p{pub_qos}/s{sub_qos}"
    assert sub.subscribe(topic, sub_qos) == [sub_qos]
    payload = f"payload {pub_qos}->{sub_qos}".encode()
    assert pub.publish(topic, payload, pub_qos) == 0
    m = sub.expect_one()
    assert m.topic == topic
    assert m.payload == payload
    assert m.qos == min(pub_qos, sub_qos)
    assert m.retain is False
    sub.expect_none(0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("qos", [1, 2])
def test_many_messages_in_order_exactly_once(broker, clients, protocol, qos):
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    topic = uid("order") + "/t"
    sub.subscribe(topic, qos)
    n = 50
    for i in range(n):
        pub.c.publish(topic, f"{i}".encode(), qos)
    got = sub.expect(n, timeout=10)
    assert [m.payload for m in got] == [f"{i}".encode() for i in range(n)]
    assert all(m.qos == qos for m in got)
    sub.expect_none(0.3)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wildcards(broker, clients, protocol):
    base = uid("wild")
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    sub.subscribe(f"{base}/+/temp", 1)
    sub.subscribe(f"{base}/floor/#", 1)
    pub.publish(f"{base}/kitchen/temp", b"a", 1)      # matches +
    pub.publish(f"{base}/kitchen/humidity", b"b", 1)  # matches nothing
    pub.publish(f"{base}/floor", b"c", 1)             # '#' also matches the parent level
    pub.publish(f"{base}/floor/1/room", b"d", 1)      # matches #
    got = sub.expect(3)
    assert sorted((m.topic, m.payload) for m in got) == sorted([
        (f"{base}/kitchen/temp", b"a"), (f"{base}/floor", b"c"), (f"{base}/floor/1/room", b"d")])
    sub.expect_none(0.5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unsubscribe_stops_delivery(broker, clients, protocol):
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    topic = uid("unsub") + "/t"
    sub.subscribe(topic, 1)
    pub.publish(topic, b"before", 1)
    assert sub.expect_one().payload == b"before"
    sub.unsubscribe(topic)
    pub.publish(topic, b"after", 1)
    sub.expect_none(0.5)


@pytest.mark.ferrymq_only  # Mosquitto 2.0 sends one copy per matching subscription
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_overlapping_subscriptions_one_copy_at_highest_qos(broker, clients, protocol):
    base = uid("overlap")
    sub = clients.connect(broker, protocol=protocol)
    pub = clients.connect(broker, protocol=protocol)
    sub.subscribe(f"{base}/a/+", 1)
    sub.subscribe(f"{base}/#", 2)
    sub.subscribe(f"{base}/a/b", 0)
    pub.publish(f"{base}/a/b", b"q2", 2)
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"q2", 2)
    sub.expect_none(0.5)
    pub.publish(f"{base}/a/b", b"q1", 1)   # capped by the publish QoS
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"q1", 1)
    sub.expect_none(0.5)
    pub.publish(f"{base}/a/c", b"two subs", 2)  # a/+ (1) and # (2)
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"two subs", 2)
    sub.expect_none(0.5)


@pytest.mark.ferrymq_only  # Mosquitto 2.0 sends one copy per matching subscription
def test_overlapping_subscriptions_carry_all_subscription_identifiers(broker, clients):
    base = uid("subids")
    sub = clients.connect(broker, protocol=V5)
    pub = clients.connect(broker, protocol=V5)
    sub.subscribe(f"{base}/+", 1, sub_id=11)
    sub.subscribe(f"{base}/#", 0, sub_id=22)
    sub.subscribe(f"{base}/x/y", 2)  # no identifier: matches nothing below
    pub.publish(f"{base}/x", b"m", 2)
    m = sub.expect_one()
    assert m.qos == 1
    assert sorted(m.sub_ids) == [11, 22]
    sub.expect_none(0.5)


def test_subscription_identifier_single(broker, clients):
    sub = clients.connect(broker, protocol=V5)
    pub = clients.connect(broker, protocol=V5)
    topic = uid("subid") + "/t"
    sub.subscribe(topic, 1, sub_id=7)
    pub.publish(topic, b"x", 1)
    assert sub.expect_one().sub_ids == [7]


def test_no_local(broker, clients):
    topic = uid("nolocal") + "/t"
    me = clients.connect(broker, protocol=V5)
    other = clients.connect(broker, protocol=V5)
    me.subscribe(topic, 1, no_local=True)
    other.subscribe(topic, 1)
    me.publish(topic, b"mine", 1)
    assert other.expect_one().payload == b"mine"
    me.expect_none(0.5)
    other.publish(topic, b"theirs", 1)
    assert me.expect_one().payload == b"theirs"
    assert other.expect_one().payload == b"theirs"  # no No Local on that subscription


def test_without_no_local_own_messages_come_back(broker, clients):
    topic = uid("local") + "/t"
    me = clients.connect(broker, protocol=V5)
    me.subscribe(topic, 1)
    me.publish(topic, b"echo", 1)
    assert me.expect_one().payload == b"echo"


def test_no_local_only_excludes_that_subscription(broker, clients):
    base = uid("nolocal2")
    me = clients.connect(broker, protocol=V5)
    me.subscribe(f"{base}/#", 1, no_local=True, sub_id=1)
    me.subscribe(f"{base}/t", 1, sub_id=2)
    me.publish(f"{base}/t", b"own", 1)
    m = me.expect_one()
    assert m.payload == b"own"
    assert m.sub_ids == [2]
    me.expect_none(0.5)


def test_retain_as_published_on_live_delivery(broker, clients):
    topic = uid("rap") + "/t"
    rap = clients.connect(broker, protocol=V5)
    plain = clients.connect(broker, protocol=V5)
    pub = clients.connect(broker, protocol=V5)
    rap.subscribe(topic, 1, retain_as_published=True)
    plain.subscribe(topic, 1)
    pub.publish(topic, b"retained live", 1, retain=True)
    assert rap.expect_one().retain is True
    assert plain.expect_one().retain is False
    pub.publish(topic, b"not retained", 1, retain=False)
    assert rap.expect_one().retain is False
    assert plain.expect_one().retain is False
    pub.publish(topic, b"", 1, retain=True)  # clean up the retained message


def test_v311_retained_publish_is_not_flagged_on_live_delivery(broker, clients):
    topic = uid("live") + "/t"
    sub = clients.connect(broker, protocol=V311)
    pub = clients.connect(broker, protocol=V311)
    sub.subscribe(topic, 1)
    pub.publish(topic, b"r", 1, retain=True)
    m = sub.expect_one()
    assert (m.payload, m.retain) == (b"r", False)
    pub.publish(topic, b"", 1, retain=True)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_raw_qos2_flow_from_publisher(broker, clients, version):
    """PUBLISH -> PUBREC, PUBREL -> PUBCOMP; a retransmitted PUBLISH (DUP) before PUBREL is not
    delivered twice."""
    topic = uid("q2in") + "/t"
    sub = clients.connect(broker, protocol=V5 if version == 5 else V311)
    sub.subscribe(topic, 2)
    pub = clients.raw(broker, uid("rawpub"), version=version)
    pub.publish(topic, b"exactly once", qos=2, packet_id=42)
    rec = pub.expect(PUBREC)
    assert rec.packet_id == 42 and rec.reason in (0, 0x10)
    pub.publish(topic, b"exactly once", qos=2, packet_id=42, dup=True)
    rec2 = pub.expect(PUBREC)
    assert rec2.packet_id == 42
    pub.ack(PUBREL, 42)
    comp = pub.expect(PUBCOMP)
    assert comp.packet_id == 42 and comp.reason == 0
    m = sub.expect_one()
    assert (m.payload, m.qos) == (b"exactly once", 2)
    sub.expect_none(0.5)
    # The packet id is free again: a new message with the same id is a new message.
    pub.publish(topic, b"second", qos=2, packet_id=42)
    pub.expect(PUBREC)
    pub.ack(PUBREL, 42)
    pub.expect(PUBCOMP)
    assert sub.expect_one().payload == b"second"


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_raw_qos2_flow_to_subscriber(broker, clients, version):
    topic = uid("q2out") + "/t"
    sub = clients.raw(broker, uid("rawsub"), version=version)
    assert sub.subscribe([(topic, 2)]).codes == [2]
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"to raw", 2)
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos, p.dup) == (topic, b"to raw", 2, False)
    sub.ack(PUBREC, p.packet_id)
    rel = sub.expect(PUBREL)
    assert rel.packet_id == p.packet_id
    assert rel.flags == 0x02
    sub.ack(PUBCOMP, p.packet_id)
    assert sub.recv_or_none(0.5) is None


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_raw_qos1_flow(broker, clients, version):
    topic = uid("q1") + "/t"
    sub = clients.raw(broker, uid("rawsub"), version=version)
    assert sub.subscribe([(topic, 1)]).codes == [1]
    pub = clients.raw(broker, uid("rawpub"), version=version)
    pub.publish(topic, b"one", qos=1, packet_id=7)
    ack = pub.expect(PUBACK)
    assert ack.packet_id == 7 and ack.reason == 0
    p = sub.expect(PUBLISH)
    assert (p.topic, p.payload, p.qos) == (topic, b"one", 1)
    assert p.packet_id != 0
    sub.ack(PUBACK, p.packet_id)
    assert sub.recv_or_none(0.3) is None


def test_binary_payload_round_trip(broker, clients):
    topic = uid("bin") + "/t"
    sub = clients.connect(broker, protocol=V5)
    pub = clients.connect(broker, protocol=V311)
    sub.subscribe(topic, 1)
    payload = bytes(range(256)) * 4 + b"\x00\xff"
    pub.publish(topic, payload, 1)
    assert sub.expect_one().payload == payload


def test_large_payload_round_trip(broker, clients):
    topic = uid("big") + "/t"
    sub = clients.connect(broker, protocol=V311)
    pub = clients.connect(broker, protocol=V311)
    sub.subscribe(topic, 1)
    payload = bytes((i * 7) & 0xFF for i in range(512 * 1024))
    pub.publish(topic, payload, 1, timeout=10)
    assert sub.expect_one(timeout=10).payload == payload


def test_empty_payload(broker, clients):
    topic = uid("empty") + "/t"
    sub = clients.connect(broker, protocol=V5)
    pub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub.publish(topic, b"", 1)
    assert sub.expect_one().payload == b""


def test_v311_and_v5_interoperate(broker, clients):
    topic = uid("interop") + "/t"
    v3 = clients.connect(broker, protocol=V311)
    v5 = clients.connect(broker, protocol=V5)
    v3.subscribe(topic, 2)
    v5.subscribe(topic, 2)
    v3.publish(topic, b"from v3", 2)
    v5.publish(topic, b"from v5", 2)
    assert sorted(m.payload for m in v3.expect(2)) == [b"from v3", b"from v5"]
    assert sorted(m.payload for m in v5.expect(2)) == [b"from v3", b"from v5"]

