#!/usr/bin/env bash
# Runs a command next to a throwaway PostgreSQL server:
#   scripts/with-postgres.sh cargo test -p tracex-collector -- --ignored postgres
# Installs PostgreSQL if missing (Debian: apt-get install postgresql), starts a server on a free
# loopback port in a temporary directory, exports
#   TRACEX_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:PORT/postgres
# runs the command, and always stops the server and removes the directory. Exits with the
# command's status. With WITH_POSTGRES_REPLICA=1 it also starts a streaming read replica of that
# server (pg_basebackup -R, hot standby) and exports
#   TRACEX_TEST_POSTGRES_REPLICA_URL=postgresql://postgres@127.0.0.1:PORT2/postgres
# TRACEX_TEST_POSTGRES_OPTIONS adds server settings (`-c name=value …`), e.g.
# `-c shared_preload_libraries=pg_stat_statements` to see where a benchmark's time goes.
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: $0 <command...>" >&2; exit 2; }

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

find_pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

PGBIN="$(find_pgbin)"
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
    echo "with-postgres: installing PostgreSQL" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    PGBIN="$(find_pgbin)"
    [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || { echo "with-postgres: no initdb after installing" >&2; exit 1; }
fi

# initdb refuses to run as root: the server runs as a system user of its own.
if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=tracexpg
    id "$PGUSER_OS" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
    as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
else
    PGUSER_OS="$(id -un)"
    as_pg() { "$@"; }
fi

PGROOT="$(mktemp -d /tmp/tracex-pg.XXXXXX)"
chmod 755 "$PGROOT"
[ "$(id -u)" -eq 0 ] && chown "$PGUSER_OS": "$PGROOT"
STARTED=0
REPLICA_STARTED=0
cleanup() {
    if [ "$REPLICA_STARTED" -eq 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGROOT/replica" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "$STARTED" -eq 1 ]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 60 stop >/dev/null 2>&1 \
            || as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PGROOT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
as_pg "$PGBIN/initdb" -D "$PGROOT/data" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync >"$PGROOT/initdb.log" 2>&1 \
    || { cat "$PGROOT/initdb.log" >&2; exit 1; }
if ! as_pg "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/log" -w -t 30 \
    -o "-k $PGROOT -p $PORT -c listen_addresses=127.0.0.1 -c max_connections=200 ${TRACEX_TEST_POSTGRES_OPTIONS:-}" start >/dev/null; then
    cat "$PGROOT/log" >&2 || true
    exit 1
fi
STARTED=1

export TRACEX_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
echo "with-postgres: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') at $TRACEX_TEST_POSTGRES_URL" >&2

if [ "${WITH_POSTGRES_REPLICA:-0}" = 1 ]; then
    # initdb's pg_hba.conf trusts replication connections from loopback; wal_level is `replica`.
    as_pg "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PORT" -U postgres -D "$PGROOT/replica" -R -X stream \
        >"$PGROOT/basebackup.log" 2>&1 || { cat "$PGROOT/basebackup.log" >&2; exit 1; }
    RPORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    if ! as_pg "$PGBIN/pg_ctl" -D "$PGROOT/replica" -l "$PGROOT/replica.log" -w -t 30 \
        -o "-k $PGROOT -p $RPORT -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null; then
        cat "$PGROOT/replica.log" >&2 || true
        exit 1
    fi
    REPLICA_STARTED=1
    export TRACEX_TEST_POSTGRES_REPLICA_URL="postgresql://postgres@127.0.0.1:$RPORT/postgres"
    echo "with-postgres: read replica at $TRACEX_TEST_POSTGRES_REPLICA_URL" >&2
fi
set +e
"$@"
status=$?
set -e
exit "$status"
