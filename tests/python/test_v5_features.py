"""MQTT 5 features: topic aliases, message expiry, Receive Maximum, the client's Maximum Packet
Size, subscription identifiers, request/response, user properties, content type."""

import time

import pytest
from mqttc import V5, V311, props, uid
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import DISCONNECT, PUBACK, PUBLISH, sub_options

TOPIC_ALIAS_INVALID = 0x94
PROTOCOL_ERROR = 0x82


def pub_props(**kw):
    return props(PacketTypes.PUBLISH, **kw)


# -- topic aliases -----------------------------------------------------------------------------

def test_client_to_server_topic_alias(broker, clients):
    topic = uid("alias") + "/long/topic/name"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.raw(broker, uid("ta"), version=5)
    pub.publish(topic, b"sets alias", qos=1, properties={"TopicAlias": 1})
    pub.expect(PUBACK)
    pub.publish("", b"uses alias", qos=1, properties={"TopicAlias": 1})
    pub.expect(PUBACK)
    pub.publish(topic, b"plain", qos=1)
    pub.expect(PUBACK)
    got = sub.expect(3)
    assert [(m.topic, m.payload) for m in got] == [
        (topic, b"sets alias"), (topic, b"uses alias"), (topic, b"plain")]
    # The received messages carry no client-side alias.
    assert all(m.prop("TopicAlias") is None for m in got)


def test_client_topic_alias_can_be_remapped(broker, clients):
    base = uid("alias")
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(f"{base}/#", 1)
    pub = clients.raw(broker, uid("ta"), version=5)
    pub.publish(f"{base}/a", b"1", qos=1, properties={"TopicAlias": 5})
    pub.publish(f"{base}/b", b"2", qos=1, properties={"TopicAlias": 5})
    pub.publish("", b"3", qos=1, properties={"TopicAlias": 5})
    got = sub.expect(3)
    assert [(m.topic, m.payload) for m in got] == [
        (f"{base}/a", b"1"), (f"{base}/b", b"2"), (f"{base}/b", b"3")]


def test_client_topic_alias_up_to_the_announced_maximum(broker, clients):
    topic = uid("alias") + "/max"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.raw(broker, uid("ta"), version=5)
    maximum = pub.connack.properties.get("TopicAliasMaximum", 0)
    assert maximum >= 1
    pub.publish(topic, b"max", qos=1, properties={"TopicAlias": maximum})
    pub.publish("", b"again", qos=1, properties={"TopicAlias": maximum})
    assert [m.payload for m in sub.expect(2)] == [b"max", b"again"]


def test_client_topic_alias_above_maximum_is_a_protocol_error(broker, clients):
    pub = clients.raw(broker, uid("ta"), version=5)
    maximum = pub.connack.properties.get("TopicAliasMaximum", 0)
    pub.publish(uid("alias") + "/over", b"x", qos=1, properties={"TopicAlias": maximum + 1})
    packets = pub.wait_closed(5)
    assert all(p.type != PUBACK for p in packets), packets
    for p in packets:
        if p.type == DISCONNECT:
            assert p.reason in (TOPIC_ALIAS_INVALID, PROTOCOL_ERROR), packets


def test_unknown_client_topic_alias_is_a_protocol_error(broker, clients):
    pub = clients.raw(broker, uid("ta"), version=5)
    pub.publish("", b"x", qos=1, properties={"TopicAlias": 3})
    packets = pub.wait_closed(5)
    assert all(p.type != PUBACK for p in packets), packets


def test_paho_topic_alias_publish(broker, clients):
    topic = uid("alias") + "/paho"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"a", 1, properties=pub_props(TopicAlias=2))
    pub.publish("", b"b", 1, properties=pub_props(TopicAlias=2))
    assert [(m.topic, m.payload) for m in sub.expect(2)] == [(topic, b"a"), (topic, b"b")]


def test_no_server_aliases_without_client_topic_alias_maximum(broker, clients):
    topic = uid("alias") + "/s2c/none"
    sub = clients.raw(broker, uid("nota"), version=5)
    sub.subscribe([(topic, 0)])
    pub = clients.connect(broker, protocol=V5)
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 1)
    for i in range(5):
        p = sub.expect(PUBLISH)
        assert p.topic == topic
        assert "TopicAlias" not in p.properties
        assert p.payload == f"{i}".encode()


