#!/usr/bin/env bash
# Runs every fuzz target for N seconds (default 45) from the corpus in
# fuzz/corpus. New inputs found go to a scratch directory, so the checked-in
# corpus only changes when someone copies a finding in on purpose.
set -euo pipefail
secs="${1:-45}"
cd "$(dirname "$0")"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
# cargo fuzz passes nightly-only flags (sanitizers, coverage); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in otlp_protobuf otlp_json hook_event transcript; do
  mkdir -p "$scratch/$target"
  echo "fuzzing $target for ${secs}s"
  cargo fuzz run -O "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
