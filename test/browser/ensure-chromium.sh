#!/usr/bin/env bash
# Debian's Chromium for the browser tests (playwright's own browser downloads cannot work here).
set -euo pipefail
command -v chromium >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "chromium is missing and installing it needs root" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
