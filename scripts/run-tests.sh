#!/usr/bin/env bash
# Run the test suite on SQLite and, when a PostgreSQL server can be had, on PostgreSQL too.
# ACTANA_TEST_POSTGRES_URL picks a server; without it, as root on Debian we install and start
# one (.ci/postgres.sh); otherwise the PostgreSQL half is skipped and pytest says so.
# Docker likewise: as root we install and start it (scripts/ensure-docker.sh) and build the
# sandbox image; without a daemon the Docker tests skip (fail under ACTANA_TEST_REQUIRE_DOCKER=1).
# Chromium for the browser tests likewise: as root on Debian we install the package
# (scripts/ensure-chromium.sh); without it they skip (fail under ACTANA_TEST_REQUIRE_BROWSER=1).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-bubblewrap.sh

if [ -z "${ACTANA_TEST_POSTGRES_URL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  ACTANA_TEST_POSTGRES_URL=$(.ci/postgres.sh)
  export ACTANA_TEST_POSTGRES_URL
fi
if [ -z "${ACTANA_TEST_POSTGRES_URL:-}" ]; then
  echo "note: no PostgreSQL server; set ACTANA_TEST_POSTGRES_URL to run the PostgreSQL half" >&2
fi
if [ "$(id -u)" = 0 ]; then
  scripts/ensure-docker.sh || echo "note: no Docker daemon could be started; Docker tests will skip" >&2
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  scripts/ensure-chromium.sh >/dev/null || echo "note: chromium could not be installed; browser tests will skip" >&2
fi
# A no-op when the image is current; nothing at all without a daemon. A failed build is not fatal
# here: the tests that need the image say why it is missing.
.venv/bin/actana sandbox build-image --if-docker >/dev/null \
  || echo "note: the sandbox image could not be built (see above)" >&2
exec .venv/bin/pytest "$@"
