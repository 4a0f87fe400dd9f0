#!/usr/bin/env bash
# Install (from Debian's packages) and start a PostgreSQL server for the test suite, then print
# the URL the tests should use. Idempotent: safe to run when it is already up.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$version main$"; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
  pg_ctlcluster "$version" main start >&2
fi

for _ in $(seq 1 50); do
  runuser -u postgres -- pg_isready -q && break
  sleep 0.2
done

runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL' >&2
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'actana') THEN
    CREATE ROLE actana LOGIN CREATEDB PASSWORD 'actana';
  END IF;
END $$;
-- DROP DATABASE ... WITH (FORCE) ends the sessions still on a test database; one of them can
-- be an autovacuum worker, which only a member of pg_signal_backend may end.
GRANT pg_signal_backend TO actana;
SQL
port=$(pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $3}')
echo "postgresql+psycopg://actana:actana@127.0.0.1:${port}/postgres"
