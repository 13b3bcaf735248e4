"""Will messages: abnormal close, keep-alive expiry, v5 DISCONNECT 0x04, normal DISCONNECT, Will
Delay Interval, session end before the delay, will properties."""

import time

import pytest
from mqttc import V5, V31, V311, props, uid
from paho.mqtt.packettypes import PacketTypes
from rawmqtt import PINGREQ_PACKET, PINGRESP

DISCONNECT_WITH_WILL = 0x04
# How long after the keep-alive deadline (1.5 x keep-alive) the broker may take to notice.
# Generous: Mosquitto 2.0 checks keep-alives only every few seconds.
KEEPALIVE_SLACK = 8


def watcher(clients, broker, topic, qos=2, protocol=V5):
    w = clients.connect(broker, protocol=protocol)
    w.subscribe(topic, qos)
    return w


@pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])
def test_will_on_abnormal_close(broker, clients, version):
    topic = uid("will") + "/gone"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("w"), version=version,
                    will={"topic": topic, "payload": b"client died", "qos": 1})
    c.abort()
    m = w.expect_one(timeout=5)
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, b"client died", 1, False)
    w.expect_none(0.3)


def test_will_on_socket_close_with_fin(broker, clients):
    topic = uid("will") + "/fin"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("w"), version=4,
                    will={"topic": topic, "payload": b"fin", "qos": 0})
    c.close()
    assert w.expect_one(timeout=5).payload == b"fin"


def test_will_via_paho_abort(broker, clients):
    topic = uid("will") + "/paho"
    w = watcher(clients, broker, topic)
    c = clients.new(broker, protocol=V311)
    c.will_set(topic, b"paho will", qos=2)
    c.connect()
    c.abort()
    m = w.expect_one(timeout=5)
    assert (m.payload, m.qos) == (b"paho will", 2)


@pytest.mark.parametrize("version", [4, 5], ids=["v311", "v5"])
def test_will_on_keepalive_expiry(broker, clients, version):
    """keep-alive 1 s and no PINGREQ: the broker drops the client after 1.5 s and publishes the
    will (checked with a generous timeout)."""
    topic = uid("will") + "/ka"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("ka"), version=version, keepalive=1,
                    will={"topic": topic, "payload": b"timed out", "qos": 1})
    m = w.expect_one(timeout=1.5 + KEEPALIVE_SLACK)
    assert m.payload == b"timed out"
    c.wait_closed(3)


def test_keepalive_is_kept_by_pings(broker, clients):
    topic = uid("will") + "/alive"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("ka"), version=5, keepalive=1,
                    will={"topic": topic, "payload": b"should not happen"})
    end = time.monotonic() + 3.5
    while time.monotonic() < end:
        c.send(PINGREQ_PACKET)
        assert c.expect(PINGRESP, timeout=2).type == PINGRESP
        time.sleep(0.5)
    w.expect_none(0.2)
    c.disconnect()
    w.expect_none(0.5)


def test_v5_disconnect_with_will_message_reason(broker, clients):
    topic = uid("will") + "/x04"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("w"), version=5,
                    will={"topic": topic, "payload": b"asked for it", "qos": 1})
    c.disconnect(DISCONNECT_WITH_WILL)
    assert w.expect_one(timeout=5).payload == b"asked for it"


def test_v5_disconnect_with_will_message_reason_paho(broker, clients):
    topic = uid("will") + "/x04p"
    w = watcher(clients, broker, topic)
    c = clients.new(broker, protocol=V5)
    c.will_set(topic, b"paho 0x04", qos=1)
    c.connect()
    c.disconnect(reason_code=DISCONNECT_WITH_WILL)
    assert w.expect_one(timeout=5).payload == b"paho 0x04"


@pytest.mark.parametrize("version", [3, 4, 5], ids=["v31", "v311", "v5"])
def test_no_will_on_normal_disconnect(broker, clients, version):
    topic = uid("will") + "/normal"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("w"), version=version,
                    will={"topic": topic, "payload": b"must not appear", "qos": 1})
    c.disconnect(0 if version == 5 else None)
    w.expect_none(1.0)


def test_will_retain_flag(broker, clients):
    topic = uid("will") + "/retained"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("w"), version=5,
                    will={"topic": topic, "payload": b"last words", "qos": 1, "retain": True})
    c.abort()
    m = w.expect_one(timeout=5)
    assert (m.payload, m.retain) == (b"last words", False)  # live delivery
    # A subscriber arriving later gets the will as a retained message.
    late = clients.connect(broker, protocol=V5)
    late.subscribe(topic, 1)
    m = late.expect_one()
    assert (m.payload, m.retain) == (b"last words", True)
    late.publish(topic, b"", 1, retain=True)


