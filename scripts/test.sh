#!/usr/bin/env bash
# The project's test command (README): formatting, lints, release build, Rust tests, then the
# black-box suites (tests/python with paho-mqtt + mosquitto clients, tests/node with mqtt.js,
# tests/browser with mqtt.js in headless Chromium, directly and behind nginx) against the
# release binary.
#
#   scripts/test.sh               everything
#   scripts/test.sh --quick       skip cargo fmt / clippy
#   scripts/test.sh --tests-only  only the black-box suites (no cargo at all); with
#                                 FERRYMQ_TEST_BROKER=mosquitto this validates the tests
#                                 against Mosquitto
#
# Environment: FERRYMQ_BIN (default target/release/ferrymq), FERRYMQ_TEST_BROKER
# (ferrymq | mosquitto), PYTEST_ARGS (extra pytest arguments, e.g. "-k will").
set -euo pipefail

cd "$(dirname "$0")/.."

quick=0
tests_only=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --tests-only) tests_only=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

step_no=0
step() {
    step_no=$((step_no + 1))
    local name=$1
    shift
    printf '\n==== [%d] %s\n' "$step_no" "$name"
    local start=$SECONDS
    if "$@"; then
        printf '==== [%d] %s: ok (%ds)\n' "$step_no" "$name" $((SECONDS - start))
    else
        local rc=$?
        printf '\n==== FAILED: step [%d] %s (exit code %d)\n' "$step_no" "$name" "$rc" >&2
        exit "$rc"
    fi
}

if ((tests_only == 0)); then
    if ((quick == 0)); then
        step "cargo fmt --check" cargo fmt --all -- --check
        step "cargo clippy (-D warnings)" cargo clippy --workspace --all-targets -- -D warnings
    fi
    step "cargo build --release" cargo build --release
    step "cargo test --release" cargo test --workspace --release
    # The protocol and transport suites again with every MQTT/TCP and WebSocket connection
    # hibernating as soon as it is quiet for a millisecond: sleeping must change nothing a
    # client can see.
    step "cargo test --release: testkit and transport, hibernating at every pause" \
        env FERRYMQ_TEST_HIBERNATE_MS=1 cargo test --release -p ferrymq-testkit -p ferrymq-transport
fi

step "install test dependencies" bash scripts/install-test-deps.sh

export FERRYMQ_BIN=${FERRYMQ_BIN:-${CARGO_TARGET_DIR:-$PWD/target}/release/ferrymq}
if [[ "${FERRYMQ_TEST_BROKER:-ferrymq}" == "ferrymq" && ! -x "$FERRYMQ_BIN" ]]; then
    echo "FerryMQ binary not found at $FERRYMQ_BIN (run cargo build --release)" >&2
    exit 1
fi
echo "broker under test: ${FERRYMQ_TEST_BROKER:-ferrymq} (${FERRYMQ_BIN})"

# shellcheck disable=SC2086  # PYTEST_ARGS is split on purpose
step "black-box tests: python (paho-mqtt, mosquitto clients)" \
    tests/.deps/venv/bin/pytest tests/python -q --timeout 60 ${PYTEST_ARGS:-}
# The files are listed explicitly (same set as `node --test tests/node/` on Node 20, and
# independent of how later Node versions treat a directory argument).
step "black-box tests: node (mqtt.js)" \
    node --test --test-concurrency=1 --test-timeout=120000 tests/node/*.test.mjs

step "browser tests: Chromium + mqtt.js over ws, wss and nginx" bash scripts/test-browser.sh
step "ferrymq bench smoke run (tcp, ws)" bash scripts/bench-smoke.sh

printf '\n==== all steps passed\n'
