"""The broker with the command-line clients mosquitto_pub / mosquitto_sub."""

import os
import queue
import shutil
import subprocess
import threading
import time

import pytest
from mqttc import uid

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto-clients not installed (scripts/install-test-deps.sh installs it)")

FORMAT = "MSG|%t|%q|%r|%p"


def base_args(broker, user="guest", password="guest"):
    args = ["-h", broker.host, "-p", str(broker.port)]
    if user is not None:
        args += ["-u", user]
    if password is not None:
        args += ["-P", password]
    return args


class Sub:
    """mosquitto_sub in the background, with -d so that we know when SUBACK arrived."""

    def __init__(self, broker, topic, *extra, count=1, fmt=FORMAT):
        # stdbuf: mosquitto_sub's stdout is block-buffered on a pipe, and the SUBACK debug line
        # must reach us before the test publishes.
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []
        cmd = [*line_buffered, "mosquitto_sub", *base_args(broker), "-t", topic, "-C", str(count), "-W", "15",
               "-d", "-F", fmt, *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.all_lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_subscribed(self, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"mosquitto_sub got no SUBACK: {self.all_lines}")
            self.all_lines.append(line)
            if "SUBACK" in line:
                return self

    def finish(self, timeout=10) -> list[str]:
        """Wait for exit (after -C messages); the message lines (debug lines removed)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"mosquitto_sub did not finish: {self.all_lines}")
        self.reader.join(5)  # stdout reaches EOF when the process has exited
        while not self.lines.empty():
            self.all_lines.append(self.lines.get())
        assert self.proc.returncode == 0, (self.proc.returncode, self.proc.stderr.read(),
                                           self.all_lines)
        return [line for line in self.all_lines if line.startswith("MSG|")]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def subs():
    made = []

    def factory(*a, **kw):
        s = Sub(*a, **kw)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.kill()


def pub(broker, topic, *extra, user="guest", password="guest", input=None, check=True):
    cmd = ["mosquitto_pub", *base_args(broker, user, password), "-t", topic, *extra]
    r = subprocess.run(cmd, capture_output=True, timeout=15, input=input)
    if check:
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub(broker, subs, version, qos):
    topic = uid("cli") + "/t"
    s = subs(broker, topic, "-q", "2", "-V", version).wait_subscribed()
    pub(broker, topic, "-q", str(qos), "-V", version, "-m", f"hello {qos}")
    assert s.finish() == [f"MSG|{topic}|{qos}|0|hello {qos}"]


def test_subscription_qos_caps_delivery(broker, subs):
    topic = uid("cli") + "/t"
    s = subs(broker, topic, "-q", "0").wait_subscribed()
    pub(broker, topic, "-q", "2", "-m", "capped")
    assert s.finish() == [f"MSG|{topic}|0|0|capped"]


def test_retained_to_late_subscriber(broker, subs):
    topic = uid("cli") + "/retained"
    pub(broker, topic, "-r", "-q", "1", "-m", "kept")
    s = subs(broker, topic, "-q", "1")
    assert s.finish() == [f"MSG|{topic}|1|1|kept"]
    pub(broker, topic, "-r", "-n")  # delete
    r = subprocess.run(["mosquitto_sub", *base_args(broker), "-t", topic, "-C", "1", "-W", "1"],
                       capture_output=True, text=True, timeout=10)
    assert r.stdout == ""


def test_wildcard_and_multiple_lines(broker, subs):
    base = uid("cli")
    s = subs(broker, f"{base}/#", "-q", "1", count=3).wait_subscribed()
    pub(broker, f"{base}/lines", "-q", "1", "-l", input=b"one\ntwo\nthree\n")
    assert s.finish() == [f"MSG|{base}/lines|1|0|{w}" for w in ("one", "two", "three")]


def test_v5_user_properties(broker, subs):
    topic = uid("cli") + "/props"
    s = subs(broker, topic, "-V", "mqttv5", fmt="MSG|%P|%p").wait_subscribed()
    pub(broker, topic, "-V", "mqttv5", "-m", "with props",
        "-D", "publish", "user-property", "colour", "blue",
        "-D", "publish", "user-property", "size", "xl")
    [line] = s.finish()
    assert line.startswith("MSG|") and line.endswith("|with props")
    assert "colour:blue" in line and "size:xl" in line
    assert line.index("colour:blue") < line.index("size:xl")


def test_large_file_payload(broker, subs, tmp_path):
    topic = uid("cli") + "/file"
    data = os.urandom(100 * 1024)
    f = tmp_path / "payload.bin"
    f.write_bytes(data)
    s = subs(broker, topic, "-q", "1", fmt="MSG|%x").wait_subscribed()
    pub(broker, topic, "-q", "1", "-f", str(f))
    assert s.finish() == ["MSG|" + data.hex()]


def test_wrong_password_is_refused(broker):
    r = subprocess.run(["mosquitto_sub", *base_args(broker, password="wrong"), "-t", "x",
                        "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=15)
    assert r.returncode != 0
    assert "refused" in (r.stderr + r.stdout).lower() or "not authori" in (
        r.stderr + r.stdout).lower(), (r.stdout, r.stderr)


def test_wrong_password_is_refused_v5(broker):
    r = pub(broker, "x", "-V", "mqttv5", "-m", "x", password="wrong", check=False)
    assert r.returncode != 0


def test_anonymous_is_refused(broker):
    r = pub(broker, "x", "-m", "x", user=None, password=None, check=False)
    assert r.returncode != 0
