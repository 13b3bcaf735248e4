"""A tiny raw-socket MQTT client for the wire details that paho hides.

It hand-encodes the few packets the tests send (CONNECT, PUBLISH, SUBSCRIBE, acks, PINGREQ,
DISCONNECT, arbitrary bytes) and decodes the fixed header plus the fields the tests look at.
It is deliberately dumb: it never acknowledges anything by itself, never pings, and lets a test
send malformed input. Nothing here is shared with FerryMQ's own codec.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field

# Packet types
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = (
    8, 9, 10, 11, 12, 13, 14, 15)

TYPE_NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
    7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
    12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# v5 properties: name -> (identifier, kind)
PROPS = {
    "PayloadFormatIndicator": (0x01, "byte"),
    "MessageExpiryInterval": (0x02, "u32"),
    "ContentType": (0x03, "str"),
    "ResponseTopic": (0x08, "str"),
    "CorrelationData": (0x09, "bin"),
    "SubscriptionIdentifier": (0x0B, "varint"),
    "SessionExpiryInterval": (0x11, "u32"),
    "AssignedClientIdentifier": (0x12, "str"),
    "ServerKeepAlive": (0x13, "u16"),
    "AuthenticationMethod": (0x15, "str"),
    "AuthenticationData": (0x16, "bin"),
    "RequestProblemInformation": (0x17, "byte"),
    "WillDelayInterval": (0x18, "u32"),
    "RequestResponseInformation": (0x19, "byte"),
    "ResponseInformation": (0x1A, "str"),
    "ServerReference": (0x1C, "str"),
    "ReasonString": (0x1F, "str"),
    "ReceiveMaximum": (0x21, "u16"),
    "TopicAliasMaximum": (0x22, "u16"),
    "TopicAlias": (0x23, "u16"),
    "MaximumQoS": (0x24, "byte"),
    "RetainAvailable": (0x25, "byte"),
    "UserProperty": (0x26, "pair"),
    "MaximumPacketSize": (0x27, "u32"),
    "WildcardSubscriptionAvailable": (0x28, "byte"),
    "SubscriptionIdentifierAvailable": (0x29, "byte"),
    "SharedSubscriptionAvailable": (0x2A, "byte"),
}
PROPS_BY_ID = {ident: (name, kind) for name, (ident, kind) in PROPS.items()}
REPEATABLE = {"UserProperty", "SubscriptionIdentifier"}


class ProtocolError(Exception):
    """The peer sent bytes this helper cannot decode."""


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def mqtt_str(s) -> bytes:
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return struct.pack("!H", len(b)) + b


def encode_props(props: dict | None) -> bytes:
    body = bytearray()
    for name, value in (props or {}).items():
        ident, kind = PROPS[name]
        values = value if name in REPEATABLE else [value]
        for v in values:
            body += varint(ident)
            if kind == "byte":
                body += struct.pack("!B", v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "varint":
                body += varint(v)
            elif kind in ("str", "bin"):
                body += mqtt_str(v)
            elif kind == "pair":
                body += mqtt_str(v[0]) + mqtt_str(v[1])
    return varint(len(body)) + bytes(body)


def packet(ptype: int, flags: int, body: bytes) -> bytes:
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def connect_packet(client_id="", *, version=5, clean=True, keepalive=60, username="guest",
                   password="guest", will=None, properties=None, protocol_name=None) -> bytes:
    """CONNECT. version: 3 (MQTT 3.1, "MQIsdp"), 4 (3.1.1) or 5.

    will: dict(topic=..., payload=b"...", qos=0, retain=False, properties={...})
    """
    if protocol_name is None:
        protocol_name = "MQIsdp" if version == 3 else "MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    if will is not None:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    vh = mqtt_str(protocol_name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        vh += encode_props(properties)
    pl = mqtt_str(client_id)
    if will is not None:
        if version == 5:
            pl += encode_props(will.get("properties"))
        pl += mqtt_str(will["topic"]) + mqtt_str(will.get("payload", b""))
    if username is not None:
        pl += mqtt_str(username)
    if password is not None:
        pl += mqtt_str(password.encode() if isinstance(password, str) else password)
    return packet(CONNECT, 0, vh + pl)


def publish_packet(topic, payload=b"", *, qos=0, retain=False, dup=False, packet_id=None,
                   version=5, properties=None) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    vh = mqtt_str(topic)
    if qos > 0:
        vh += struct.pack("!H", packet_id if packet_id is not None else 1)
    if version == 5:
        vh += encode_props(properties)
    return packet(PUBLISH, flags, vh + payload)


def subscribe_packet(packet_id, filters, *, version=5, properties=None) -> bytes:
    """filters: list of (filter, options) where options is the QoS (v3) or the v5 options byte.
    Use sub_options() to build a v5 options byte."""
    body = struct.pack("!H", packet_id)
    if version == 5:
        body += encode_props(properties)
    for flt, opts in filters:
        body += mqtt_str(flt) + bytes([opts])
    return packet(SUBSCRIBE, 0x02, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0) -> int:
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | (
        retain_handling << 4)


def ack_packet(ptype, packet_id, *, reason=None, version=5, properties=None) -> bytes:
    flags = 0x02 if ptype == PUBREL else 0
    body = struct.pack("!H", packet_id)
    if version == 5 and (reason is not None or properties):
        body += bytes([reason or 0])
        if properties:
            body += encode_props(properties)
    return packet(ptype, flags, body)


def disconnect_packet(reason=None, *, version=5, properties=None) -> bytes:
    if version != 5 or (reason is None and not properties):
        return packet(DISCONNECT, 0, b"")
    body = bytes([reason or 0])
    if properties:
        body += encode_props(properties)
    return packet(DISCONNECT, 0, body)


PINGREQ_PACKET = packet(PINGREQ, 0, b"")


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProtocolError(f"truncated: need {n} bytes at {self.pos} of {len(self.data)}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return struct.unpack("!H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("!I", self.take(4))[0]

    def varint(self) -> int:
        mult, value = 1, 0
        for _ in range(4):
            b = self.u8()
            value += (b & 0x7F) * mult
            if not b & 0x80:
                return value
            mult *= 128
        raise ProtocolError("malformed variable byte integer")

    def bin(self) -> bytes:
        return self.take(self.u16())

    def str(self) -> str:
        return self.bin().decode("utf-8")

    def props(self) -> dict:
        length = self.varint()
        sub = Reader(self.take(length))
        out: dict = {}
        while sub.remaining():
            ident = sub.varint()
            if ident not in PROPS_BY_ID:
                raise ProtocolError(f"unknown property id {ident:#x}")
            name, kind = PROPS_BY_ID[ident]
            if kind == "byte":
                v = sub.u8()
            elif kind == "u16":
                v = sub.u16()
            elif kind == "u32":
                v = sub.u32()
            elif kind == "varint":
                v = sub.varint()
            elif kind == "str":
                v = sub.str()
            elif kind == "bin":
                v = sub.bin()
            else:
                v = (sub.str(), sub.str())
            if name in REPEATABLE:
                out.setdefault(name, []).append(v)
            else:
                out[name] = v
        return out


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    version: int = 5
    # Decoded fields (filled by decode()):
    reason: int | None = None          # CONNACK return/reason code, acks, DISCONNECT
    session_present: bool | None = None
    properties: dict = field(default_factory=dict)
    packet_id: int | None = None
    topic: str | None = None
    payload: bytes | None = None
    qos: int | None = None
    retain: bool | None = None
    dup: bool | None = None
    codes: list | None = None          # SUBACK / UNSUBACK

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type{self.type}")

    def __repr__(self) -> str:
        parts = [self.name]
        for attr in ("reason", "session_present", "packet_id", "topic", "qos", "retain", "dup",
                     "codes"):
            v = getattr(self, attr)
            if v is not None:
                parts.append(f"{attr}={v!r}")
        if self.payload is not None:
            parts.append(f"payload={self.payload[:40]!r}{'...' if len(self.payload) > 40 else ''}")
        if self.properties:
            parts.append(f"props={self.properties!r}")
        return "<" + " ".join(parts) + ">"

    def decode(self) -> "Packet":
        r = Reader(self.body)
        v5 = self.version == 5
        t = self.type
        if t == CONNACK:
            self.session_present = bool(r.u8() & 0x01)
            self.reason = r.u8()
            if v5 and r.remaining():
                self.properties = r.props()
        elif t == PUBLISH:
            self.dup = bool(self.flags & 0x08)
            self.qos = (self.flags >> 1) & 0x03
            self.retain = bool(self.flags & 0x01)
            self.topic = r.str()
            if self.qos > 0:
                self.packet_id = r.u16()
            if v5:
                self.properties = r.props()
            self.payload = r.take(r.remaining())
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP):
            self.packet_id = r.u16()
            self.reason = 0
            if v5 and r.remaining():
                self.reason = r.u8()
                if r.remaining():
                    self.properties = r.props()
        elif t in (SUBACK, UNSUBACK):
            self.packet_id = r.u16()
            if v5:
                self.properties = r.props()
            self.codes = list(r.take(r.remaining()))
        elif t == DISCONNECT:
            self.reason = 0
            if v5 and r.remaining():
                self.reason = r.u8()
                if r.remaining():
                    self.properties = r.props()
        return self


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """One TCP connection to the broker. All reads take a timeout; nothing happens implicitly."""

    def __init__(self, host: str, port: int, *, version: int = 5, timeout: float = 5.0):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self._next_id = 0

    # -- plumbing ---------------------------------------------------------------------------

    def next_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> bool:
        """Send, returning False instead of raising when the broker already closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def _fill(self, deadline: float) -> bool:
        """Read more bytes. False on timeout; raises Closed on EOF/reset."""
        if self.eof:
            raise Closed()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            self.eof = True
            raise Closed()
        if not chunk:
            self.eof = True
            raise Closed()
        self.buf += chunk
        return True

    def _try_parse(self) -> Packet | None:
        if len(self.buf) < 2:
            return None
        mult, length, i = 1, 0, 1
        while True:
            if i >= len(self.buf):
                return None
            b = self.buf[i]
            length += (b & 0x7F) * mult
            i += 1
            if not b & 0x80:
                break
            mult *= 128
            if i > 4:
                raise ProtocolError("malformed remaining length from broker")
        if len(self.buf) < i + length:
            return None
        first = self.buf[0]
        body = bytes(self.buf[i:i + length])
        del self.buf[:i + length]
        return Packet(first >> 4, first & 0x0F, body, self.version).decode()

    def recv(self, timeout: float = 5.0) -> Packet:
        """Next packet. Raises TimeoutError if none arrives in time, Closed on EOF."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._try_parse()
            if p is not None:
                return p
            if not self._fill(deadline):
                raise TimeoutError(f"no packet from the broker within {timeout}s")

    def recv_or_none(self, timeout: float) -> Packet | None:
        """Next packet, or None when nothing arrives within timeout. Raises Closed on EOF."""
        try:
            return self.recv(timeout)
        except TimeoutError:
            return None

    def expect(self, ptype: int, timeout: float = 5.0) -> Packet:
        p = self.recv(timeout)
        assert p.type == ptype, f"expected {TYPE_NAMES[ptype]}, got {p!r}"
        return p

    def wait_closed(self, timeout: float = 5.0) -> list[Packet]:
        """Wait until the broker closes the connection; returns the packets received before.
        Fails the test if the connection is still open after timeout."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                p = self._try_parse()
            except ProtocolError:
                p = None
                self.buf.clear()
            if p is not None:
                got.append(p)
                continue
            try:
                if not self._fill(deadline):
                    raise AssertionError(
                        f"broker did not close the connection within {timeout}s; got {got!r}")
            except Closed:
                return got

    def is_open(self, timeout: float = 0.3) -> bool:
        """True when the connection is still open after timeout (packets are discarded)."""
        try:
            deadline = time.monotonic() + timeout
            while self._fill(deadline):
                pass
            return True
        except Closed:
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close abruptly: RST instead of FIN, no DISCONNECT."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # -- MQTT helpers -----------------------------------------------------------------------

    def connect(self, client_id="", *, clean=True, keepalive=60, username="guest",
                password="guest", will=None, properties=None, timeout=5.0) -> Packet:
        """Send CONNECT and return the CONNACK (whatever its code)."""
        self.send(connect_packet(client_id, version=self.version, clean=clean,
                                 keepalive=keepalive, username=username, password=password,
                                 will=will, properties=properties))
        return self.expect(CONNACK, timeout)

    def publish(self, topic, payload=b"", *, qos=0, retain=False, dup=False, packet_id=None,
                properties=None) -> int | None:
        if qos and packet_id is None:
            packet_id = self.next_id()
        self.send(publish_packet(topic, payload, qos=qos, retain=retain, dup=dup,
                                 packet_id=packet_id, version=self.version,
                                 properties=properties))
        return packet_id

    def subscribe(self, filters, *, properties=None, timeout=5.0) -> Packet:
        """filters: [(filter, options)] (or a single filter string, QoS 0). Returns SUBACK."""
        if isinstance(filters, str):
            filters = [(filters, 0)]
        pid = self.next_id()
        self.send(subscribe_packet(pid, filters, version=self.version, properties=properties))
        p = self.expect(SUBACK, timeout)
        assert p.packet_id == pid, f"SUBACK for {p.packet_id}, expected {pid}"
        return p

    def ack(self, ptype, packet_id, reason=None) -> None:
        self.send(ack_packet(ptype, packet_id, reason=reason, version=self.version))

    def disconnect(self, reason=None, properties=None) -> None:
        self.send(disconnect_packet(reason, version=self.version, properties=properties))
        self.close()


def connected(broker, client_id="", *, version=5, **kw) -> RawClient:
    """A RawClient connected with guest/guest (by default); asserts success."""
    c = RawClient(broker.host, broker.port, version=version)
    ack = c.connect(client_id, **kw)
    assert ack.reason == 0, f"CONNECT refused: {ack!r}"
    return c