def _resolve_aliases(packets, maximum):
    """Resolve server->client aliases like a client would; asserts the rules on the way."""
    aliases, out = {}, []
    for p in packets:
        alias = p.properties.get("TopicAlias")
        if alias is not None:
            assert 1 <= alias <= maximum, f"alias {alias} outside 1..{maximum}"
            if p.topic:
                aliases[alias] = p.topic
            else:
                assert alias in aliases, f"alias {alias} used before it was set"
        else:
            assert p.topic, "empty topic without an alias"
        out.append((p.topic or aliases[alias], p.payload))
    return out


def test_server_aliases_respect_client_maximum(broker, clients):
    """Whether the broker uses aliases is its choice; if it does, they must be within the
    client's maximum and resolvable."""
    base = uid("alias") + "/s2c"
    sub = clients.raw(broker, uid("ta"), version=5, properties={"TopicAliasMaximum": 2})
    sub.subscribe([(f"{base}/#", 0)])
    pub = clients.connect(broker, protocol=V5)
    sent = [(f"{base}/{t}", f"{i}".encode()) for i, t in enumerate("aabbcccab")]
    for t, p in sent:
        pub.publish(t, p, 1)
    got = [sub.expect(PUBLISH) for _ in sent]
    assert _resolve_aliases(got, 2) == sent


@pytest.mark.ferrymq_only  # Mosquitto 2.0 never sends topic aliases
def test_server_uses_topic_aliases_when_allowed(broker, clients):
    topic = uid("alias") + "/s2c/used/with/a/long/topic/name"
    sub = clients.raw(broker, uid("ta"), version=5, properties={"TopicAliasMaximum": 5})
    sub.subscribe([(topic, 0)])
    pub = clients.connect(broker, protocol=V5)
    for i in range(4):
        pub.publish(topic, f"{i}".encode(), 1)
    got = [sub.expect(PUBLISH) for _ in range(4)]
    assert _resolve_aliases(got, 5) == [(topic, f"{i}".encode()) for i in range(4)]
    assert any(p.topic == "" for p in got), "the broker never used a topic alias"


# -- message expiry ----------------------------------------------------------------------------

def test_message_expiry_forwarded(broker, clients):
    topic = uid("exp") + "/live"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"x", 1, properties=pub_props(MessageExpiryInterval=60))
    m = sub.expect_one()
    assert 0 < m.prop("MessageExpiryInterval") <= 60


def test_no_expiry_property_when_publisher_sent_none(broker, clients):
    topic = uid("exp") + "/none"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"x", 1)
    assert sub.expect_one().prop("MessageExpiryInterval") is None


def test_retained_message_expiry_is_decremented(broker, clients):
    topic = uid("exp") + "/retained"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"ages", 1, retain=True, properties=pub_props(MessageExpiryInterval=10))
    time.sleep(2.2)
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    m = sub.expect_one()
    assert m.retain is True
    assert 1 <= m.prop("MessageExpiryInterval") <= 8
    pub.publish(topic, b"", 1, retain=True)


def test_expired_retained_message_is_not_delivered(broker, clients):
    topic = uid("exp") + "/retgone"
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"short", 1, retain=True, properties=pub_props(MessageExpiryInterval=1))
    time.sleep(2.5)
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    sub.expect_none(0.7)


def test_expired_queued_message_is_not_delivered(broker, clients):
    cid = uid("expq")
    topic = uid("exp") + "/queued"
    s = clients.new(broker, cid, protocol=V5)
    s.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"expires", 1, properties=pub_props(MessageExpiryInterval=1))
    pub.publish(topic, b"stays", 1, properties=pub_props(MessageExpiryInterval=100))
    pub.publish(topic, b"forever", 1)
    time.sleep(2.5)
    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect(properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60)
                      ).session_present is True
    got = s2.drain(1.0)
    assert [m.payload for m in got] == [b"stays", b"forever"]
    assert 1 <= got[0].prop("MessageExpiryInterval") <= 98
    assert got[1].prop("MessageExpiryInterval") is None
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


