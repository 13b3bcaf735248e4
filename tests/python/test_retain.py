"""Retained messages: set, replace, delete, wildcard delivery, v5 Retain Handling."""

import pytest
from mqttc import V5, V311, props, uid
from paho.mqtt.packettypes import PacketTypes

PROTOCOLS = [pytest.param(V311, id="v311"), pytest.param(V5, id="v5")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_set_replace_delete(broker, clients, protocol):
    topic = uid("ret") + "/t"
    pub = clients.connect(broker, protocol=protocol)

    pub.publish(topic, b"first", 1, retain=True)
    s1 = clients.connect(broker, protocol=protocol)
    s1.subscribe(topic, 1)
    m = s1.expect_one()
    assert (m.topic, m.payload, m.retain, m.qos) == (topic, b"first", True, 1)
    s1.expect_none(0.3)

    pub.publish(topic, b"second", 1, retain=True)
    assert s1.expect_one().retain is False  # live delivery
    s2 = clients.connect(broker, protocol=protocol)
    s2.subscribe(topic, 1)
    m = s2.expect_one()
    assert (m.payload, m.retain) == (b"second", True)
    s2.expect_none(0.3)

    pub.publish(topic, b"", 1, retain=True)  # delete
    m = s1.expect_one()  # the empty retained publish is still forwarded live
    assert m.payload == b""
    s3 = clients.connect(broker, protocol=protocol)
    s3.subscribe(topic, 1)
    s3.expect_none(0.7)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retained_to_wildcard_subscribers(broker, clients, protocol):
    base = uid("retw")
    pub = clients.connect(broker, protocol=protocol)
    expected = {f"{base}/a": b"A", f"{base}/b/c": b"BC", f"{base}/b/d": b"BD"}
    for t, p in expected.items():
        pub.publish(t, p, 1, retain=True)
    pub.publish(f"{base}/zz", b"", 1, retain=True)  # deleting a non-existent one is harmless

    s = clients.connect(broker, protocol=protocol)
    s.subscribe(f"{base}/#", 1)
    got = s.expect(3)
    assert {m.topic: m.payload for m in got} == expected
    assert all(m.retain for m in got)
    s.expect_none(0.3)

    s2 = clients.connect(broker, protocol=protocol)
    s2.subscribe(f"{base}/b/+", 1)
    got = s2.expect(2)
    assert {m.topic: m.payload for m in got} == {f"{base}/b/c": b"BC", f"{base}/b/d": b"BD"}
    s2.expect_none(0.3)

    for t in expected:
        pub.publish(t, b"", 1, retain=True)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_retained_qos_is_min_of_stored_and_subscription(broker, clients, protocol):
    base = uid("retq")
    pub = clients.connect(broker, protocol=protocol)
    pub.publish(f"{base}/q2", b"two", 2, retain=True)
    pub.publish(f"{base}/q0", b"zero", 0, retain=True)
    s = clients.connect(broker, protocol=protocol)
    s.subscribe(f"{base}/q2", 1)
    m = s.expect_one()
    assert (m.payload, m.qos, m.retain) == (b"two", 1, True)
    s.subscribe(f"{base}/q0", 2)
    m = s.expect_one()
    assert (m.payload, m.qos, m.retain) == (b"zero", 0, True)
    s3 = clients.connect(broker, protocol=protocol)
    s3.subscribe(f"{base}/q2", 2)
    assert s3.expect_one().qos == 2


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_resubscribe_resends_retained(broker, clients, protocol):
    """v3 always, v5 with Retain Handling 0 (the default)."""
    topic = uid("resub") + "/t"
    pub = clients.connect(broker, protocol=protocol)
    pub.publish(topic, b"kept", 1, retain=True)
    s = clients.connect(broker, protocol=protocol)
    s.subscribe(topic, 1)
    assert s.expect_one().payload == b"kept"
    s.subscribe(topic, 1)
    m = s.expect_one()
    assert (m.payload, m.retain) == (b"kept", True)


def test_retain_handling_1_only_for_new_subscriptions(broker, clients):
    topic = uid("rh1") + "/t"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"kept", 1, retain=True)
    s = clients.connect(broker, protocol=V5)
    s.subscribe(topic, 1, retain_handling=1)
    m = s.expect_one()
    assert (m.payload, m.retain) == (b"kept", True)
    s.subscribe(topic, 1, retain_handling=1)  # already exists: nothing sent
    s.expect_none(0.7)
    s.unsubscribe(topic)
    s.subscribe(topic, 1, retain_handling=1)  # new again
    assert s.expect_one().payload == b"kept"


def test_retain_handling_2_never_sends_retained(broker, clients):
    topic = uid("rh2") + "/t"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"kept", 1, retain=True)
    s = clients.connect(broker, protocol=V5)
    s.subscribe(topic, 1, retain_handling=2)
    s.expect_none(0.7)
    pub.publish(topic, b"live", 1)
    m = s.expect_one()
    assert (m.payload, m.retain) == (b"live", False)


def test_retain_handling_0_sends_on_every_subscribe(broker, clients):
    topic = uid("rh0") + "/t"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"kept", 1, retain=True)
    s = clients.connect(broker, protocol=V5)
    for _ in range(2):
        s.subscribe(topic, 1, retain_handling=0)
        m = s.expect_one()
        assert (m.payload, m.retain) == (b"kept", True)


def test_retained_message_keeps_v5_properties(broker, clients):
    topic = uid("retp") + "/t"
    pub = clients.connect(broker, protocol=V5)
    p = props(PacketTypes.PUBLISH, ContentType="application/json", PayloadFormatIndicator=1,
              UserProperty=[("k1", "v1"), ("k2", "v2")], ResponseTopic="reply/here",
              CorrelationData=b"\x01\x02")
    pub.publish(topic, b'{"a":1}', 1, retain=True, properties=p)
    s = clients.connect(broker, protocol=V5)
    s.subscribe(topic, 1)
    m = s.expect_one()
    assert m.retain is True
    assert m.prop("ContentType") == "application/json"
    assert m.prop("PayloadFormatIndicator") == 1
    assert m.user_properties == [("k1", "v1"), ("k2", "v2")]
    assert m.prop("ResponseTopic") == "reply/here"
    assert m.prop("CorrelationData") == b"\x01\x02"


def test_retained_delivery_with_subscription_identifier(broker, clients):
    topic = uid("retid") + "/t"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"kept", 1, retain=True)
    s = clients.connect(broker, protocol=V5)
    s.subscribe(topic, 1, sub_id=99)
    m = s.expect_one()
    assert m.retain is True
    assert m.sub_ids == [99]


def test_retained_survives_publisher_disconnect(broker, clients):
    topic = uid("retd") + "/t"
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"stays", 1, retain=True)
    pub.disconnect()
    s = clients.connect(broker, protocol=V311)
    s.subscribe(topic, 0)
    m = s.expect_one()
    assert (m.payload, m.retain, m.qos) == (b"stays", True, 0)
