#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer at the configured addresses, starting the machine's own servers
# when they are installed but stopped. Polls with a bound; never waits forever.
set -euo pipefail

pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
redis_host=${REDIS_HOST:-127.0.0.1}
redis_port=${REDIS_PORT:-6379}

wait_for() {  # wait_for NAME COMMAND... : up to 30 s
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up" >&2
  return 1
}

pg_up() { pg_isready -q -h "$pg_host" -p "$pg_port"; }
redis_up() { python3 - "$redis_host" "$redis_port" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
}

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_for PostgreSQL pg_up
  else
    echo "services: nothing answers at PostgreSQL $pg_host:$pg_port and no local server is installed" >&2
    exit 1
  fi
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for Redis redis_up
  else
    echo "services: nothing answers at Redis $redis_host:$redis_port and no redis-server is installed" >&2
    exit 1
  fi
fi
echo "services: PostgreSQL $pg_host:$pg_port and Redis $redis_host:$redis_port answer"
