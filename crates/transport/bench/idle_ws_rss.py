#!/usr/bin/env python3
"""Broker memory per idle, authenticated MQTT-over-WebSocket connection.

Opens N WebSocket connections to a running FerryMQ, each completing the HTTP upgrade and an
MQTT 3.1.1 CONNECT (guest/guest, keep-alive 0 so nothing times out), then reads the broker's
RSS from /proc. Reports the growth per connection between N/2 and N connections (the slope,
which leaves out one-time costs such as thread stacks and allocator arenas) and from 0 to N.

    python3 idle_ws_rss.py --pid $(pidof ferrymq) --port 15675 -n 2000 [--tcp]

--tcp measures plain MQTT/TCP instead, for comparison (then --port is the MQTT port).
RSS grows in steps (the allocator commits memory in pages and segments), so a slope from
two points moves by a few hundred bytes between runs; the least-squares slope over ten
points (also printed) is steadier. docs/memory.md has the method and the results.
The default guest/guest password costs one argon2 run (19 MiB, returned to the OS some time
later), which blurs the numbers; a user whose hash has cheap parameters avoids it:
--user alice --password alice-secret with the hash from crates/transport/tests/tls.rs.
"""
import argparse
import base64
import os
import socket
import struct
import time

CREDENTIALS = (b"guest", b"guest")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def mqtt_connect(client_id, user=b"guest", password=b"guest"):
    def s(b):
        return struct.pack("!H", len(b)) + b
    var = s(b"MQTT") + bytes([4, 0xC2]) + struct.pack("!H", 0)
    payload = s(client_id.encode()) + s(user) + s(password)
    body = var + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def ws_frame(payload):
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x82, 0x80 | len(payload)]) + mask + masked


def recv_until(sock, marker):
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"closed: {data!r}")
        data += chunk
    return data


def open_ws(host, port, i):
    sock = socket.create_connection((host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n").encode())
    head = recv_until(sock, b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    rest = head.split(b"\r\n\r\n", 1)[1]
    sock.sendall(ws_frame(mqtt_connect(f"idle-{i}", *CREDENTIALS)))
    # CONNACK in one binary frame: 0x82 0x04 0x20 0x02 0x00 0x00
    while len(rest) < 6:
        rest += sock.recv(64)
    assert rest[2:6] == b"\x20\x02\x00\x00", rest
    return sock


def open_tcp(host, port, i):
    sock = socket.create_connection((host, port))
    sock.sendall(mqtt_connect(f"idle-{i}", *CREDENTIALS))
    ack = b""
    while len(ack) < 4:
        ack += sock.recv(64)
    assert ack == b"\x20\x02\x00\x00", ack
    return sock


def least_squares(points):
    """Slope of the best-fitting line through (connections, KiB) points."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=15675)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--user", default="guest")
    ap.add_argument("--password", default="guest")
    args = ap.parse_args()
    global CREDENTIALS
    CREDENTIALS = (args.user.encode(), args.password.encode())
    opener = open_tcp if args.tcp else open_ws
    # Warm-up: the first login runs argon2 (19 MiB, returned to the OS later), and the
    # allocator and runtime grow their pools once; none of that is per-connection cost.
    warm = [opener(args.host, args.port, -i - 1) for i in range(args.warmup)]
    for s in warm:
        s.close()
    socks = []
    time.sleep(2)
    r0 = rss_kib(args.pid)
    half = args.n // 2
    points = [(0, r0)]
    for i in range(args.n):
        socks.append(opener(args.host, args.port, i))
        if i + 1 == half:
            time.sleep(1)
            r_half = rss_kib(args.pid)
        if (i + 1) % (args.n // 10) == 0 and i + 1 < args.n:
            time.sleep(0.5)
            points.append((i + 1, rss_kib(args.pid)))
    time.sleep(2)
    r_n = rss_kib(args.pid)
    points.append((args.n, r_n))
    kind = "TCP" if args.tcp else "WebSocket"
    print(f"{kind}: RSS {r0} KiB at 0, {r_half} KiB at {half}, {r_n} KiB at {args.n} connections")
    print(f"  slope {half}->{args.n}: {(r_n - r_half) * 1024 / (args.n - half):.0f} B/connection")
    print(f"  0->{args.n}: {(r_n - r0) * 1024 / args.n:.0f} B/connection")
    print(f"  least squares over {len(points)} points: {least_squares(points) * 1024:.0f} B/connection")
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
