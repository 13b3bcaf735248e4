"""Start and stop the broker under test (FerryMQ, or Mosquitto to validate the tests)."""

from __future__ import annotations

import atexit
import os
import pathlib
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
MODE = os.environ.get("FERRYMQ_TEST_BROKER", "ferrymq").strip().lower() or "ferrymq"
if MODE not in ("ferrymq", "mosquitto"):
    raise RuntimeError(f"FERRYMQ_TEST_BROKER must be ferrymq or mosquitto, not {MODE!r}")
FERRYMQ_BIN = os.environ.get("FERRYMQ_BIN") or str(REPO / "target" / "release" / "ferrymq")
IS_MOSQUITTO = MODE == "mosquitto"

# FerryMQ's defaults (ferrymq.example.toml), mirrored into the Mosquitto config where Mosquitto
# has the same knob, so that both brokers present the same limits to the tests.
DEFAULT_TOPIC_ALIAS_MAXIMUM = 64

_passwd_file: str | None = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


_serve_help: str | None = None


def _ferrymq_has_flag(flag: str) -> bool:
    """Whether `ferrymq serve --help` lists flag (older builds lack some listeners' flags)."""
    global _serve_help
    if _serve_help is None:
        try:
            _serve_help = subprocess.run([FERRYMQ_BIN, "serve", "--help"], capture_output=True,
                                         text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            _serve_help = ""
    return flag in _serve_help


def _mosquitto_bin() -> str:
    return (os.environ.get("MOSQUITTO_BIN") or shutil.which("mosquitto")
            or "/usr/sbin/mosquitto")


def _mosquitto_passwd() -> str:
    """A password file with guest:guest, made once per test process."""
    global _passwd_file
    if _passwd_file is None:
        d = tempfile.mkdtemp(prefix="ferrymq-tests-passwd-")
        atexit.register(shutil.rmtree, d, True)
        path = os.path.join(d, "passwd")
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        subprocess.run([tool, "-b", "-c", path, "guest", "guest"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(path, 0o600)
        _passwd_file = path
    return _passwd_file


class Broker:
    """One broker process on 127.0.0.1:<free port>.

    limits / mqtt / server: dicts written to the [limits] / [mqtt] / [server] tables of a
    FerryMQ TOML config (and mapped onto Mosquitto options where Mosquitto has them).
    tables: more FerryMQ tables by name, e.g. {"auth.http": {...}, "proxy": {...}}.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: pathlib.Path, *, name="broker", allow_anonymous=False,
                 limits=None, mqtt=None, server=None, tables=None):
        self.workdir = pathlib.Path(workdir)
        self.name = name
        self.allow_anonymous = allow_anonymous
        self.limits = dict(limits or {})
        self.mqtt = dict(mqtt or {})
        self.server = dict(server or {})
        self.tables = dict(tables or {})
        self.port: int | None = None
        self.ws_port: int | None = None
        self.mgmt_port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "broker.log"
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.mode = MODE

    # -- config ---------------------------------------------------------------------------

    def _ferrymq_cmd(self) -> list[str]:
        # --ws-listen: FerryMQ also serves MQTT over WebSocket, by default on the fixed port
        # 15675; give every test broker its own port so that brokers can run side by side.
        cmd = [FERRYMQ_BIN, "serve", "--mqtt-listen", f"{self.host}:{self.port}"]
        if _ferrymq_has_flag("--ws-listen"):
            cmd += ["--ws-listen", f"{self.host}:{self.ws_port}"]
        # The management API (default 0.0.0.0:15672) gets a free port of its own too.
        if _ferrymq_has_flag("--management-listen"):
            cmd += ["--management-listen", f"{self.host}:{self.mgmt_port}"]
        cmd += ["--data-dir", str(self.data_dir)]
        tables = {"server": self.server, "mqtt": self.mqtt, "limits": self.limits,
                  **self.tables}
        if any(tables.values()):
            cfg = self.workdir / "ferrymq.toml"
            lines = []
            for table, values in tables.items():
                if values:
                    lines.append(f"[{table}]")
                    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
                    lines.append("")
            cfg.write_text("\n".join(lines))
            cmd += ["--config", str(cfg)]
        if self.allow_anonymous:
            cmd.append("--allow-anonymous")
        cmd += ["--log-level", "debug"]
        # Escape hatch for flags the harness does not know about yet (e.g. to move listeners
        # other than MQTT/TCP away from their fixed default ports).
        cmd += shlex.split(os.environ.get("FERRYMQ_EXTRA_ARGS", ""))
        return cmd

    def _mosquitto_cmd(self) -> list[str]:
        lim = self.limits
        lines = [
            # Started as root, Mosquitto would switch to user "mosquitto", which cannot read the
            # password file in the test's private temp directory.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "per_listener_settings false",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "connection_messages true",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"password_file {_mosquitto_passwd()}",
        ]
        if "max_packet_size" in lim:
            lines.append(f"max_packet_size {lim['max_packet_size']}")
        if "max_inflight" in lim:
            lines.append(f"max_inflight_messages {lim['max_inflight']}")
        if "max_queued_messages" in lim:
            lines.append(f"max_queued_messages {lim['max_queued_messages']}")
        if "max_queued_bytes" in lim:
            lines.append(f"max_queued_bytes {lim['max_queued_bytes']}")
        lines.append(f"listener {self.port} {self.host}")
        lines.append(
            f"max_topic_alias {lim.get('topic_alias_maximum', DEFAULT_TOPIC_ALIAS_MAXIMUM)}")
        if "max_connections" in lim:
            # Mosquitto 2.0.11 admits max_connections + 1 clients (it compares with `>`).
            lines.append(f"max_connections {max(lim['max_connections'] - 1, 1)}")
        cfg = self.workdir / "mosquitto.conf"
        cfg.write_text("\n".join(lines) + "\n")
        return [_mosquitto_bin(), "-c", str(cfg)]

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        if self.port is None:
            self.port = free_port()
            self.ws_port = free_port()
            while self.ws_port == self.port:
                self.ws_port = free_port()
            self.mgmt_port = free_port()
            while self.mgmt_port in (self.port, self.ws_port):
                self.mgmt_port = free_port()
        if self.mode == "mosquitto":
            cmd = self._mosquitto_cmd()
        else:
            if not os.path.exists(FERRYMQ_BIN):
                raise RuntimeError(
                    f"FerryMQ binary not found at {FERRYMQ_BIN}: run `cargo build --release` "
                    "or set FERRYMQ_BIN")
            cmd = self._ferrymq_cmd()
        with open(self.log_path, "ab") as log:
            log.write(f"==== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, cwd=self.workdir,
                                         start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} during startup:\n"
                    + self.log_tail(40))
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not accept connections on port {self.port} "
                           f"within {timeout}s:\n" + self.log_tail(40))

    @property
    def mgmt_url(self) -> str:
        """The management HTTP API's base URL, e.g. http://127.0.0.1:40123."""
        return f"http://{self.host}:{self.mgmt_port}"

    def terminate(self) -> None:
        """Send SIGTERM (graceful shutdown) without waiting."""
        if self.running:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        """Wait for the process to exit; its exit code, or None when still running."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def restart(self) -> None:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        self.start()

    def log_tail(self, lines: int = 60) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        text = data.decode("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])

    def __repr__(self) -> str:
        return f"<{self.name} {self.mode} {self.host}:{self.port}>"
