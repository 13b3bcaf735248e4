"""CONNECT / CONNACK: authentication, client identifiers, protocol levels, CONNACK properties."""

import pytest
import rawmqtt
from mqttc import V5, V31, V311, uid
from rawmqtt import CONNACK, RawClient

# v5 reason codes
NOT_AUTHORIZED = 0x87
BAD_USER_OR_PASSWORD = 0x86
# v3 return codes
V3_IDENTIFIER_REJECTED = 2
V3_BAD_USER_OR_PASSWORD = 4
V3_NOT_AUTHORIZED = 5


@pytest.mark.parametrize("protocol", [V31, V311, V5], ids=["v31", "v311", "v5"])
def test_guest_is_accepted(broker, clients, protocol):
    c = clients.new(broker, protocol=protocol)
    res = c.connect()
    assert res.reason_code == 0
    assert res.session_present is False


@pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])
def test_guest_raw_connack(broker, clients, version):
    c = clients.raw_socket(broker, version)
    ack = c.connect(uid("raw"))
    assert ack.type == CONNACK
    assert ack.reason == 0
    assert ack.session_present is False


def test_v5_without_username_is_not_authorized(broker, clients):
    c = clients.new(broker, protocol=V5, username=None)
    res = c.connect(expect_success=False)
    assert res.reason_code == NOT_AUTHORIZED


@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_v3_without_username_is_not_authorized(broker, clients, version):
    c = clients.raw_socket(broker, version)
    ack = c.connect(uid("anon"), username=None, password=None)
    assert ack.reason == V3_NOT_AUTHORIZED
    c.wait_closed(5)


def test_v5_wrong_password_is_refused(broker, clients):
    c = clients.new(broker, protocol=V5, password="not-guest")
    res = c.connect(expect_success=False)
    # 0x86 is FerryMQ's code (checked below); Mosquitto answers 0x87.
    assert res.reason_code in (BAD_USER_OR_PASSWORD, NOT_AUTHORIZED)


@pytest.mark.ferrymq_only  # Mosquitto answers 0x87 Not authorized for a wrong password
def test_v5_wrong_password_reason_code(broker, clients):
    c = clients.new(broker, protocol=V5, password="not-guest")
    assert c.connect(expect_success=False).reason_code == BAD_USER_OR_PASSWORD
    raw = clients.raw_socket(broker, 5)
    ack = raw.connect(uid("bad"), password="nope")
    assert ack.reason == BAD_USER_OR_PASSWORD
    raw.wait_closed(5)


@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_v3_wrong_password_is_refused(broker, clients, version):
    c = clients.raw_socket(broker, version)
    ack = c.connect(uid("bad"), password="nope")
    assert ack.reason in (V3_BAD_USER_OR_PASSWORD, V3_NOT_AUTHORIZED)
    c.wait_closed(5)


@pytest.mark.ferrymq_only  # Mosquitto answers 5 (not authorized) for a wrong password
@pytest.mark.parametrize("version", [3, 4], ids=["v31", "v311"])
def test_v3_wrong_password_return_code(broker, clients, version):
    c = clients.raw_socket(broker, version)
    assert c.connect(uid("bad"), password="nope").reason == V3_BAD_USER_OR_PASSWORD
    c2 = clients.raw_socket(broker, version)
    assert c2.connect(uid("bad"), username="nobody", password="guest").reason == (
        V3_BAD_USER_OR_PASSWORD)


@pytest.mark.parametrize("protocol", [V31, V311, V5], ids=["v31", "v311", "v5"])
def test_anonymous_allowed_when_enabled(anon_broker, clients, protocol):
    sub = clients.connect(anon_broker, protocol=protocol, username=None)
    pub = clients.connect(anon_broker, protocol=protocol, username=None)
    topic = uid("anon") + "/t"
    sub.subscribe(topic, 1)
    pub.publish(topic, b"hello", 1)
    m = sub.expect_one()
    assert (m.topic, m.payload) == (topic, b"hello")


def test_anonymous_broker_still_checks_passwords(anon_broker, clients):
    c = clients.new(anon_broker, protocol=V5, password="wrong")
    assert c.connect(expect_success=False).reason_code in (BAD_USER_OR_PASSWORD, NOT_AUTHORIZED)


def test_v5_assigned_client_identifier(broker, clients):
    c = clients.raw_socket(broker, 5)
    ack = c.connect("")
    assert ack.reason == 0
    assigned = ack.properties.get("AssignedClientIdentifier")
    assert isinstance(assigned, str) and len(assigned) > 0
    # The assigned identifier is usable: publishing through the connection works.
    c.subscribe([("assigned/" + assigned, 1)])
    c.publish("assigned/" + assigned, b"x", qos=1)
    kinds = {c.recv().type, c.recv().type}
    assert kinds == {rawmqtt.PUBACK, rawmqtt.PUBLISH}


