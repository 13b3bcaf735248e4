"""Hibernation (`mqtt.hibernate_after_secs`, `websocket.hibernate_after_secs`): idle MQTT/TCP
and WebSocket connections sleep without a task of their own and must behave exactly as awake
ones. Each test waits until the broker's `ferrymq_connections_hibernated` gauge (/metrics)
shows its clients asleep, then uses them with clients nobody here wrote: paho-mqtt (over TCP
and WebSocket) and mosquitto_pub / mosquitto_sub."""

import subprocess
import time

import pytest
from mqttc import V5, V311, uid
from test_cli_tools import Sub, base_args
from test_cli_tools import pytestmark as needs_mosquitto_clients
from test_management import metric

pytestmark = pytest.mark.ferrymq_only


@pytest.fixture
def sleepy_broker(make_broker):
    return make_broker(mqtt={"hibernate_after_secs": 1})


def hibernated(broker) -> int:
    return metric(broker, "connections_hibernated")


def wait_asleep(broker, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while (seen := hibernated(broker)) != count:
        assert time.monotonic() < deadline, f"expected {count} hibernated connections, got {seen}"
        time.sleep(0.1)


def test_sleeping_paho_clients_publish_and_receive(sleepy_broker, clients):
    b = sleepy_broker
    topic = uid("sleep") + "/t"
    sub = clients.connect(b, protocol=V5)
    sub.subscribe(topic, 2)
    pub = clients.connect(b, protocol=V311)
    wait_asleep(b, 2)
    for qos in (0, 1, 2):
        pub.publish(topic, f"qos {qos}".encode(), qos)
        assert sub.expect_one().payload == f"qos {qos}".encode()
    wait_asleep(b, 2)
    # The subscriber's own PUBLISH wakes it too.
    back = uid("back") + "/t"
    pub.subscribe(back, 1)
    wait_asleep(b, 2)
    sub.publish(back, b"from the subscriber", 1)
    assert pub.expect_one().payload == b"from the subscriber"
    sub.disconnect()
    pub.disconnect()
    wait_asleep(b, 0)


def test_a_sleeping_paho_client_is_dropped_at_its_keep_alive(sleepy_broker, clients):
    """paho pings on its own; a raw client that says nothing must still be timed out while
    it sleeps (keep-alive 1 s x grace 1.5)."""
    b = sleepy_broker
    watcher = clients.connect(b, protocol=V5)
    will_topic = uid("will") + "/t"
    watcher.subscribe(will_topic, 1)
    raw = clients.raw(b, uid("mute"), version=4, keepalive=1,
                      will={"topic": will_topic, "payload": b"timed out", "qos": 1})
    start = time.monotonic()
    packets = raw.wait_closed(10)
    assert packets == [], packets
    assert 1.0 < time.monotonic() - start < 6.0
    assert watcher.expect_one().payload == b"timed out"


# The command-line clients' own condition (scripts/install-test-deps.sh installs them).
@needs_mosquitto_clients
def test_mosquitto_sub_pinging_across_sleeps_gets_its_message(sleepy_broker):
    b = sleepy_broker
    topic = uid("mosq") + "/t"
    # Keep-alive 5 s, mosquitto_sub's least: its PINGREQ wakes the sleeping connection once.
    sub = Sub(b, topic, "-k", "5").wait_subscribed()
    try:
        wait_asleep(b, 1)
        time.sleep(5)
        wait_asleep(b, 1)
        subprocess.run(["mosquitto_pub", *base_args(b), "-t", topic, "-m", "woken", "-q", "1"],
                       check=True, timeout=10)
        lines = sub.finish()
    finally:
        sub.kill()
    assert lines == [f"MSG|{topic}|0|0|woken"], lines


def test_sleeping_paho_websocket_clients_keep_alive_asleep_and_wake_for_messages(
        make_broker, clients):
    """An idle browser-like client: paho over WebSocket with a 2 s keep-alive, the broker
    pinging every second. Its PINGREQs, the broker's pings and paho's pongs are all handled
    while it sleeps; a message wakes it."""
    b = make_broker(tables={"websocket": {"hibernate_after_secs": 1, "ping_interval_secs": 1}})
    topic = uid("wsleep") + "/t"
    sub = clients.connect(b, protocol=V5, transport="websockets", keepalive=2)
    sub.subscribe(topic, 2)
    pub = clients.connect(b, protocol=V311, transport="websockets", keepalive=2)
    wait_asleep(b, 2)
    wakes = metric(b, "hibernated_wakes_total")
    answered = metric(b, "hibernated_pings_answered_total")
    time.sleep(4.5)
    assert metric(b, "hibernated_pings_answered_total") >= answered + 2
    assert metric(b, "hibernated_wakes_total") == wakes, "a keep-alive woke a connection"
    assert hibernated(b) == 2
    for qos in (0, 1, 2):
        pub.publish(topic, f"qos {qos}".encode(), qos)
        assert sub.expect_one().payload == f"qos {qos}".encode()
    wait_asleep(b, 2)
    sub.disconnect()
    pub.disconnect()
    wait_asleep(b, 0)
