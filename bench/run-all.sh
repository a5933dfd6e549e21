#!/usr/bin/env bash
# Runs the benchmarks of BENCHMARKS.md and writes a report.
#
#   bench/run-all.sh                 # everything (about 50 minutes on 2 cores)
#   bench/run-all.sh ingest idle     # some of them
#
# The measured server is pinned to CPU 1 and ccotel-bench (load generator and
# OTLP sink) to CPU 0. Everything is on loopback and bounded in count and
# time. Output: bench/results/<UTC time>/{report.md,results.jsonl,machine.txt}.
#
#   REPS       repetitions (default 3; the 10k-session case runs REPS_BIG, default 1)
#   CARGO_TARGET_DIR   where `cargo build --release` puts the binaries
#   NO_ROTEL=1 skip installing/comparing rotel (bench/setup-rotel.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
reps="${REPS:-3}"
reps_big="${REPS_BIG:-1}"
all=(idle hook-http hook-http-newconn hook-cmd ingest ingest-ablation grpc-tail sessions sessions-10k long-session long-session-pause rebuild render stalled freshness)
if [ $# -gt 0 ]; then which=("$@"); else which=("${all[@]}"); fi

cargo build --release --bins >&2
B="$target/release"
rotel=""
if [ -z "${NO_ROTEL:-}" ]; then
  rotel="$(bench/setup-rotel.sh)" || { echo "rotel unavailable; comparisons skipped" >&2; rotel=""; }
fi

out="bench/results/$(date -u +%Y%m%dT%H%MZ)"
mkdir -p "$out"
json="$out/results.jsonl"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git describe --always --dirty 2>/dev/null || echo unknown)"
  echo "kernel: $(uname -sr)"
  grep -m1 "model name" /proc/cpuinfo || true
  echo "cpus: $(nproc)"
  grep MemTotal /proc/meminfo || true
  echo "rustc: $(rustc --version)"
  [ -n "$rotel" ] && echo "rotel: $rotel ($("$rotel" --version 2>&1 | head -1))"
} > "$out/machine.txt"

pin_bench=()
pin_server=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  pin_bench=(taskset -c 0)
  pin_server=(--server-cpu 1)
fi
rotel_arg=()
[ -n "$rotel" ] && rotel_arg=(--rotel "$rotel")

run() {
  echo "== $*" >&2
  timeout 5400 "${pin_bench[@]}" "$B/ccotel-bench" "$@" "${pin_server[@]}" --json "$json" \
    --ccotel "$B/ccotel" | tee -a "$out/report.md"
}

for b in "${which[@]}"; do
  case "$b" in
    idle)        run idle --reps "$reps" "${rotel_arg[@]}" ;;
    hook-http)   run hook-http --reps "$reps" --requests 2000 --concurrency 1,50 ;;
    hook-http-newconn) run hook-http --reps "$reps" --requests 1000 --concurrency 1,50 --new-conn ;;
    hook-cmd)    run hook-cmd --reps "$reps" --runs 300 ;;
    ingest)      run ingest --reps "$reps" "${rotel_arg[@]}" --transport grpc,http --per-request 1,10,100 ;;
    ingest-ablation) run ingest --reps "$reps" --transport http --per-request 10 --ablation ;;
    grpc-tail)   run grpc-tail --reps "$reps" "${rotel_arg[@]}" --rate 100 --streams 4 --seconds 30 ;;
    sessions)    run sessions --reps "$reps" --counts 1,10,100,1000 ;;
    sessions-10k) run sessions --reps "$reps_big" --counts 10000 ;;
    long-session) run long-session --reps "$reps" --calls 100,1000,5000 ;;
    long-session-pause) run long-session --reps "$reps" --calls 1000,5000 --pause-s 12 ;;
    rebuild)     run rebuild --reps "$reps" ;;
    render)      run render --reps "$reps" ;;
    stalled)     run stalled --reps 2 --seconds 60 --queue-mib 16 --rate 300 ;;
    freshness)   run freshness --reps "$reps" --sessions 10 ;;
    *) echo "unknown benchmark $b (one of: ${all[*]})" >&2; exit 2 ;;
  esac
done
echo "report: $out/report.md" >&2