def test_will_properties_pass_through(broker, clients):
    topic = uid("will") + "/props"
    w = watcher(clients, broker, topic, protocol=V5)
    will_props = {
        "UserProperty": [("who", "sensor-1"), ("why", "power"), ("who", "dup-key")],
        "ContentType": "text/plain",
        "PayloadFormatIndicator": 1,
        "ResponseTopic": "will/reply",
        "CorrelationData": b"\xde\xad",
        "MessageExpiryInterval": 300,
    }
    c = clients.raw(broker, uid("w"), version=5,
                    will={"topic": topic, "payload": b"props", "qos": 1,
                          "properties": will_props})
    c.abort()
    m = w.expect_one(timeout=5)
    assert m.payload == b"props"
    assert m.user_properties == [("who", "sensor-1"), ("why", "power"), ("who", "dup-key")]
    assert m.prop("ContentType") == "text/plain"
    assert m.prop("PayloadFormatIndicator") == 1
    assert m.prop("ResponseTopic") == "will/reply"
    assert m.prop("CorrelationData") == b"\xde\xad"
    assert 0 < m.prop("MessageExpiryInterval") <= 300


def test_will_properties_via_paho(broker, clients):
    topic = uid("will") + "/pprops"
    w = watcher(clients, broker, topic, protocol=V5)
    c = clients.new(broker, protocol=V5)
    c.will_set(topic, b"p", 1, properties=props(
        PacketTypes.WILLMESSAGE, ContentType="application/x-test",
        UserProperty=[("a", "1"), ("b", "2")]))
    c.connect()
    c.abort()
    m = w.expect_one(timeout=5)
    assert m.prop("ContentType") == "application/x-test"
    assert m.user_properties == [("a", "1"), ("b", "2")]


def test_will_delay_interval(broker, clients):
    """Will Delay 2 s, session expiry long: nothing right after the drop, the will after ~2 s."""
    topic = uid("will") + "/delay"
    w = watcher(clients, broker, topic)
    cid = uid("wd")
    c = clients.raw(broker, cid, version=5, properties={"SessionExpiryInterval": 60},
                    will={"topic": topic, "payload": b"delayed", "qos": 1,
                          "properties": {"WillDelayInterval": 2}})
    c.abort()
    w.expect_none(1.0)
    assert w.expect_one(timeout=6).payload == b"delayed"
    # Clean up the session.
    clients.raw(broker, cid, version=5, clean=True).disconnect()


def test_will_delay_cancelled_by_reconnect(broker, clients):
    topic = uid("will") + "/cancel"
    w = watcher(clients, broker, topic)
    cid = uid("wd")
    c = clients.raw(broker, cid, version=5, properties={"SessionExpiryInterval": 60},
                    will={"topic": topic, "payload": b"must not appear", "qos": 1,
                          "properties": {"WillDelayInterval": 2}})
    c.abort()
    again = clients.raw(broker, cid, version=5, clean=False,
                        properties={"SessionExpiryInterval": 60})
    assert again.connack.session_present is True
    w.expect_none(3.0)
    again.disconnect(0, properties={"SessionExpiryInterval": 0})
    w.expect_none(0.5)


def test_will_sent_when_session_ends_before_delay(broker, clients):
    """Will Delay 30 s but Session Expiry 1 s: the will goes out when the session ends."""
    topic = uid("will") + "/sessend"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("wd"), version=5, properties={"SessionExpiryInterval": 1},
                    will={"topic": topic, "payload": b"session over", "qos": 1,
                          "properties": {"WillDelayInterval": 30}})
    c.abort()
    assert w.expect_one(timeout=1 + 5).payload == b"session over"


@pytest.mark.ferrymq_only  # Mosquitto 2.0.11 waits the full will delay although the session ended
def test_will_delay_with_zero_session_expiry_is_immediate(broker, clients):
    topic = uid("will") + "/sess0"
    w = watcher(clients, broker, topic)
    c = clients.raw(broker, uid("wd"), version=5,
                    will={"topic": topic, "payload": b"now", "qos": 1,
                          "properties": {"WillDelayInterval": 30}})
    c.abort()
    assert w.expect_one(timeout=5).payload == b"now"


def test_v31_will_on_keepalive_expiry(broker, clients):
    topic = uid("will") + "/v31ka"
    w = watcher(clients, broker, topic, protocol=V31)
    c = clients.raw(broker, uid("k31"), version=3, keepalive=1,
                    will={"topic": topic, "payload": b"v31 gone", "qos": 0})
    assert w.expect_one(timeout=1.5 + KEEPALIVE_SLACK).payload == b"v31 gone"
    c.wait_closed(3)
