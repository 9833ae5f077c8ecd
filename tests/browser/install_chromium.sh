#!/bin/sh
# Debian's Chromium for the browser tests (tests/browser): Playwright drives it through
# executable_path, since `playwright install` cannot download browsers here. Idempotent: does
# nothing when the binary is already there (AFLUENTE_CHROMIUM, default /usr/bin/chromium).
set -eu
CHROMIUM="${AFLUENTE_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
test -x "$CHROMIUM"
