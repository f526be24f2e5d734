#!/usr/bin/env bash
# Install Debian's Chromium for the dashboard's browser test (tests/e2e/test_browser.py).
# Idempotent: does nothing when /usr/bin/chromium is already there. Never uses `playwright install`.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium
/usr/bin/chromium --version
