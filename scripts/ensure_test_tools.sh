#!/usr/bin/env bash
# Make sure Debian's coturn (`turnserver`) and iproute2 (`ip netns`) are present for the TURN
# test (tests/test_turn.py), and PulseAudio (`pulseaudio`, `parec`) for the lip-sync test's
# audio output (tests/audio_output.py). Idempotent; installs only as root, like
# ensure_chromium.sh.
set -euo pipefail

if command -v turnserver >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
    && command -v pulseaudio >/dev/null 2>&1 && command -v parec >/dev/null 2>&1; then
    echo "coturn present: $(turnserver --version 2>/dev/null | head -1); pulseaudio present"
    exit 0
fi

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "coturn, iproute2 or pulseaudio missing; install them with:" >&2
    echo "    sudo apt-get install -y --no-install-recommends coturn iproute2 pulseaudio pulseaudio-utils" >&2
    echo "(the TURN test skips until then, it also needs root for network namespaces; the" >&2
    echo "lip-sync test hears the receiver through its AudioWorklet instead)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends coturn iproute2 pulseaudio pulseaudio-utils
echo "installed: $(turnserver --version 2>/dev/null | head -1)"