# -- flow control and sizes --------------------------------------------------------------------

def test_client_receive_maximum_is_respected(broker, clients):
    topic = uid("rm") + "/t"
    sub = clients.raw(broker, uid("rm"), version=5, properties={"ReceiveMaximum": 2})
    sub.subscribe([(topic, 1)])
    pub = clients.connect(broker, protocol=V5)
    n = 6
    for i in range(n):
        pub.publish(topic, f"{i}".encode(), 1)
    first = [sub.expect(PUBLISH), sub.expect(PUBLISH)]
    assert [p.payload for p in first] == [b"0", b"1"]
    assert sub.recv_or_none(1.0) is None, "a third message exceeded Receive Maximum 2"
    # Acknowledging releases the rest, in order, all of them.
    got = list(first)
    for p in first:
        sub.ack(PUBACK, p.packet_id)
    while len(got) < n:
        p = sub.expect(PUBLISH)
        sub.ack(PUBACK, p.packet_id)
        got.append(p)
    assert [p.payload for p in got] == [f"{i}".encode() for i in range(n)]


@pytest.mark.ferrymq_only  # Mosquitto 2.0.11 sends two new messages per PUBACK after a full window
def test_client_receive_maximum_sliding_window(broker, clients):
    topic = uid("rm") + "/t"
    sub = clients.raw(broker, uid("rm"), version=5, properties={"ReceiveMaximum": 2})
    sub.subscribe([(topic, 1)])
    pub = clients.connect(broker, protocol=V5)
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 1)
    first = [sub.expect(PUBLISH), sub.expect(PUBLISH)]
    assert [p.payload for p in first] == [b"0", b"1"]
    assert sub.recv_or_none(1.0) is None, "a third message exceeded Receive Maximum 2"
    sub.ack(PUBACK, first[0].packet_id)
    p = sub.expect(PUBLISH)
    assert p.payload == b"2"
    assert sub.recv_or_none(0.7) is None, "more than Receive Maximum 2 in flight"
    sub.ack(PUBACK, first[1].packet_id)
    sub.ack(PUBACK, p.packet_id)
    rest = [sub.expect(PUBLISH), sub.expect(PUBLISH)]
    assert [r.payload for r in rest] == [b"3", b"4"]
    for r in rest:
        sub.ack(PUBACK, r.packet_id)


def test_receive_maximum_does_not_limit_qos0(broker, clients):
    topic = uid("rm0") + "/t"
    sub = clients.raw(broker, uid("rm"), version=5, properties={"ReceiveMaximum": 1})
    sub.subscribe([(topic, 0)])
    pub = clients.connect(broker, protocol=V5)
    for i in range(5):
        pub.publish(topic, f"{i}".encode(), 1)
    assert [sub.expect(PUBLISH).payload for _ in range(5)] == [f"{i}".encode() for i in range(5)]


def test_client_maximum_packet_size_is_respected(broker, clients):
    topic = uid("mps") + "/t"
    small = clients.raw(broker, uid("small"), version=5, properties={"MaximumPacketSize": 256})
    small.subscribe([(topic, 1)])
    big = clients.connect(broker, protocol=V5)
    big.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"a" * 20, 1)
    pub.publish(topic, b"b" * 1000, 1)  # too big for `small`
    pub.publish(topic, b"c" * 20, 1)
    assert [m.payload for m in big.expect(3)] == [b"a" * 20, b"b" * 1000, b"c" * 20]
    got = []
    for _ in range(2):
        p = small.expect(PUBLISH)
        small.ack(PUBACK, p.packet_id)
        got.append(p.payload)
    assert got == [b"a" * 20, b"c" * 20]
    assert small.recv_or_none(0.5) is None


# -- properties passed through -----------------------------------------------------------------

def test_user_properties_in_order(broker, clients):
    topic = uid("up") + "/t"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    ups = [("b", "2"), ("a", "1"), ("b", "3"), ("unicode-ключ", "値"), ("empty", "")]
    pub.publish(topic, b"x", 1, properties=pub_props(UserProperty=ups))
    assert sub.expect_one().user_properties == ups


