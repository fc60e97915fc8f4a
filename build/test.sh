#!/usr/bin/env bash
# Runs every test on a fresh machine: installs redis-server, iptables and iproute2 (the firewall fault tests) and
# chromium (the browser test of the demo) when missing and running as root, then restores, builds and runs the
# unit and integration tests. Tests whose tool is missing skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${need[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "Missing ${need[*]}: install them (Debian/Ubuntu: sudo apt-get install -y ${need[*]})" >&2
  fi
fi

# The tests start their own redis-server processes on free loopback ports; no Redis needs to be running.
dotnet restore Resilient.Caching.sln
dotnet build Resilient.Caching.sln --no-restore -c Release
# Microsoft.Testing.Platform (global.json); extra arguments go to both runs, e.g. --filter-class "*Keepalive*".
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
status=0
dotnet test --solution Resilient.Caching.sln --no-build -c Release "$@" | tee "$summary" || status=$?

# Every failure again at the end, briefly, so that the last lines of a long log name them all.
if grep -q '^failed ' "$summary"; then
  echo
  echo "Failed tests:"
  awk '/^failed /{n=6; print; next} n>0 && /^  /{n--; print substr($0, 1, 400); next} {n=0}' "$summary"
fi

# The runner's own summary is "succeeded: N"; say it plainly too.
count() { sed -n "s/^ *$1: *\([0-9][0-9]*\).*/\1/p" "$summary" | tail -n 1; }
echo "$(count succeeded) passed, $(count failed) failed, $(count skipped) skipped"
exit "$status"