def test_v5_two_empty_ids_get_distinct_identifiers(broker, clients):
    a = clients.raw(broker, "")
    b = clients.raw(broker, "")
    ida = a.connack.properties["AssignedClientIdentifier"]
    idb = b.connack.properties["AssignedClientIdentifier"]
    assert ida != idb
    # Both connections stay open (no takeover between them).
    assert a.is_open(0.3) and b.is_open(0.3)


def test_v311_empty_client_id_clean_session_accepted(broker, clients):
    c = clients.raw_socket(broker, 4)
    ack = c.connect("", clean=True)
    assert ack.reason == 0
    assert ack.session_present is False


def test_v311_empty_client_id_persistent_rejected(broker, clients):
    c = clients.raw_socket(broker, 4)
    ack = c.connect("", clean=False)
    assert ack.reason == V3_IDENTIFIER_REJECTED
    c.wait_closed(5)


def test_unsupported_protocol_level(broker, clients):
    c = clients.raw_socket(broker, 4)
    c.send(rawmqtt.connect_packet("lvl6", version=6))
    packets = c.wait_closed(5)
    if packets:
        assert packets[0].type == CONNACK, packets
        assert packets[0].body[1] in (0x01, 0x84), packets
        assert len(packets) == 1


def test_connack_properties_v5(broker, clients):
    c = clients.raw_socket(broker, 5)
    ack = c.connect(uid("props"))
    assert ack.reason == 0
    p = ack.properties
    assert p.get("RetainAvailable", 1) == 1
    assert p.get("MaximumQoS", 2) == 2
    assert "AssignedClientIdentifier" not in p


@pytest.mark.ferrymq_only  # FerryMQ's default limits; Mosquitto announces other values
def test_connack_properties_defaults(broker, clients):
    c = clients.raw_socket(broker, 5)
    ack = c.connect(uid("props"))
    assert ack.reason == 0
    assert ack.properties.get("ReceiveMaximum") == 128
    assert ack.properties.get("TopicAliasMaximum") == 64
    assert ack.properties.get("MaximumPacketSize") == 1048576


def test_connack_properties_follow_config(make_broker, clients):
    b = make_broker(limits={"max_packet_size": 200000, "topic_alias_maximum": 10})
    c = clients.raw_socket(b, 5)
    ack = c.connect(uid("props"))
    assert ack.reason == 0
    assert ack.properties.get("MaximumPacketSize") == 200000
    assert ack.properties.get("TopicAliasMaximum") == 10


def test_connack_receive_maximum_follows_config(make_broker, clients):
    b = make_broker(limits={"max_inflight": 17})
    c = clients.raw_socket(b, 5)
    ack = c.connect(uid("props"))
    assert ack.reason == 0
    assert ack.properties.get("ReceiveMaximum") == 17


def test_v31_connect_subscribe_publish_receive(broker, clients):
    sub = clients.connect(broker, protocol=V31)
    pub = clients.connect(broker, protocol=V31)
    topic = uid("v31") + "/a/b"
    assert sub.subscribe(topic.rsplit("/", 1)[0] + "/+", 1) == [1]
    pub.publish(topic, b"zero", 0)
    pub.publish(topic, b"one", 1)
    pub.publish(topic, b"two", 2)
    got = sub.expect(3)
    assert [(m.topic, m.payload, m.qos) for m in got] == [
        (topic, b"zero", 0), (topic, b"one", 1), (topic, b"two", 1)]


def test_v31_raw_client_receives_v311_publish(broker, clients):
    """MQTT 3.1 and 3.1.1 clients share the topic space."""
    topic = uid("mix") + "/t"
    sub = clients.raw(broker, uid("r31"), version=3)
    assert sub.subscribe([(topic, 1)]).codes == [1]
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"from 3.1.1", 1)
    p = sub.expect(rawmqtt.PUBLISH)
    assert (p.topic, p.payload, p.qos) == (topic, b"from 3.1.1", 1)
    sub.ack(rawmqtt.PUBACK, p.packet_id)


def test_raw_connect_with_unsupported_name_is_closed(broker, clients):
    c = clients.raw_socket(broker, 4)
    c.send(rawmqtt.connect_packet("badname", version=4, protocol_name="MQTX"))
    packets = c.wait_closed(5)
    assert all(p.type == CONNACK and p.body[1] != 0 for p in packets), packets


def test_keepalive_ping(broker, clients):
    c = clients.raw(broker, uid("ping"), version=5, keepalive=30)
    c.send(rawmqtt.PINGREQ_PACKET)
    assert c.expect(rawmqtt.PINGRESP).type == rawmqtt.PINGRESP


def test_refused_client_does_not_affect_others(broker, clients):
    ok = clients.connect(broker, protocol=V5)
    topic = uid("ok") + "/t"
    ok.subscribe(topic, 1)
    for _ in range(3):
        bad = RawClient(broker.host, broker.port, version=5)
        assert bad.connect(uid("bad"), password="x").reason in (BAD_USER_OR_PASSWORD,
                                                                NOT_AUTHORIZED)
        bad.close()
    ok.publish(topic, b"still fine", 1)
    assert ok.expect_one().payload == b"still fine"
