#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (test/browser/) unless it is already there.
# Never a downloaded browser: playwright-core drives /usr/bin/chromium as packaged by Debian.
# Idempotent: a machine that has it does nothing (and needs no root).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "ensure-chromium: /usr/bin/chromium is missing and we are not root (no sudo) to install it" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
/usr/bin/chromium --version
