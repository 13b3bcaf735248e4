#!/usr/bin/env bash
# Installs what the black-box tests (tests/python, tests/node) need. Idempotent and fast when
# everything is already there: each step runs only when something is missing or changed.
#
#   - Debian packages: mosquitto-clients (mosquitto_pub/mosquitto_sub), plus the mosquitto broker
#     itself when FERRYMQ_TEST_BROKER=mosquitto (used to validate the tests against a reference).
#   - Python venv at tests/.deps/venv with tests/python/requirements.txt (re-installed when that
#     file's hash changes).
#   - node_modules in tests/node via `npm ci` (re-run when package-lock.json's hash changes).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS="$ROOT/tests/.deps"
mkdir -p "$DEPS"

log() { printf '[install-test-deps] %s\n' "$*"; }
die() { printf '[install-test-deps] ERROR: %s\n' "$*" >&2; exit 1; }

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# --- Debian packages ------------------------------------------------------------------------
apt_pkgs=(mosquitto-clients)
if [[ "${FERRYMQ_TEST_BROKER:-ferrymq}" == "mosquitto" ]]; then
    apt_pkgs+=(mosquitto)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
    if ! dpkg -s "$p" >/dev/null 2>&1; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || die "need root or sudo to apt-get install ${missing[*]}"
        SUDO=(sudo)
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Never let the package start a system-wide broker on port 1883.
    policy_rc=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy_rc=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy_rc" >/dev/null
        "${SUDO[@]}" chmod +x "$policy_rc"
    fi
    cleanup_policy() { [[ -n "$policy_rc" ]] && "${SUDO[@]}" rm -f "$policy_rc"; return 0; }
    trap cleanup_policy EXIT
    "${SUDO[@]}" apt-get update -q || log "apt-get update failed; trying the install anyway"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
    cleanup_policy
    trap - EXIT
fi
for tool in mosquitto_pub mosquitto_sub; do
    command -v "$tool" >/dev/null || die "$tool not found after installing mosquitto-clients"
done

# --- Python venv ----------------------------------------------------------------------------
VENV="$DEPS/venv"
REQ="$ROOT/tests/python/requirements.txt"
STAMP="$DEPS/python-requirements.sha256"
want=$(hash_of "$REQ")
if [[ ! -x "$VENV/bin/python" ]] || [[ ! -f "$STAMP" ]] || [[ "$(cat "$STAMP")" != "$want" ]]; then
    PY=${PYTHON:-python3}
    command -v "$PY" >/dev/null || die "python3 not found"
    if [[ ! -x "$VENV/bin/python" ]]; then
        log "creating venv at tests/.deps/venv"
        if ! "$PY" -m venv "$VENV"; then
            rm -rf "$VENV"
            if command -v apt-get >/dev/null && ! dpkg -s python3-venv >/dev/null 2>&1 && [[ $(id -u) -eq 0 ]]; then
                log "python3 -m venv failed; installing python3-venv"
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null \
                    || die "apt-get install python3-venv failed"
                "$PY" -m venv "$VENV" || die "python3 -m venv failed"
            else
                die "python3 -m venv failed (Debian: apt-get install python3-venv)"
            fi
        fi
    fi
    log "pip install -r tests/python/requirements.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" || die "pip install failed"
    echo "$want" >"$STAMP"
fi

# --- Node modules ---------------------------------------------------------------------------
NODE_DIR="$ROOT/tests/node"
LOCK="$NODE_DIR/package-lock.json"
NSTAMP="$DEPS/node-lock.sha256"
command -v node >/dev/null || die "node not found (Node 20 is required)"
command -v npm >/dev/null || die "npm not found"
want=$(hash_of "$LOCK")
if [[ ! -d "$NODE_DIR/node_modules" ]] || [[ ! -f "$NSTAMP" ]] || [[ "$(cat "$NSTAMP")" != "$want" ]]; then
    log "npm ci in tests/node"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed"
    echo "$want" >"$NSTAMP"
fi

log "ok"
