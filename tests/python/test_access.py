"""Virtual hosts, users and permissions from the internal database, with paho-mqtt.

The database is prepared with the `ferrymq users|vhosts|permissions|import-definitions`
commands against the broker's data directory before it starts, and changed with them while it
runs (the broker picks changes up within 2 s): vhost isolation, a limited user's v3 and v5
reason codes, revocation at runtime, a listener's default vhost, and a RabbitMQ definitions
import whose users log in with their RabbitMQ passwords (and get argon2id hashes).
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import time

import pytest

from brokers import FERRYMQ_BIN, REPO, Broker
from mqttc import V5, V311
from rawmqtt import DISCONNECT

pytestmark = pytest.mark.ferrymq_only

RABBIT_FIXTURE = REPO / "crates" / "auth" / "tests" / "fixtures" / "rabbit-definitions.json"
# The passwords of the fixture's users (see crates/auth/src/rabbit/tests.rs).
RABBIT_PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "eve": "eve-pw"}

NOT_AUTHORIZED_V5 = 0x87
BAD_USER_OR_PASSWORD_V5 = 0x86
SUBACK_FAILURE_V3 = 0x80


def cli(data_dir: pathlib.Path, *args: str, stdin: str = "") -> str:
    """Runs `ferrymq ARGS --data-dir DIR`; its stdout. Fails the test on a non-zero exit."""
    proc = subprocess.run([FERRYMQ_BIN, *args, "--data-dir", str(data_dir)], input=stdin,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"ferrymq {' '.join(args)}: {proc.stderr}"
    return proc.stdout


def stored_users(data_dir: pathlib.Path) -> dict:
    defs = json.loads((data_dir / "definitions.json").read_text())
    return {u["name"]: u for u in defs["users"]}


@pytest.fixture
def db_broker(tmp_path_factory, request):
    """factory(prepare, **kw): a broker whose data directory `prepare(data_dir)` filled first."""
    import conftest  # the fixtures' module: brokers listed there get their log in reports

    made: list[Broker] = []

    def factory(prepare, **kw) -> Broker:
        b = Broker(tmp_path_factory.mktemp("access"), name=f"broker[{request.node.name}]", **kw)
        prepare(b.data_dir)
        conftest._IN_USE.append(b)
        made.append(b)
        b.start()
        return b

    yield factory
    for b in made:
        try:
            b.stop()
        finally:
            if b in conftest._IN_USE:
                conftest._IN_USE.remove(b)


def client(clients, broker, user, password, client_id=None, protocol=V311):
    return clients.new(broker, client_id, protocol=protocol, username=user, password=password)


def connected(clients, broker, user, password, client_id=None, protocol=V311):
    c = client(clients, broker, user, password, client_id, protocol)
    c.connect()
    return c


def tenants(data_dir):
    cli(data_dir, "users", "add", "admin", "--password", "admin-pw")
    cli(data_dir, "users", "add", "device", "--password-stdin", stdin="device-pw\n")
    for vhost in ("a", "b", "tenant"):
        cli(data_dir, "vhosts", "add", vhost)
        cli(data_dir, "permissions", "set", "--vhost", vhost, "admin",
            "--publish", "#", "--subscribe", "#")
    cli(data_dir, "permissions", "set", "--vhost", "tenant", "device",
        "--publish", "devices/{client_id}/#",
        "--subscribe", "devices/#", "--deny-subscribe", "devices/secret/#")


def test_two_vhosts_with_the_same_client_id_and_topic_do_not_see_each_other(db_broker, clients):
    broker = db_broker(tenants)
    in_a = connected(clients, broker, "a:admin", "admin-pw", "same-id", V5)
    # The same client id in vhost b is another session: no takeover of a's.
    in_b = connected(clients, broker, "b:admin", "admin-pw", "same-id", V5)
    assert in_a.subscribe("chat/#", 1) == [1]
    assert in_b.subscribe("chat/#", 1) == [1]

    pub_a = connected(clients, broker, "a:admin", "admin-pw")
    assert pub_a.publish("chat/room1", b"only-a", qos=1, retain=True) == 0
    m = in_a.expect_one()
    assert (m.topic, m.payload) == ("chat/room1", b"only-a")
    in_b.expect_none(1.0)
    assert in_a.disconnects.empty(), "the session in a was not taken over"

    # Retained messages belong to their vhost too.
    late_b = connected(clients, broker, "b:admin", "admin-pw")
    late_b.subscribe("chat/#", 1)
    late_b.expect_none(0.5)
    late_a = connected(clients, broker, "a:admin", "admin-pw")
    late_a.subscribe("chat/#", 1)
    assert late_a.expect_one().retain


def test_limited_user_v3_and_v5_reason_codes(db_broker, clients):
    broker = db_broker(tenants)
    watcher = connected(clients, broker, "tenant:admin", "admin-pw", protocol=V5)
    watcher.subscribe("#", 1)

    # MQTT 5: SUBACK and PUBACK say 0x87.
    dev = connected(clients, broker, "tenant:device", "device-pw", "dev1", V5)
    assert dev.subscribe([("devices/dev1/#", 1), ("devices/secret/#", 1),
                          ("devices/#", 1), ("other/#", 1), ("devices/public/#", 0)]) == [
        1, NOT_AUTHORIZED_V5, NOT_AUTHORIZED_V5, NOT_AUTHORIZED_V5, 0,
    ], "devices/# overlaps the denied devices/secret/#"
    assert dev.publish("devices/dev1/temp", b"21", qos=1) == 0
    assert dev.publish("devices/dev2/temp", b"not mine", qos=1) == NOT_AUTHORIZED_V5
    assert dev.publish("elsewhere", b"x", qos=1) == NOT_AUTHORIZED_V5
    assert dev.publish("$SYS/broker/x", b"x", qos=1) == NOT_AUTHORIZED_V5
    got = watcher.expect_one()
    assert (got.topic, got.payload) == ("devices/dev1/temp", b"21")
    own = dev.expect_one()
    assert own.topic == "devices/dev1/temp"
    watcher.expect_none(0.5)

    # MQTT 3.1.1: SUBACK 0x80; a denied PUBLISH is dropped and the connection stays.
    v3 = connected(clients, broker, "tenant:device", "device-pw", "dev3", V311)
    assert v3.subscribe([("devices/dev3/#", 1), ("other/#", 1), ("devices/#", 0)]) == [
        1, SUBACK_FAILURE_V3, SUBACK_FAILURE_V3]
    v3.publish("devices/dev1/x", b"not yours", qos=1)
    v3.publish("devices/dev3/x", b"mine", qos=1)
    got = watcher.expect_one()
    assert (got.topic, got.payload) == ("devices/dev3/x", b"mine"), "the denied one was dropped"
    assert v3.disconnects.empty()
    assert v3.subscribe("devices/dev3/more", 0) == [0], "still connected and working"


def test_a_listener_vhost_is_used_without_a_prefix(db_broker, clients):
    broker = db_broker(tenants, mqtt={"vhost": "tenant"})
    dev = connected(clients, broker, "device", "device-pw", "dev1", V5)
    assert dev.publish("devices/dev1/x", b"x", qos=1) in (0, 0x10)
    # A vhost: prefix still wins over the listener's vhost: device has nothing in a.
    refused = client(clients, broker, "a:device", "device-pw", protocol=V5)
    assert refused.connect(expect_success=False).reason_code == NOT_AUTHORIZED_V5


def test_permissions_revoked_while_connected(db_broker, clients):
    def prepare(data_dir):
        cli(data_dir, "users", "add", "reader", "--password", "reader-pw")
        cli(data_dir, "users", "add", "writer", "--password", "writer-pw")
        cli(data_dir, "permissions", "set", "reader", "--subscribe", "news/#",
            "--subscribe", "weather/#")
        cli(data_dir, "permissions", "set", "writer", "--publish", "#")

    broker = db_broker(prepare)
    reader = connected(clients, broker, "reader", "reader-pw", protocol=V5)
    assert reader.subscribe("news/#", 0) == [0]
    writer = connected(clients, broker, "writer", "writer-pw", protocol=V5)
    writer.publish("news/1", b"before", qos=1)
    assert reader.expect_one().payload == b"before"

    # Narrowed while the broker runs: news/# is no longer allowed, the subscription stops.
    cli(broker.data_dir, "permissions", "set", "reader", "--subscribe", "weather/#")
    deadline = time.monotonic() + 8
    while True:
        writer.publish("news/1", b"probe", qos=1)
        if not reader.drain(0.3):
            break
        assert time.monotonic() < deadline, "the revoked subscription kept delivering"
    writer.publish("news/1", b"after", qos=1)
    reader.expect_none(1.0)
    assert reader.disconnects.empty(), "narrowing rights keeps the connection"

    # Access to the vhost removed: connections are closed (v5 DISCONNECT 0x87).
    raw = clients.raw(broker, "raw-reader", username="reader", password="reader-pw")
    cli(broker.data_dir, "permissions", "clear", "reader")
    reader.wait_disconnect(8)
    packets = raw.wait_closed(8)
    assert [(p.type, p.reason) for p in packets] == [(DISCONNECT, NOT_AUTHORIZED_V5)]
    again = client(clients, broker, "reader", "reader-pw", protocol=V5)
    assert again.connect(expect_success=False).reason_code == NOT_AUTHORIZED_V5


def test_rabbitmq_definitions_import_and_users_log_in(db_broker, clients):
    def prepare(data_dir):
        proc = subprocess.run([FERRYMQ_BIN, "import-definitions", str(RABBIT_FIXTURE),
                               "--data-dir", str(data_dir)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "RabbitMQ definitions" in proc.stdout
        assert 'warning: user "tenant:mallory" skipped' in proc.stderr

    broker = db_broker(prepare)
    assert stored_users(broker.data_dir)["alice"]["password_hash"]["algorithm"] == "rabbit_sha256"

    alice = connected(clients, broker, "alice", RABBIT_PASSWORDS["alice"])
    bob = connected(clients, broker, "iot:bob", RABBIT_PASSWORDS["bob"], "sensor1", V5)
    carol = connected(clients, broker, "iot:carol", RABBIT_PASSWORDS["carol"], protocol=V5)
    eve = connected(clients, broker, "iot:eve", RABBIT_PASSWORDS["eve"])
    wrong = client(clients, broker, "alice", "not-alice-pw", protocol=V5)
    assert wrong.connect(expect_success=False).reason_code == BAD_USER_OR_PASSWORD_V5

    # The imported topic permissions: bob publishes under devices/{client_id}/, carol reads
    # alerts/+ and may not publish.
    assert carol.subscribe("alerts/+", 1) == [1]
    assert carol.subscribe("devices/#", 1) == [NOT_AUTHORIZED_V5]
    assert bob.publish("devices/sensor1/temp", b"20", qos=1) in (0, 0x10)
    assert bob.publish("devices/sensor2/temp", b"20", qos=1) == NOT_AUTHORIZED_V5
    assert bob.publish("alerts/fire", b"!", qos=1) == NOT_AUTHORIZED_V5
    assert carol.publish("alerts/fire", b"!", qos=1) == NOT_AUTHORIZED_V5
    for c in (alice, eve):
        assert c.disconnects.empty()

    # After a successful login the RabbitMQ hashes are replaced with argon2id hashes.
    deadline = time.monotonic() + 8
    while True:
        users = stored_users(broker.data_dir)
        algorithms = {n: users[n]["password_hash"]["algorithm"] for n in RABBIT_PASSWORDS}
        if set(algorithms.values()) == {"argon2id"}:
            break
        assert time.monotonic() < deadline, f"hashes not upgraded: {algorithms}"
        time.sleep(0.2)
    assert "$argon2id$" not in broker.log_tail(400), "hashes are never logged"

    # And the same passwords keep working, also after a restart.
    broker.restart()
    for name, password in RABBIT_PASSWORDS.items():
        user = name if name == "alice" else f"iot:{name}"
        c = connected(clients, broker, user, password)
        c.disconnect()


def test_repeated_bad_passwords_block_the_address(db_broker, clients):
    """Brute force from one address: after max_failed_logins bad passwords even the right one
    is refused for a while (v5 0x9F Connection rate exceeded, v3 3 server unavailable)."""
    broker = db_broker(tenants, limits={"max_failed_logins": 3, "failed_login_block_secs": 60})
    for i in range(3):
        bad = client(clients, broker, "tenant:admin", "guess-%d" % i, protocol=V5)
        assert bad.connect(expect_success=False).reason_code == BAD_USER_OR_PASSWORD_V5
    right_v5 = client(clients, broker, "tenant:admin", "admin-pw", protocol=V5)
    assert right_v5.connect(expect_success=False).reason_code == 0x9F
    # v3's CONNACK return code 3 "server unavailable", which paho reports as 0x88.
    right_v3 = client(clients, broker, "tenant:admin", "admin-pw", protocol=V311)
    assert right_v3.connect(expect_success=False).reason_code == 0x88
