#!/usr/bin/env bash
# The native sandbox uses bubblewrap (mount, PID and network namespaces) when the host has it.
# As root on Debian, install it from Debian's packages if missing; elsewhere just say so.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }
  exit 0
fi
echo "note: bubblewrap (bwrap) is not installed; native sandboxes get process isolation only" >&2
