#!/usr/bin/env bash
# A short `ferrymq bench` run against a fresh broker, so the load generator keeps working
# end to end (the real measurements are bench/compare's; no timing is asserted here).
# The generator exits non-zero on any loss or error.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FERRYMQ_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/ferrymq}
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wsport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --mqtt-listen "127.0.0.1:$port" --ws-listen "127.0.0.1:$wsport" \
    --management-listen 127.0.0.1:0 --data-dir "$work/data" \
    --log-level warn >"$work/broker.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
for transport in tcp ws; do
    p=$port; [[ $transport == ws ]] && p=$wsport
    echo "== ferrymq bench pubsub over $transport"
    "$BIN" bench pubsub --transport "$transport" --port "$p" -u guest -P guest \
        --pubs 2 --subs 2 -q 1 --rate 500 -d 2s || { cat "$work/broker.log"; exit 1; }
done
echo "== ferrymq bench conn, two generator processes of one worker thread each"
"$BIN" bench conn --port "$port" -u guest -P guest -c 200 --processes 2 --threads 1 -d 0 \
    || { cat "$work/broker.log"; exit 1; }
