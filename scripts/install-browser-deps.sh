#!/usr/bin/env bash
# Installs what the browser end-to-end tests (tests/browser) and the example page
# (examples/browser) need. Idempotent and fast when everything is already there: each step runs
# only when something is missing or changed.
#
#   - Debian packages: chromium (driven by playwright-core; no browser is ever downloaded),
#     nginx (the TLS-terminating proxy test), openssl (self-signed certificates), and the mosquitto
#     broker only when FERRYMQ_TEST_BROKER=mosquitto (the reference the tests are validated on).
#     The nginx and mosquitto packages would start system-wide services: they are kept from
#     starting (policy-rc.d) and disabled, since the tests run their own instances on free ports.
#   - `npm ci` in tests/browser (playwright-core) and examples/browser (mqtt), each re-run only
#     when its package-lock.json's hash changes (stamps in tests/.deps/).
#   - paho-mqtt for the Python/TCP "device": tests/.deps/venv when scripts/install-test-deps.sh
#     made it, else a small venv of our own at tests/.deps/browser-venv.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEPS="$ROOT/tests/.deps"
mkdir -p "$DEPS"

log() { printf '[install-browser-deps] %s\n' "$*"; }
die() { printf '[install-browser-deps] ERROR: %s\n' "$*" >&2; exit 1; }
hash_of() { sha256sum "$1" | cut -d' ' -f1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    SUDO=(sudo)
fi

# --- Debian packages ------------------------------------------------------------------------
apt_pkgs=(chromium nginx openssl)
if [[ "${FERRYMQ_TEST_BROKER:-ferrymq}" == "mosquitto" ]]; then
    apt_pkgs+=(mosquitto)
fi
missing=()
for p in "${apt_pkgs[@]}"; do
    # `dpkg -s` also succeeds for removed-but-not-purged packages: check the status line.
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if ((${#SUDO[@]})); then
        command -v sudo >/dev/null || die "need root or sudo to apt-get install ${missing[*]}"
    fi
    log "apt-get install ${missing[*]}"
    # Keep the packages' maintainer scripts from starting nginx on port 80 or mosquitto on 1883.
    policy_rc=""
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        policy_rc=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy_rc" >/dev/null
        "${SUDO[@]}" chmod +x "$policy_rc"
    fi
    cleanup_policy() { if [[ -n "$policy_rc" ]]; then "${SUDO[@]}" rm -f "$policy_rc"; fi; return 0; }
    trap cleanup_policy EXIT
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
        || log "apt-get update failed; trying the install anyway"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" || die "apt-get install ${missing[*]} failed"
    cleanup_policy
    trap - EXIT
    # On a machine with systemd the services would start at the next boot: disable them. Where
    # one did start anyway, stop it; it would be harmless (the tests use free ports), but idle.
    for svc in nginx mosquitto; do
        [[ " ${missing[*]} " == *" $svc "* ]] || continue
        if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
            "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif command -v service >/dev/null; then
            "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
fi
[[ -x /usr/bin/chromium ]] || die "/usr/bin/chromium not found after installing chromium"
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || die "nginx not found after installing nginx"
command -v openssl >/dev/null || die "openssl not found"

# --- Node modules ---------------------------------------------------------------------------
command -v node >/dev/null || die "node not found (Node 20 is required)"
command -v npm >/dev/null || die "npm not found"
# playwright-core never downloads a browser by itself; this is belt and braces for any
# dependency that might try.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm_ci() { # DIR STAMPNAME
    local dir="$ROOT/$1" stamp="$DEPS/$2" want
    want=$(hash_of "$dir/package-lock.json")
    if [[ ! -d "$dir/node_modules" ]] || [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
        log "npm ci in $1"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $1 failed"
        echo "$want" >"$stamp"
    fi
}
npm_ci tests/browser browser-tests-lock.sha256
npm_ci examples/browser browser-example-lock.sha256

# --- Python "device" (paho-mqtt) ------------------------------------------------------------
PAHO="paho-mqtt==2.1.0"
if [[ -x "$DEPS/venv/bin/python" ]] && "$DEPS/venv/bin/python" -c 'import paho.mqtt' 2>/dev/null; then
    : # the black-box suite's venv has it
else
    VENV="$DEPS/browser-venv"
    STAMP="$DEPS/browser-venv.stamp"
    if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$STAMP" 2>/dev/null)" != "$PAHO" ]]; then
        PY=${PYTHON:-python3}
        command -v "$PY" >/dev/null || die "python3 not found"
        [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV" \
            || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        log "pip install $PAHO into tests/.deps/browser-venv"
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$PAHO" || die "pip install failed"
        echo "$PAHO" >"$STAMP"
    fi
fi

log "ok"
