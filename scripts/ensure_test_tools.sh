#!/usr/bin/env bash
# Make sure Debian's coturn (`turnserver`) and iproute2 (`ip netns`) are present for the TURN
# test (tests/test_turn.py). Idempotent; installs only as root, like ensure_chromium.sh.
set -euo pipefail

if command -v turnserver >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then
    echo "coturn present: $(turnserver --version 2>/dev/null | head -1)"
    exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "coturn or iproute2 missing; install them with:" >&2
    echo "    sudo apt-get install -y --no-install-recommends coturn iproute2" >&2
    echo "(the TURN test skips until then; it also needs root for network namespaces)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends coturn iproute2
echo "installed: $(turnserver --version 2>/dev/null | head -1)"
