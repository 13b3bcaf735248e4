"""Graceful shutdown on SIGTERM."""

import pytest
from mqttc import V5, V311, uid
from rawmqtt import DISCONNECT

SERVER_SHUTTING_DOWN = 0x8B


def test_sigterm_exits_zero_and_closes_connections(make_broker, clients):
    b = make_broker()
    v5 = clients.raw(b, uid("v5"), version=5)
    v3 = clients.raw(b, uid("v3"), version=4)
    paho = clients.connect(b, protocol=V311)
    b.terminate()
    assert b.wait(10) == 0, f"exit code {b.proc.returncode}"
    for c in (v5, v3):
        packets = c.wait_closed(5)
        assert all(p.type == DISCONNECT for p in packets), packets
    paho.wait_disconnect(5)


def test_sigterm_with_no_clients_exits_zero(make_broker):
    b = make_broker()
    b.terminate()
    assert b.wait(10) == 0


@pytest.mark.ferrymq_only  # Mosquitto 2.0.11 closes connections without a DISCONNECT
def test_sigterm_sends_server_shutting_down_to_v5_clients(make_broker, clients):
    b = make_broker()
    raws = [clients.raw(b, uid("v5"), version=5) for _ in range(3)]
    paho = clients.connect(b, protocol=V5)
    v3 = clients.raw(b, uid("v3"), version=4)
    b.terminate()
    for c in raws:
        packets = c.wait_closed(10)
        assert [p.type for p in packets] == [DISCONNECT], packets
        assert packets[0].reason == SERVER_SHUTTING_DOWN
    # paho 2.1 drops the reason code of a DISCONNECT without properties (it decodes it only
    # when the remaining length is > 2), so only check that it was disconnected.
    paho.wait_disconnect(10)
    assert v3.wait_closed(10) == []  # v3 has no server DISCONNECT: just closed
    assert b.wait(10) == 0


def test_restart_after_graceful_stop(make_broker, clients):
    """After a graceful stop the broker starts again on the same port and serves clients."""
    b = make_broker()
    clients.connect(b, protocol=V311)
    b.terminate()
    assert b.wait(10) == 0
    b.start()
    topic = uid("restart") + "/t"
    sub = clients.connect(b, protocol=V5)
    pub = clients.connect(b, protocol=V5)
    sub.subscribe(topic, 1)
    pub.publish(topic, b"back", 1)
    assert sub.expect_one().payload == b"back"
