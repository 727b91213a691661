#!/usr/bin/env bash
# Start (idempotently) a throwaway PostgreSQL cluster on 127.0.0.1 for the test run and print its URL.
# Installs Debian's postgresql when it is missing. Usage: scripts/postgres.sh [start|stop|url]
set -euo pipefail
PORT="${OMNICRM_PG_PORT:-54329}"
DIR="${OMNICRM_PG_DIR:-/tmp/omnicrm-pg-$PORT}"
URL="postgresql+psycopg://omnicrm@127.0.0.1:$PORT/postgres"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

ensure_installed() {
  if [ -z "$(bindir)" ]; then
    echo "installing Debian's postgresql…" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
  fi
}

as_owner() {
  # PostgreSQL refuses to run as root: run it as the 'postgres' system user then.
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi
}

start() {
  ensure_installed
  local bin; bin="$(bindir)"
  if [ "$(id -u)" = 0 ]; then mkdir -p "$DIR" && chown postgres:postgres "$DIR"; else mkdir -p "$DIR"; fi
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_owner "'$bin/initdb' -D '$DIR/data' -U omnicrm --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null"
  fi
  if ! as_owner "'$bin/pg_ctl' -D '$DIR/data' status" >/dev/null 2>&1; then
    as_owner "'$bin/pg_ctl' -D '$DIR/data' -l '$DIR/log' -w -t 60 \
      -o \"-p $PORT -k '$DIR' -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200\" start" >/dev/null
  fi
  echo "$URL"
}

stop() {
  local bin; bin="$(bindir)"
  [ -n "$bin" ] && as_owner "'$bin/pg_ctl' -D '$DIR/data' -m fast stop" >/dev/null 2>&1 || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 [start|stop|url]" >&2; exit 2 ;;
esac
