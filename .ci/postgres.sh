#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server on loopback for the store suite and prints the
# URL for POOLGATE_TEST_POSTGRES. Installs Debian's postgresql when it is missing.
# Usage: eval "$(.ci/postgres.sh start)"  …  .ci/postgres.sh stop "$PGDATA"
set -euo pipefail

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

case "${1:-}" in
start)
    if [ -z "$(pg_bin)" ]; then
        echo "installing postgresql" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi
    bin=$(pg_bin)
    data=$(mktemp -d /tmp/poolgate-pg.XXXXXX)
    chown postgres:postgres "$data"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    runuser -u postgres -- "$bin/initdb" -D "$data/db" -A trust -U postgres --no-sync >&2
    runuser -u postgres -- "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w \
        -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >&2
    echo "export PGDATA_POOLGATE=$data"
    echo "export POOLGATE_TEST_POSTGRES=postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    data=$2
    runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$data/db" -m immediate stop >&2 || true
    rm -rf "$data"
    ;;
*)
    echo "usage: $0 start | stop DATADIR" >&2
    exit 2
    ;;
esac
