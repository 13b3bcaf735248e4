"""The HTTP authentication hook, black-box: a `http.server` in a thread plays the operator's
user store, the broker (configured with [auth.http] or FERRYMQ_AUTH_HTTP_URL) asks it about
CONNECTs from paho-mqtt and raw-socket clients.

What the hook is told (user, client id, vhost, the real address behind a trusted proxy,
transport), that its answer's rights are enforced, the CONNACK codes of a refusal and of an
unreachable hook, `on_error = "internal"`, the cache, and internal users never asked about.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import CallbackAPIVersion

from brokers import free_port
from mqttc import V5, V311, uid
from rawmqtt import RawClient
from test_access import cli, db_broker  # noqa: F401  (db_broker is a fixture)

pytestmark = pytest.mark.ferrymq_only

BAD_USER_OR_PASSWORD_V5 = 0x86
NOT_AUTHORIZED_V5 = 0x87
SERVER_UNAVAILABLE_V5 = 0x88
V3_BAD_USER_OR_PASSWORD = 4
V3_SERVER_UNAVAILABLE = 3


def store(request: dict):
    """The user store of these tests: (status, answer, delay)."""
    user, password = request.get("username"), request.get("password")
    if user == "dave" and password == "dave-pw":
        return 200, {"result": "allow", "publish": ["devices/{client_id}/#"],
                     "subscribe": ["devices/#"]}, 0
    if user == "slow":
        return 200, {"result": "allow"}, 3
    return 200, {"result": "deny"}, 0


class Hook:
    """An HTTP server on 127.0.0.1 that records every request and answers with `policy`."""

    def __init__(self, policy=store):
        self.requests: "queue.Queue[dict]" = queue.Queue()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = json.loads(body)
                request["_content_type"] = self.headers.get("Content-Type")
                request["_path"] = self.path
                hook.requests.put(request)
                status, answer, delay = policy(request)
                time.sleep(delay)
                payload = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the broker gave up waiting

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mqtt/auth"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def seen(self) -> list[dict]:
        got = []
        while True:
            try:
                got.append(self.requests.get_nowait())
            except queue.Empty:
                return got

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


def connected(clients, broker, user, password, client_id=None, protocol=V5):
    c = clients.new(broker, client_id, protocol=protocol, username=user, password=password)
    c.connect()
    return c


def refused(clients, broker, user, password, protocol=V5) -> int:
    c = clients.new(broker, None, protocol=protocol, username=user, password=password)
    return c.connect(expect_success=False).reason_code


def raw_v3_connack(broker, user, password) -> int:
    c = RawClient(broker.host, broker.port, version=4)
    try:
        return c.connect(uid("r"), username=user, password=password).reason
    finally:
        c.close()


def test_an_allowed_user_gets_exactly_the_hooks_rights(make_broker, clients, hook):
    broker = make_broker(tables={"auth.http": {"url": hook.url}})
    dev = connected(clients, broker, "dave", "dave-pw", "dev1")
    assert dev.subscribe([("devices/#", 1), ("other/#", 1)]) == [1, NOT_AUTHORIZED_V5]
    assert dev.publish("devices/dev1/temp", b"21", qos=1) == 0
    assert dev.expect_one().topic == "devices/dev1/temp"
    assert dev.publish("devices/dev2/temp", b"x", qos=1) == NOT_AUTHORIZED_V5
    assert dev.publish("elsewhere", b"x", qos=1) == NOT_AUTHORIZED_V5

    [request] = hook.seen()
    assert request["_content_type"] == "application/json"
    assert request["_path"] == "/mqtt/auth"
    assert request["peer_port"] > 0
    for key in ("_content_type", "_path", "peer_port"):
        del request[key]
    assert request == {
        "username": "dave", "password": "dave-pw", "client_id": "dev1", "vhost": "/",
        "peer_address": "127.0.0.1", "protocol_version": 5, "transport": "tcp",
    }


def test_a_denied_user_gets_bad_credentials_in_v5_and_v3(make_broker, clients, hook):
    broker = make_broker(tables={"auth.http": {"url": hook.url}})
    assert refused(clients, broker, "dave", "wrong") == BAD_USER_OR_PASSWORD_V5
    assert raw_v3_connack(broker, "mallory", "x") == V3_BAD_USER_OR_PASSWORD
    assert [r["username"] for r in hook.seen()] == ["dave", "mallory"]


def test_an_unreachable_hook_means_server_unavailable_but_guest_still_works(make_broker,
                                                                            clients):
    broker = make_broker(tables={"auth.http": {"url": f"http://127.0.0.1:{free_port()}/"}},
                         limits={"max_failed_logins": 1})
    for _ in range(2):  # not throttled: the hook failed, not the client
        assert refused(clients, broker, "dave", "dave-pw") == SERVER_UNAVAILABLE_V5
    assert raw_v3_connack(broker, "dave", "dave-pw") == V3_SERVER_UNAVAILABLE
    # The built-in guest is an internal user: the hook is not asked (internal_first).
    connected(clients, broker, "guest", "guest", protocol=V311)
    assert "authentication hook failed" in broker.log_tail(200)


def test_a_slow_hook_with_on_error_internal_falls_back_to_the_database(db_broker, clients,
                                                                        hook):
    def prepare(data_dir):
        cli(data_dir, "users", "add", "admin", "--password", "admin-pw")
        cli(data_dir, "permissions", "set", "--vhost", "/", "admin",
            "--publish", "#", "--subscribe", "#")

    broker = db_broker(prepare, tables={"auth.http": {
        "url": hook.url, "timeout_ms": 300, "order": "hook_first", "on_error": "internal"}})
    # "slow" is answered after 3 s: too late, and the database does not know it.
    assert refused(clients, broker, "slow", "x") == BAD_USER_OR_PASSWORD_V5
    # admin is asked about too (hook_first); the store denies it: final.
    assert refused(clients, broker, "admin", "admin-pw") == BAD_USER_OR_PASSWORD_V5

    down = db_broker(prepare, tables={"auth.http": {
        "url": f"http://127.0.0.1:{free_port()}/", "order": "hook_first",
        "on_error": "internal"}})
    admin = connected(clients, down, "admin", "admin-pw")
    assert admin.publish("anything", b"x", qos=1) == 0x10  # allowed, no subscriber


def test_answers_are_cached_and_internal_users_never_asked(db_broker, clients, hook):
    def prepare(data_dir):
        cli(data_dir, "users", "add", "admin", "--password", "admin-pw")
        cli(data_dir, "permissions", "set", "--vhost", "/", "admin",
            "--publish", "#", "--subscribe", "#")

    broker = db_broker(prepare, tables={"auth.http": {"url": hook.url, "cache_ttl_secs": 60}})
    for _ in range(2):
        c = connected(clients, broker, "dave", "dave-pw", "same-id")
        c.disconnect()
    connected(clients, broker, "admin", "admin-pw")
    assert refused(clients, broker, "admin", "wrong") == BAD_USER_OR_PASSWORD_V5
    assert [r["username"] for r in hook.seen()] == ["dave"], "one question, asked once"


def test_env_var_turns_the_hook_on_and_websockets_behind_a_proxy_report_the_real_address(
        make_broker, clients, hook, monkeypatch):
    monkeypatch.setenv("FERRYMQ_AUTH_HTTP_URL", hook.url)
    broker = make_broker(tables={"proxy": {"trusted": ["127.0.0.1"]}})
    connected(clients, broker, "dave", "dave-pw", "tcp-client")

    got: "queue.Queue[int]" = queue.Queue()
    ws = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ws-client", protocol=mqtt.MQTTv5,
                     transport="websockets")
    ws.ws_set_options(path="/mqtt", headers={"X-Forwarded-For": "198.51.100.7"})
    ws.username_pw_set("dave", "dave-pw")
    ws.on_connect = lambda client, userdata, flags, rc, props: got.put(rc.value)
    ws.connect(broker.host, broker.ws_port)
    ws.loop_start()
    try:
        assert got.get(timeout=5) == 0
    finally:
        ws.disconnect()
        ws.loop_stop()

    tcp, websocket = hook.seen()
    assert (tcp["transport"], tcp["peer_address"]) == ("tcp", "127.0.0.1")
    assert (websocket["transport"], websocket["peer_address"]) == ("ws", "198.51.100.7")
    assert websocket["client_id"] == "ws-client"
