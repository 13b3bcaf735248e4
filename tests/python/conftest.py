"""Fixtures that start a real broker for the black-box tests.

By default the broker is FerryMQ ($FERRYMQ_BIN, default <repo>/target/release/ferrymq). With
FERRYMQ_TEST_BROKER=mosquitto the same tests run against Mosquitto, to validate the tests
themselves; tests marked `ferrymq_only` are skipped in that mode.

Fixtures:
  broker        one broker for the whole test module (guest/guest, no anonymous access)
  anon_broker   the same, started with --allow-anonymous
  make_broker   factory for a fresh broker with its own options, stopped after the test:
                make_broker(allow_anonymous=True, limits={...}, mqtt={...})

When a test fails, the tail of the log of every broker it used is added to the report.
"""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from brokers import MODE, Broker  # noqa: E402
import mqttc  # noqa: E402
import rawmqtt  # noqa: E402

_IN_USE: list[Broker] = []


def pytest_collection_modifyitems(config, items):
    # FERRYMQ_TEST_RUN_ALL=1 runs the ferrymq_only tests against Mosquitto too (to see which
    # of them Mosquitto happens to pass).
    if MODE != "mosquitto" or os.environ.get("FERRYMQ_TEST_RUN_ALL") == "1":
        return
    skip = pytest.mark.skip(reason="FerryMQ-specific behaviour (FERRYMQ_TEST_BROKER=mosquitto)")
    for item in items:
        if "ferrymq_only" in item.keywords:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"broker under test: {MODE}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _IN_USE:
        for b in list(_IN_USE):
            rep.sections.append((f"{b.name} log tail ({b.log_path})", b.log_tail(60)))


def _spawn(tmp_dir: pathlib.Path, name: str, **kw) -> Broker:
    b = Broker(tmp_dir, name=name, **kw)
    _IN_USE.append(b)
    try:
        b.start()
    except Exception:
        _IN_USE.remove(b)
        raise
    return b


def _finish(b: Broker) -> None:
    try:
        b.stop()
    finally:
        if b in _IN_USE:
            _IN_USE.remove(b)


@pytest.fixture(scope="module")
def broker(tmp_path_factory, request):
    name = f"broker[{request.module.__name__}]"
    b = _spawn(tmp_path_factory.mktemp("broker"), name)
    yield b
    _finish(b)


@pytest.fixture(scope="module")
def anon_broker(tmp_path_factory, request):
    """One broker per module started with --allow-anonymous."""
    b = _spawn(tmp_path_factory.mktemp("anon"), f"anon-broker[{request.module.__name__}]",
               allow_anonymous=True)
    yield b
    _finish(b)


@pytest.fixture
def make_broker(tmp_path_factory, request):
    made: list[Broker] = []

    def factory(**kw) -> Broker:
        b = _spawn(tmp_path_factory.mktemp("broker"), f"broker[{request.node.name}#{len(made)}]",
                   **kw)
        made.append(b)
        return b

    yield factory
    for b in made:
        _finish(b)


class ClientFactory:
    """Creates clients and closes them all when the test ends (pass or fail)."""

    def __init__(self):
        self.made = []

    def new(self, broker, client_id=None, **kw):
        """A paho Client, not yet connected."""
        c = mqttc.Client(broker, client_id, **kw)
        self.made.append(c)
        return c

    def connect(self, broker, client_id=None, *, keepalive=60, properties=None, **kw):
        """A paho Client connected with guest/guest; asserts success."""
        c = self.new(broker, client_id, **kw)
        c.connect(keepalive=keepalive, properties=properties)
        return c

    def raw_socket(self, broker, version=5):
        """A RawClient with an open TCP connection and nothing sent."""
        c = rawmqtt.RawClient(broker.host, broker.port, version=version)
        self.made.append(c)
        return c

    def raw(self, broker, client_id="", *, version=5, **kw):
        """A RawClient that sent CONNECT (guest/guest by default) and got a successful CONNACK."""
        c = self.raw_socket(broker, version)
        ack = c.connect(client_id, **kw)
        assert ack.reason == 0, f"CONNECT refused: {ack!r}"
        c.connack = ack
        return c

    def close_all(self):
        for c in reversed(self.made):
            try:
                c.close()
            except Exception:
                pass


@pytest.fixture
def clients():
    f = ClientFactory()
    yield f
    f.close_all()
