#!/usr/bin/env bash
# The browser end-to-end suite: mqtt.js in real headless Chromium (Debian's) against the broker
# over ws://, wss:// and wss:// through nginx (docs/deploy/nginx.conf). See tests/browser/README.md.
#
#   bash scripts/test-browser.sh                              # FerryMQ: target/release/ferrymq
#   FERRYMQ_BIN=/path/to/ferrymq bash scripts/test-browser.sh
#   FERRYMQ_TEST_BROKER=mosquitto bash scripts/test-browser.sh   # validate the tests on Mosquitto
#   bash scripts/test-browser.sh tests/browser/ws.test.mjs    # some test files only
#
# Installs what it needs first (scripts/install-browser-deps.sh). Exits non-zero when a test
# fails, after printing the tail of every broker and nginx log of the run.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash "$ROOT/scripts/install-browser-deps.sh"

mode=${FERRYMQ_TEST_BROKER:-ferrymq}
if [[ "$mode" == "ferrymq" ]]; then
    bin=${FERRYMQ_BIN:-$ROOT/target/release/ferrymq}
    if [[ ! -x "$bin" ]]; then
        echo "[test-browser] FerryMQ binary not found at $bin: run \`cargo build --release\` or set FERRYMQ_BIN" >&2
        exit 1
    fi
fi

# Broker, nginx and certificate files of this run; kept and shown when something fails.
FERRYMQ_BROWSER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ferrymq-browser-run.XXXXXX")
export FERRYMQ_BROWSER_TMP
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

if (($#)); then
    files=("$@")
else
    files=("$ROOT/tests/browser/")
fi

echo "[test-browser] broker: $mode; node --test ${files[*]}"
status=0
# Files one at a time: each starts its own broker and Chromium, and the machine has 2 cores.
node --test --test-concurrency=1 "${files[@]}" || status=$?

if ((status != 0)); then
    echo
    echo "[test-browser] FAILED (exit $status). Logs of this run ($FERRYMQ_BROWSER_TMP):"
    while IFS= read -r -d '' log; do
        echo
        echo "===== ${log#"$FERRYMQ_BROWSER_TMP"/} (last 60 lines) ====="
        tail -n 60 "$log"
    done < <(find "$FERRYMQ_BROWSER_TMP" -type f \( -name '*.log' -o -name 'nginx.stderr' \) -print0 | sort -z)
    exit "$status"
fi
rm -rf "$FERRYMQ_BROWSER_TMP"
