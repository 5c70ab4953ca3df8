#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the headless browser tests.
# Playwright cannot download its own browsers here, so we use the distribution build.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" != "0" ]; then
    echo "chromium is missing at $CHROMIUM and we are not root; install it with:" >&2
    echo "    sudo apt-get install -y --no-install-recommends chromium fonts-liberation" >&2
    echo "(the browser end-to-end test skips until then)" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing and apt-get is not available; the browser test will skip" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium fonts-liberation
echo "installed: $("$CHROMIUM" --version)"
