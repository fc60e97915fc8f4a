#!/usr/bin/env bash
# Runs the micro-benchmarks (Release) and copies the markdown reports to benchmarks/results/, each headed with
# the machine, the load, the date, the versions and the exact command.
#
#   ./benchmarks/run-benchmarks.sh                       # every benchmark, default job (~17 min on 2 cores)
#   ./benchmarks/run-benchmarks.sh --quick               # every benchmark, short job (a few minutes)
#   ./benchmarks/run-benchmarks.sh --quick --filter '*ShortCircuit*'
#   ./benchmarks/run-benchmarks.sh --wait-quiet ...      # first wait (up to 15 min) for a 1-minute load < 1.0
#   ./benchmarks/run-benchmarks.sh --paired              # healthy path, stock vs ours interleaved in one process
#                                                        # (~2 min; writes results/HealthyPathPaired.md)
#   ./benchmarks/run-benchmarks.sh --processes           # healthy path, each provider alone in its own process:
#                                                        # latency harness (p50/p99, threads) + BenchmarkDotNet, one
#                                                        # job per provider (~5 min; writes results/HealthyPathProcesses.md)
#   ./benchmarks/run-benchmarks.sh --processes --no-bdn  # the latency harness only (~1.5 min)
#     options: --launches 3 --blocks 30 --block-calls 500 --warmup-ms 2000 --sync-on-main
#              --providers stock,ours,ours-dt-off (also: ours-dt-on, stock-factory, stock-our-config,
#              stock-our-config-hb1s; the first must be stock)
#
# Other arguments go to BenchmarkDotNet (--filter, --list flat, --job, …). Benchmark classes:
# HealthyPathBenchmarks, DecoratorOverheadBenchmarks, ShortCircuitBenchmarks, RedisDownStockBenchmarks,
# ContentionBenchmarks, RecordingBenchmarks, ReplayBenchmarks. They start their own redis-server (apt-get install redis-server) on free loopback ports.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

command_line="./benchmarks/run-benchmarks.sh $*"
wait_quiet=false
args=()
for arg in "$@"; do
  if [ "$arg" = "--wait-quiet" ]; then wait_quiet=true; else args+=("$arg"); fi
done
paired=false
processes=false
for arg in "${args[@]+"${args[@]}"}"; do
  [ "$arg" = "--paired" ] && paired=true
  [ "$arg" = "--processes" ] && processes=true
done
has_filter=false
for arg in "${args[@]+"${args[@]}"}"; do
  case "$arg" in --filter|--list|--help|-h|--version) has_filter=true ;; esac
done
$has_filter || $paired || $processes || args+=(--filter '*')

load1() { cut -d' ' -f1 /proc/loadavg; }
if $wait_quiet; then
  for _ in $(seq 1 30); do
    awk -v l="$(load1)" 'BEGIN { exit !(l < 1.0) }' && break
    echo "load $(load1) >= 1.0; waiting 30 s for a quiet machine"
    sleep 30
  done
fi
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

if $paired; then
  mkdir -p benchmarks/results
  dotnet build benchmarks/Resilient.Caching.Benchmarks -c Release --nologo -v quiet
  dotnet run -c Release --no-build --project benchmarks/Resilient.Caching.Benchmarks -- \
    "${args[@]}" --out benchmarks/results/HealthyPathPaired.md
  echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a benchmarks/results/HealthyPathPaired.md
  exit 0
fi

artifacts="$root/benchmarks/BenchmarkDotNet.Artifacts"

if $processes; then
  mkdir -p benchmarks/results
  dotnet build benchmarks/Resilient.Caching.Benchmarks -c Release --nologo -v quiet
  dotnet run -c Release --no-build --project benchmarks/Resilient.Caching.Benchmarks -- \
    "${args[@]}" --artifacts "$artifacts" --command "$command_line" --out benchmarks/results/HealthyPathProcesses.md
  exit 0
fi

rm -rf "$artifacts/results"
dotnet build benchmarks/Resilient.Caching.Benchmarks -c Release --nologo -v quiet
dotnet run -c Release --no-build --project benchmarks/Resilient.Caching.Benchmarks -- \
  --artifacts "$artifacts" "${args[@]}"
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

version_of() { sed -n "s/.*Include=\"$1\" Version=\"\([^\"]*\)\".*/\1/p" Directory.Packages.props | head -1; }
aspnet="$(sed -n 's/.*<AspNetCoreVersion>\(.*\)<\/AspNetCoreVersion>.*/\1/p' Directory.Packages.props)"
mkdir -p benchmarks/results
shopt -s nullglob
for report in "$artifacts"/results/*-report-github.md; do
  name="$(basename "$report" -report-github.md)"
  name="${name#Resilient.Caching.Benchmarks.}"
  out="benchmarks/results/$name.md"
  {
    echo "# $name"
    echo
    echo "- Machine: $(nproc) cores (\`nproc\`), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M') UTC; load average (1/5/15 min) at start: $load_start, at end: $load_end"
    echo "- .NET SDK $(dotnet --version); packages: StackExchange.Redis $(version_of StackExchange.Redis), Microsoft.Extensions.Caching.StackExchangeRedis $aspnet, BenchmarkDotNet $(version_of BenchmarkDotNet); redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
    echo "- Command: \`$command_line\`"
    echo
    cat "$report"
  } > "$out"
  echo "wrote $out"
done
