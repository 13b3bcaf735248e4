"""MQTT over WebSocket with paho-mqtt's own WebSocket client (mqtt.js in Node and Chromium is
covered in tests/node and tests/browser)."""

import time

import pytest
from mqttc import V5, uid

pytestmark = pytest.mark.ferrymq_only


def test_paho_stays_connected_across_the_brokers_pings(make_broker, clients):
    """paho-mqtt (2.1) answers WebSocket pings with *unmasked* pongs, which RFC 6455 says a
    server must close for. FerryMQ takes unmasked control frames (data frames must still be
    masked): otherwise every idle paho WebSocket client would be dropped at the first ping."""
    b = make_broker(tables={"websocket": {"ping_interval_secs": 1, "hibernate_after_secs": 0}})
    topic = uid("wsping") + "/t"
    sub = clients.connect(b, protocol=V5, transport="websockets", keepalive=60)
    sub.subscribe(topic, 1)
    time.sleep(3.5)  # three pings, three unmasked pongs
    assert sub.disconnects.empty(), sub.disconnects.get()
    pub = clients.connect(b, transport="websockets")
    pub.publish(topic, b"still here", 1)
    assert sub.expect_one().payload == b"still here"
