#!/usr/bin/env bash
# Run the test suite on SQLite and, when a PostgreSQL server can be had, on PostgreSQL too.
# ACTANA_TEST_POSTGRES_URL picks a server; without it, as root on Debian we install and start
# one (.ci/postgres.sh); otherwise the PostgreSQL half is skipped and pytest says so.
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
exec .venv/bin/pytest "$@"
