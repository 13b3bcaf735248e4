"""The management HTTP API, black-box: the real binary, urllib from the standard library, paho.

Every broker gets a free management port (brokers.py passes --management-listen). The API is
driven as an operator would: create a user and permissions, see a paho client limited by them,
revoke them under a connected subscriber, close a connection, read /metrics, and import a
RabbitMQ definitions export with `ferrymq import-definitions --url`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from brokers import FERRYMQ_BIN, REPO
from mqttc import V5, V311
from rawmqtt import DISCONNECT

pytestmark = pytest.mark.ferrymq_only

RABBIT_FIXTURE = REPO / "crates" / "auth" / "tests" / "fixtures" / "rabbit-definitions.json"
NOT_AUTHORIZED_V5 = 0x87
ADMINISTRATIVE_ACTION = 0x98


def api(broker, method, path, body=None, user="guest", password="guest"):
    """(status, parsed JSON or text) of one request."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(broker.mgmt_url + path, data=data, method=method)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, text, headers = resp.status, resp.read().decode(), resp.headers
    except urllib.error.HTTPError as err:
        status, text, headers = err.code, err.read().decode(), err.headers
    if "json" in (headers.get("Content-Type") or "") and text:
        return status, json.loads(text)
    return status, text


def metric(broker, name) -> int:
    """One value of the broker's /metrics, by its name without the `ferrymq_` prefix."""
    status, text = api(broker, "GET", "/metrics", user=None)
    assert status == 200
    (line,) = [l for l in text.splitlines() if l.startswith(f"ferrymq_{name} ")]
    return int(line.split()[1])


def admin_api(broker, method, path, body=None):
    return api(broker, method, path, body, user="root", password="root-pw")


@pytest.fixture
def mgmt_broker(make_broker):
    """A broker whose database has the administrator root/root-pw (made through the API by
    the built-in guest, which then disappears) and the vhost /."""
    b = make_broker()
    status, _ = api(b, "PUT", "/api/users/root", {"password": "root-pw", "tags": ["administrator"]})
    assert status == 201
    return b


def test_logins_and_tags(mgmt_broker):
    b = mgmt_broker
    status, body = api(b, "GET", "/api/overview", user=None)
    assert status == 401 and body["error"] == "not_authorized"
    assert api(b, "GET", "/api/whoami")[0] == 401, "the guest is gone once a user exists"
    assert api(b, "GET", "/api/whoami", user="root", password="wrong")[0] == 401
    assert admin_api(b, "GET", "/api/whoami") == (200, {"name": "root", "tags": ["administrator"]})
    assert admin_api(b, "PUT", "/api/users/plain", {"password": "p"})[0] == 201
    status, body = api(b, "GET", "/api/overview", user="plain", password="p")
    assert status == 403 and body["error"] == "forbidden"
    assert api(b, "GET", "/api/healthz", user=None) == (200, {"status": "ok"})
    status, users = admin_api(b, "GET", "/api/users")
    assert status == 200 and {u["name"] for u in users} == {"root", "plain"}
    assert all("password_hash" not in u for u in users)


def test_user_and_permissions_through_the_api_limit_a_paho_client(mgmt_broker, clients):
    b = mgmt_broker
    assert admin_api(b, "PUT", "/api/vhosts/tenant", {"description": "a tenant"})[0] == 201
    assert admin_api(b, "PUT", "/api/users/dev", {"password": "dev-pw"})[0] == 201
    rights = {"publish": {"allow": ["devices/{client_id}/#"]},
              "subscribe": {"allow": ["devices/#"], "deny": ["devices/secret/#"]}}
    assert admin_api(b, "PUT", "/api/permissions/tenant/dev", rights)[0] == 201
    status, shown = admin_api(b, "GET", "/api/permissions/tenant/dev")
    assert status == 200 and shown["publish"]["allow"] == ["devices/{client_id}/#"]

    # Applied at once (no 2 s poll): the client logs in right away and is limited.
    dev = clients.new(b, "dev1", protocol=V5, username="tenant:dev", password="dev-pw")
    dev.connect()
    assert dev.subscribe([("devices/dev1/#", 1), ("devices/secret/#", 1)]) == [1, NOT_AUTHORIZED_V5]
    assert dev.publish("devices/dev1/t", b"ok", qos=1) == 0
    assert dev.publish("devices/dev2/t", b"no", qos=1) == NOT_AUTHORIZED_V5
    assert dev.expect_one().payload == b"ok"
    # Not in the default vhost.
    other = clients.new(b, "dev2", protocol=V5, username="dev", password="dev-pw")
    assert other.connect(expect_success=False).reason_code == NOT_AUTHORIZED_V5


