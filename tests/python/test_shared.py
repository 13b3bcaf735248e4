"""Shared subscriptions ($share/group/filter)."""

import time

import pytest
from mqttc import V5, V311, uid
from rawmqtt import PUBLISH

PROTOCOLS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]
N = 20


def payloads(msgs):
    return [m.payload for m in msgs]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_message_to_exactly_one_member(broker, clients, protocol):
    topic = uid("shared") + "/t"
    a = clients.connect(broker, protocol=protocol)
    b = clients.connect(broker, protocol=protocol)
    plain = clients.connect(broker, protocol=protocol)
    assert a.subscribe(f"$share/g1/{topic}", 1) == [1]
    assert b.subscribe(f"$share/g1/{topic}", 1) == [1]
    plain.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=protocol)
    expected = [f"m{i}".encode() for i in range(N)]
    for p in expected:
        pub.publish(topic, p, 1)

    assert sorted(payloads(plain.expect(N))) == sorted(expected)
    got_a = payloads(a.drain(0.7))
    got_b = payloads(b.drain(0.1))
    assert len(got_a) + len(got_b) == N, (got_a, got_b)
    assert sorted(got_a + got_b) == sorted(expected)
    # Round robin: each member gets about half.
    assert N // 4 <= len(got_a) <= 3 * N // 4, (len(got_a), len(got_b))
    assert N // 4 <= len(got_b) <= 3 * N // 4, (len(got_a), len(got_b))


def test_two_groups_each_get_every_message(broker, clients):
    topic = uid("shared") + "/t"
    g1 = [clients.connect(broker, protocol=V5) for _ in range(2)]
    g2 = [clients.connect(broker, protocol=V5) for _ in range(2)]
    for c in g1:
        c.subscribe(f"$share/one/{topic}", 1)
    for c in g2:
        c.subscribe(f"$share/two/{topic}", 1)
    pub = clients.connect(broker, protocol=V5)
    expected = [f"m{i}".encode() for i in range(10)]
    for p in expected:
        pub.publish(topic, p, 1)
    for group in (g1, g2):
        got = payloads(group[0].drain(0.7)) + payloads(group[1].drain(0.1))
        assert sorted(got) == sorted(expected)


def test_shared_wildcard_filter(broker, clients):
    base = uid("sharedw")
    a = clients.connect(broker, protocol=V5)
    b = clients.connect(broker, protocol=V5)
    a.subscribe(f"$share/gw/{base}/#", 1)
    b.subscribe(f"$share/gw/{base}/+/x", 1)  # a different filter is a different group entry
    pub = clients.connect(broker, protocol=V5)
    pub.publish(f"{base}/k/x", b"both filters", 1)
    pub.publish(f"{base}/k/y", b"only #", 1)
    got_a = payloads(a.drain(0.7))
    got_b = payloads(b.drain(0.1))
    # Each (group, filter) pair is its own shared subscription: a gets both via '#'.
    assert sorted(got_a) == [b"both filters", b"only #"]
    assert got_b == [b"both filters"]


def test_single_member_gets_everything(broker, clients):
    topic = uid("shared1") + "/t"
    a = clients.connect(broker, protocol=V5)
    a.subscribe(f"$share/solo/{topic}", 2)
    pub = clients.connect(broker, protocol=V5)
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 2)
    got = a.expect(5)
    assert [m.payload for m in got] == [f"{i}".encode() for i in range(5)]
    assert all(m.qos == 2 for m in got)


def test_member_leaving_the_group(broker, clients):
    topic = uid("sharedl") + "/t"
    a = clients.connect(broker, protocol=V5)
    b = clients.connect(broker, protocol=V5)
    a.subscribe(f"$share/gl/{topic}", 1)
    b.subscribe(f"$share/gl/{topic}", 1)
    a.unsubscribe(f"$share/gl/{topic}")
    pub = clients.connect(broker, protocol=V5)
    for i in range(6):
        pub.publish(topic, f"{i}".encode(), 1)
    assert len(b.expect(6)) == 6
    a.expect_none(0.3)


@pytest.mark.ferrymq_only  # Mosquitto keeps a departed member's unacked messages in its session
def test_unacked_messages_of_departed_member_go_to_another(broker, clients):
    topic = uid("sharedr") + "/t"
    n = 10
    # Member A acknowledges nothing, then drops its connection.
    a = clients.raw(broker, uid("lazy"), version=5)
    assert a.subscribe([(f"$share/gr/{topic}", 1)]).codes == [1]
    b = clients.connect(broker, protocol=V5)
    b.subscribe(f"$share/gr/{topic}", 1)
    pub = clients.connect(broker, protocol=V5)
    expected = [f"m{i}".encode() for i in range(n)]
    for p in expected:
        pub.publish(topic, p, 1)
    first = a.expect(PUBLISH)
    assert first.payload in expected
    a.abort()
    got = set()
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        got.update(payloads(b.drain(0.5)))
    assert got == set(expected), f"missing {sorted(set(expected) - got)}"
