#!/usr/bin/env bash
# Runs the demo app (src/Resilient.Caching.Demo) on http://127.0.0.1:${PORT:-5080}.
#
# Redis: the one configured (environment variable Redis__Configuration, or "Configuration" in the "Redis" section
# of src/Resilient.Caching.Demo/appsettings.json); when none is, Microsoft's Garnet (a real RESP server) embedded in
# the demo's own process on a free loopback port: nothing but the .NET SDK is needed. The state page says which
# server the demo talks to.
#   build/demo.sh --redis-server   instead starts a throw-away local redis-server (installed with apt-get when
#                                  missing and running as root), a process of its own you can stop or kill to
#                                  watch an outage.
# Tuning: the Redis__* configuration keys and the TCP_KEEPALIVE_* / REDIS_CACHE_* environment variables.
set -euo pipefail
cd "$(dirname "$0")/.."

project=src/Resilient.Caching.Demo
port="${PORT:-5080}"
redis_pid=""
redis_dir=""

cleanup() {
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    echo "Stopped the local redis-server (pid $redis_pid)."
  fi
  if [ -n "$redis_dir" ]; then
    rm -rf "$redis_dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# True when something listens on 127.0.0.1:$1.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A loopback port nobody listens on.
free_port() {
  local candidate
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 40000))
    if ! listening "$candidate"; then
      echo "$candidate"
      return 0
    fi
  done
  echo "No free loopback port found" >&2
  return 1
}

# The "Configuration" value of the "Redis" section in appsettings.json (empty when unset).
configured_in_appsettings() {
  sed -n '/"Redis"[[:space:]]*:/,/}/s/.*"Configuration"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' "$project/appsettings.json" | head -n 1
}

start_local_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "Installing redis-server with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    else
      echo "redis-server is not installed (Debian/Ubuntu: sudo apt-get install -y redis-server)." >&2
      return 1
    fi
  fi

  local redis_port
  redis_port="$(free_port)"
  redis_dir="$(mktemp -d -t resilient-caching-demo-redis.XXXXXX)"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" \
    --logfile "$redis_dir/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 1 100); do
    if listening "$redis_port"; then
      export Redis__Configuration="127.0.0.1:$redis_port"
      echo "Started a local redis-server on 127.0.0.1:$redis_port (pid $redis_pid); it stops with the demo."
      echo "  Try an outage: kill -STOP $redis_pid (hang), kill -CONT $redis_pid (back), or kill $redis_pid (gone)."
      return 0
    fi
    if ! kill -0 "$redis_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  echo "The local redis-server did not start; see $redis_dir/redis.log" >&2
  cat "$redis_dir/redis.log" >&2 2>/dev/null || true
  return 1
}

if [ -n "${Redis__Configuration:-}" ]; then
  echo "Using the Redis of Redis__Configuration."
elif [ -n "$(configured_in_appsettings)" ]; then
  echo "Using the Redis configured in $project/appsettings.json."
elif [ "${1:-}" = "--redis-server" ]; then
  if ! start_local_redis; then
    # Nothing listens there: the demo shows what an application sees when Redis is unreachable.
    export Redis__Configuration="127.0.0.1:$(free_port)"
    echo "No redis-server available: the demo runs without one (Redis__Configuration=$Redis__Configuration, where nothing listens)."
  fi
else
  echo "No Redis configured: the demo embeds Garnet, Microsoft's RESP server, in its own process."
  echo "  (build/demo.sh --redis-server runs it against a local redis-server process you can stop to watch an outage.)"
fi

echo "Demo: http://127.0.0.1:$port/ (Ctrl+C to stop)"
dotnet run --project "$project" --urls "http://127.0.0.1:$port"