def test_deleting_a_permission_stops_a_connected_subscriber(mgmt_broker, clients):
    b = mgmt_broker
    assert admin_api(b, "PUT", "/api/users/sub", {"password": "sub-pw"})[0] == 201
    assert admin_api(b, "PUT", "/api/permissions/%2F/sub", {"subscribe": {"allow": ["#"]}})[0] == 201
    assert admin_api(b, "PUT", "/api/permissions/%2F/root",
                     {"publish": {"allow": ["#"]}, "subscribe": {"allow": ["#"]}})[0] == 201
    sub = clients.new(b, "sub-v3", protocol=V311, username="sub", password="sub-pw")
    sub.connect()
    assert sub.subscribe("news/#", 1) == [1]
    pub = clients.new(b, "pub", protocol=V5, username="root", password="root-pw")
    pub.connect()
    pub.publish("news/a", b"before", qos=1)
    assert sub.expect_one().payload == b"before"

    assert admin_api(b, "DELETE", "/api/permissions/%2F/sub")[0] == 204
    assert admin_api(b, "DELETE", "/api/permissions/%2F/sub")[0] == 404
    sub.wait_disconnect(5)
    pub.publish("news/a", b"after", qos=1)
    sub.expect_none(1.0)


def test_deleting_a_connection_disconnects_the_paho_client(mgmt_broker, clients):
    b = mgmt_broker
    assert admin_api(b, "PUT", "/api/permissions/%2F/root", {"publish": {"allow": ["#"]}})[0] == 201
    c = clients.new(b, "to-close", protocol=V5, username="root", password="root-pw")
    c.connect()
    # A raw client too, to read the exact DISCONNECT it gets.
    raw = clients.raw(b, "raw-close", username="root", password="root-pw")
    status, listed = admin_api(b, "GET", "/api/connections")
    assert status == 200
    (conn,) = [x for x in listed if x["client_id"] == "to-close"]
    assert conn["user"] == "root" and conn["vhost"] == "/" and conn["transport"] == "tcp"
    assert conn["protocol"] == "MQTT 5.0" and conn["peer_host"] == "127.0.0.1"
    assert admin_api(b, "DELETE", "/api/connections/%2F/to-close")[0] == 204
    c.wait_disconnect(5)
    assert admin_api(b, "DELETE", "/api/connections/%2F/to-close")[0] == 404
    assert admin_api(b, "DELETE", "/api/connections/%2F/raw-close")[0] == 204
    packets = raw.wait_closed(8)
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, ADMINISTRATIVE_ACTION)]
    status, listed = admin_api(b, "GET", "/api/connections")
    assert [x["client_id"] for x in listed] == []


def test_metrics_count_a_published_message(mgmt_broker, clients):
    b = mgmt_broker
    assert admin_api(b, "PUT", "/api/permissions/%2F/root", {"publish": {"allow": ["#"]}})[0] == 201

    def received():
        status, text = api(b, "GET", "/metrics", user=None)
        assert status == 200
        (line,) = [l for l in text.splitlines() if l.startswith("ferrymq_messages_received_total ")]
        assert "# TYPE ferrymq_messages_received_total counter" in text
        return int(line.split()[1])

    before = received()
    c = clients.new(b, "m", protocol=V5, username="root", password="root-pw")
    c.connect()
    c.publish("counted", b"1", qos=1)
    assert received() == before + 1


def test_import_rabbitmq_definitions_with_the_cli_through_the_api(mgmt_broker, clients):
    b = mgmt_broker
    proc = subprocess.run(
        [FERRYMQ_BIN, "import-definitions", str(RABBIT_FIXTURE), "--url", b.mgmt_url,
         "--user", "root"],
        env={"FERRYMQ_MANAGEMENT_PASSWORD": "root-pw", "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "imported" in proc.stdout and "RabbitMQ definitions" in proc.stdout, proc.stdout
    assert "warning:" in proc.stderr
    # Applied at once: alice logs in with her RabbitMQ password.
    alice = clients.new(b, "alice-1", protocol=V5, username="alice", password="alice-pw")
    alice.connect()
    # The export through the API has her.
    proc = subprocess.run([FERRYMQ_BIN, "export-definitions", "--url", b.mgmt_url,
                           "--user", "root", "--password", "root-pw"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "alice" in {u["name"] for u in json.loads(proc.stdout)["users"]}
    # Wrong credentials: a clear error, exit 1.
    proc = subprocess.run([FERRYMQ_BIN, "export-definitions", "--url", b.mgmt_url,
                           "--user", "root", "--password", "nope"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "401" in proc.stderr, proc.stderr
