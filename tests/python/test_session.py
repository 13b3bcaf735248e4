"""Persistent sessions, session expiry, clean start, session takeover, redelivery of unacked
messages."""

import time

import pytest
from mqttc import V5, V311, props, uid
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import DISCONNECT, PUBACK, PUBLISH, Closed, connected, disconnect_packet

SESSION_TAKEN_OVER = 0x8E


def v5_connect_props(expiry):
    return props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)


def test_v311_persistent_session_gets_offline_messages(broker, clients):
    cid = uid("p3")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V311, clean=False)
    assert s.connect().session_present is False
    assert s.subscribe(topic, 2) == [2]
    s.disconnect()

    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"q1", 1)
    pub.publish(topic, b"q2", 2)

    s2 = clients.new(broker, cid, protocol=V311, clean=False)
    assert s2.connect().session_present is True
    got = s2.expect(2)
    assert [(m.payload, m.qos) for m in got] == [(b"q1", 1), (b"q2", 2)]
    # The subscription survived as well: live messages keep coming.
    pub.publish(topic, b"live", 1)
    assert s2.expect_one().payload == b"live"
    s2.disconnect()
    # End the session.
    clients.connect(broker, cid, protocol=V311, clean=True).disconnect()


def test_v311_clean_session_discards_old_session(broker, clients):
    cid = uid("p3c")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V311, clean=False)
    s.connect()
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"queued", 1)

    s2 = clients.new(broker, cid, protocol=V311, clean=True)
    assert s2.connect().session_present is False
    s2.expect_none(0.7)
    pub.publish(topic, b"after", 1)  # the old subscription is gone too
    s2.expect_none(0.7)


def test_v311_clean_session_not_resumed(broker, clients):
    cid = uid("p3n")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V311, clean=True)
    s.connect()
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"lost", 1)
    s2 = clients.new(broker, cid, protocol=V311, clean=False)
    assert s2.connect().session_present is False
    s2.expect_none(0.7)
    s2.disconnect()
    clients.connect(broker, cid, protocol=V311, clean=True).disconnect()


def test_v5_persistent_session_gets_offline_messages(broker, clients):
    cid = uid("p5")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V5, clean=True)
    assert s.connect(properties=v5_connect_props(60)).session_present is False
    s.subscribe(topic, 2)
    s.disconnect()

    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"one", 1)
    pub.publish(topic, b"two", 2)

    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect(properties=v5_connect_props(60)).session_present is True
    got = s2.expect(2)
    assert [(m.payload, m.qos) for m in got] == [(b"one", 1), (b"two", 2)]
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


def test_v5_session_expiry(broker, clients):
    """Session Expiry 2 s: after ~4 s the session, its subscription and its queue are gone."""
    cid = uid("exp")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V5)
    s.connect(properties=v5_connect_props(2))
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"too late", 1)
    time.sleep(4.0)
    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect(properties=v5_connect_props(60)).session_present is False
    s2.expect_none(1.0)
    pub.publish(topic, b"no subscription", 1)
    s2.expect_none(0.5)
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


def test_v5_session_survives_within_expiry(broker, clients):
    cid = uid("exp2")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V5)
    s.connect(properties=v5_connect_props(30))
    s.subscribe(topic, 1)
    s.disconnect()
    time.sleep(1.0)
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"kept", 1)
    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect(properties=v5_connect_props(30)).session_present is True
    assert s2.expect_one().payload == b"kept"
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


def test_v5_zero_session_expiry_ends_at_disconnect(broker, clients):
    cid = uid("exp0")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V5)
    s.connect()  # no Session Expiry Interval: 0
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"gone", 1)
    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect().session_present is False
    s2.expect_none(0.7)


def test_v5_clean_start_discards_old_session(broker, clients):
    cid = uid("cs")
    topic = uid("sess") + "/t"
    s = clients.new(broker, cid, protocol=V5)
    s.connect(properties=v5_connect_props(60))
    s.subscribe(topic, 1)
    s.disconnect()
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"discarded", 1)
    s2 = clients.new(broker, cid, protocol=V5, clean=True)
    assert s2.connect(properties=v5_connect_props(60)).session_present is False
    s2.expect_none(0.7)
    pub.publish(topic, b"no sub", 1)
    s2.expect_none(0.5)
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


