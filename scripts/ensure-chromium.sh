#!/usr/bin/env bash
# The browser tests (tests/browser) drive Debian's chromium through Playwright's executable_path:
# Playwright never downloads a browser of its own. As root on Debian, install `chromium` from
# Debian's packages when it is missing; elsewhere only say so.
# Prints the browser's path and exits 0 when one is there at the end; exits 1 otherwise.
# ACTANA_TEST_CHROMIUM names a browser binary to use instead of looking one up.
set -euo pipefail

find_chromium() {
  if [ -n "${ACTANA_TEST_CHROMIUM:-}" ]; then
    if [ -x "$ACTANA_TEST_CHROMIUM" ]; then echo "$ACTANA_TEST_CHROMIUM"; fi
    return 0
  fi
  command -v chromium 2>/dev/null || true
}

found=$(find_chromium)
if [ -n "$found" ]; then
  echo "$found"
  exit 0
fi
if [ -n "${ACTANA_TEST_CHROMIUM:-}" ]; then
  echo "error: ACTANA_TEST_CHROMIUM=$ACTANA_TEST_CHROMIUM is not an executable file" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: chromium is not installed; the browser tests (tests/browser) need it" >&2
  exit 1
fi

echo "installing chromium from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=l
# Quietly first from the current package lists; refresh them only when that fails.
apt-get install -y -qq chromium >/dev/null 2>&1 \
  || { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }
found=$(find_chromium)
if [ -z "$found" ]; then
  echo "error: chromium was installed but is not on PATH" >&2
  exit 1
fi
echo "$found"
