#!/usr/bin/env bash
# The container sandbox flavor needs a Docker daemon. As root on Debian: install the engine from
# Debian's packages (docker.io) when it is missing, start dockerd when nothing answers, and wait
# until it does. As anyone else: only say whether a daemon answers.
# Exit 0 when `docker info` works at the end, 1 otherwise.
set -euo pipefail

log_file=${ACTANA_DOCKERD_LOG:-/tmp/actana-dockerd.log}
wait_sec=${ACTANA_DOCKERD_WAIT_SEC:-60}

answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if answers; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "note: no Docker daemon answers; the container sandbox flavor (and its tests) need one" >&2
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: the Docker engine is not installed, and there is no apt-get to install it" >&2
    exit 1
  fi
  echo "installing the Docker engine (docker.io) from Debian's packages" >&2
  # needrestart (a recommend) would otherwise offer to restart services mid-install.
  export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
  apt-get update -qq >/dev/null
  apt-get install -y -qq docker.io >/dev/null
fi

# One already starting (a service, or an earlier call of this script) is waited for, not doubled.
if ! answers && ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "starting dockerd (log: $log_file)" >&2
  # setsid: the daemon must outlive this script and the make or CI step that called it.
  setsid dockerd >"$log_file" 2>&1 </dev/null &
fi

for _ in $(seq "$wait_sec"); do
  if answers; then
    exit 0
  fi
  sleep 1
done
echo "error: the Docker daemon did not answer within ${wait_sec}s; end of $log_file:" >&2
tail -n 20 "$log_file" >&2 2>/dev/null || true
exit 1
