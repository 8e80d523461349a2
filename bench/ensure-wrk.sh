#!/bin/sh
# wrk drives the cached path: autocannon tops out near 3k small responses/s on this machine
# (about 60 MB/s) whatever the server, so it would measure itself. Debian packages wrk.
set -eu
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "wrk is missing and apt-get is not available: install wrk (https://github.com/wg/wrk) and retry" >&2
  exit 1
fi
SUDO=''
if [ "$(id -u)" -ne 0 ]; then
  SUDO='sudo'
fi
echo "installing wrk (apt-get install -y wrk)" >&2
$SUDO apt-get install -y wrk >&2 || { $SUDO apt-get update >&2 && $SUDO apt-get install -y wrk >&2; }
command -v wrk >/dev/null 2>&1