def test_v5_disconnect_can_shorten_session_expiry(broker, clients):
    cid = uid("short")
    topic = uid("sess") + "/t"
    s = connected(broker, cid, properties={"SessionExpiryInterval": 60})
    s.subscribe([(topic, 1)])
    # A raw client, so that the test can wait for the broker to close the socket, i.e. to
    # have handled the DISCONNECT: a reconnect racing an unprocessed DISCONNECT on another
    # socket would take the session over instead (no order holds across connections).
    s.send(disconnect_packet(properties={"SessionExpiryInterval": 0}))
    s.wait_closed()
    s2 = clients.new(broker, cid, protocol=V5, clean=False)
    assert s2.connect(properties=v5_connect_props(60)).session_present is False
    s2.disconnect(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=0))


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_unacked_qos1_redelivered_with_dup_on_reconnect(broker, clients, version):
    cid = uid("redeliver")
    topic = uid("sess") + "/t"
    persist = {"properties": {"SessionExpiryInterval": 60}} if version == 5 else {}
    s = clients.raw(broker, cid, version=version, clean=version == 5, **persist)
    s.subscribe([(topic, 1)])
    pub = clients.connect(broker, protocol=V311)
    pub.publish(topic, b"unacked", 1)
    p = s.expect(PUBLISH)
    assert (p.payload, p.dup) == (b"unacked", False)
    s.abort()  # never acknowledged

    s2 = clients.raw(broker, cid, version=version, clean=False, **persist)
    assert s2.connack.session_present is True
    p2 = s2.expect(PUBLISH)
    assert (p2.payload, p2.qos, p2.dup) == (b"unacked", 1, True)
    s2.ack(PUBACK, p2.packet_id)
    assert s2.recv_or_none(0.5) is None
    if version == 5:
        s2.disconnect(0, properties={"SessionExpiryInterval": 0})
    else:
        s2.disconnect()
        clients.raw(broker, cid, version=4, clean=True).disconnect()


def test_v311_takeover_closes_first_connection(broker, clients):
    cid = uid("take")
    first = clients.raw(broker, cid, version=4)
    second = clients.raw(broker, cid, version=4)
    packets = first.wait_closed(5)
    assert all(p.type != DISCONNECT for p in packets)
    # The second connection works.
    topic = uid("take") + "/t"
    assert second.subscribe([(topic, 1)]).codes == [1]
    second.publish(topic, b"mine", qos=1)
    kinds = sorted([second.recv().type, second.recv().type])
    assert kinds == sorted([PUBACK, PUBLISH])


def test_v5_takeover_closes_first_connection(broker, clients):
    cid = uid("take5c")
    first = clients.raw(broker, cid, version=5)
    clients.raw(broker, cid, version=5)
    packets = first.wait_closed(5)
    assert all(p.reason == SESSION_TAKEN_OVER for p in packets if p.type == DISCONNECT), packets


@pytest.mark.ferrymq_only  # Mosquitto 2.0.11 closes the old connection without a DISCONNECT
def test_v5_takeover_sends_disconnect_0x8e(broker, clients):
    cid = uid("take5")
    first = clients.raw(broker, cid, version=5)
    clients.raw(broker, cid, version=5)
    packets = first.wait_closed(5)
    disconnects = [p for p in packets if p.type == DISCONNECT]
    assert len(disconnects) == 1, packets
    assert disconnects[0].reason == SESSION_TAKEN_OVER


def test_v5_takeover_paho_client_is_disconnected(broker, clients):
    # Only that it is disconnected: paho 2.1 drops the reason code of a DISCONNECT without
    # properties (it decodes it only when the remaining length is > 2); the raw test above
    # checks the code.
    cid = uid("take5p")
    first = clients.connect(broker, cid, protocol=V5)
    second = clients.connect(broker, cid, protocol=V5)
    first.wait_disconnect(5)
    topic = uid("take") + "/t"
    assert second.subscribe(topic, 1) == [1]


def test_takeover_keeps_persistent_session(broker, clients):
    cid = uid("takep")
    topic = uid("sess") + "/t"
    first = clients.raw(broker, cid, version=5, properties={"SessionExpiryInterval": 60})
    first.subscribe([(topic, 1)])
    second = clients.raw(broker, cid, version=5, clean=False,
                         properties={"SessionExpiryInterval": 60})
    assert second.connack.session_present is True
    pub = clients.connect(broker, protocol=V5)
    pub.publish(topic, b"to the new connection", 1)
    p = second.expect(PUBLISH)
    assert p.payload == b"to the new connection"
    second.ack(PUBACK, p.packet_id)
    try:
        first.wait_closed(5)
    except Closed:
        pass
    second.disconnect(0, properties={"SessionExpiryInterval": 0})


def test_takeover_with_will_publishes_old_will(broker, clients):
    """[MQTT-3.1.4-3] / 3.1.2.5: the taken-over connection's will is published."""
    cid = uid("takew")
    topic = uid("sess") + "/will"
    w = clients.connect(broker, protocol=V5)
    w.subscribe(topic, 1)
    clients.raw(broker, cid, version=5, will={"topic": topic, "payload": b"replaced"})
    clients.raw(broker, cid, version=5)
    assert w.expect_one(timeout=5).payload == b"replaced"