def test_user_properties_raw(broker, clients):
    topic = uid("up") + "/raw"
    sub = clients.raw(broker, uid("upr"), version=5)
    sub.subscribe([(topic, 0)])
    pub = clients.raw(broker, uid("upp"), version=5)
    ups = [("z", "1"), ("a", "2"), ("z", "3")]
    pub.publish(topic, b"x", qos=0, properties={"UserProperty": ups})
    assert sub.expect(PUBLISH).properties["UserProperty"] == ups


def test_content_type_and_payload_format(broker, clients):
    topic = uid("ct") + "/t"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, "héllo".encode(), 1,
                properties=pub_props(ContentType="text/plain; charset=utf-8",
                                     PayloadFormatIndicator=1))
    pub.publish(topic, b"\x00\x01", 1, properties=pub_props(ContentType="application/octet-stream",
                                                           PayloadFormatIndicator=0))
    m1, m2 = sub.expect(2)
    assert m1.prop("ContentType") == "text/plain; charset=utf-8"
    assert m1.prop("PayloadFormatIndicator") == 1
    assert m2.prop("ContentType") == "application/octet-stream"
    assert m2.prop("PayloadFormatIndicator", 0) == 0


def test_request_response(broker, clients):
    req_topic = uid("rr") + "/requests"
    reply_topic = uid("rr") + "/replies/me"
    requester = clients.connect(broker, protocol=V5)
    responder = clients.connect(broker, protocol=V5)
    requester.subscribe(reply_topic, 1)
    responder.subscribe(req_topic, 1)
    requester.publish(req_topic, b"what time is it", 1,
                      properties=pub_props(ResponseTopic=reply_topic,
                                           CorrelationData=b"\x00corr-42\xff"))
    req = responder.expect_one()
    assert req.prop("ResponseTopic") == reply_topic
    assert req.prop("CorrelationData") == b"\x00corr-42\xff"
    responder.publish(req.prop("ResponseTopic"), b"noon", 1,
                      properties=pub_props(CorrelationData=req.prop("CorrelationData")))
    resp = requester.expect_one()
    assert (resp.topic, resp.payload) == (reply_topic, b"noon")
    assert resp.prop("CorrelationData") == b"\x00corr-42\xff"


def test_v5_properties_stripped_for_v311_subscriber(broker, clients):
    """A v3.1.1 subscriber still gets the message (v3 has no properties)."""
    topic = uid("strip") + "/t"
    sub = clients.connect(broker, protocol=V311)
    sub.subscribe(topic, 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"x", 1, properties=pub_props(UserProperty=[("k", "v")],
                                                     ContentType="c"))
    assert sub.expect_one().payload == b"x"


# -- subscription identifiers ------------------------------------------------------------------

def test_subscription_identifiers_per_subscription(broker, clients):
    base = uid("sid")
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(f"{base}/a", 1, sub_id=1)
    sub.subscribe(f"{base}/b", 1, sub_id=268435455)  # the largest allowed value
    sub.subscribe(f"{base}/c", 1)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(f"{base}/a", b"a", 1)
    pub.publish(f"{base}/b", b"b", 1)
    pub.publish(f"{base}/c", b"c", 1)
    ma, mb, mc = sub.expect(3)
    assert ma.sub_ids == [1]
    assert mb.sub_ids == [268435455]
    assert mc.prop("SubscriptionIdentifier") is None


def test_subscription_identifier_replaced_on_resubscribe(broker, clients):
    topic = uid("sid") + "/t"
    sub = clients.connect(broker, protocol=V5)
    sub.subscribe(topic, 1, sub_id=5)
    sub.subscribe(topic, 1, sub_id=6)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"x", 1)
    assert sub.expect_one().sub_ids == [6]
    sub.expect_none(0.3)


def test_subscription_identifier_raw(broker, clients):
    topic = uid("sid") + "/raw"
    sub = clients.raw(broker, uid("sid"), version=5)
    sub.subscribe([(topic, sub_options(qos=0))], properties={"SubscriptionIdentifier": [42]})
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"x", 0)
    assert sub.expect(PUBLISH).properties["SubscriptionIdentifier"] == [42]
