#!/usr/bin/env bash
# Runs every fuzz target in turn, one process at a time, for SECONDS each (default 600), then
# minimises each corpus to a set cover of its edges: the fewest inputs that still reach every
# edge reached, so the corpus kept in git stays small. Stable Rust stands in for nightly
# through RUSTC_BOOTSTRAP=1.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
# A finding stops that target's run and is written to tests/fuzz/artifacts/TARGET/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz TARGET tests/fuzz/artifacts/TARGET/crash-...
# and once fixed, keep it under tests/fuzz/regressions/TARGET/ (minimising may drop it from the
# corpus).
set -uo pipefail
# From the repository root, where cargo-fuzz is told the fuzz crate sits under tests/.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export RUSTC_BOOTSTRAP=1
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(http_head http_body ws_frame condition config json)
cargo fuzz build --fuzz-dir tests/fuzz || exit 1
for t in "${targets[@]}"; do
  echo "==> $t for ${seconds}s"
  cargo fuzz run --fuzz-dir tests/fuzz "$t" -- -max_total_time="$seconds" -timeout=10 -print_final_stats=1
  echo "==> $t exit $?"
done
for t in "${targets[@]}"; do
  echo "==> cmin $t"
  cargo fuzz cmin --fuzz-dir tests/fuzz "$t" -- -set_cover_merge=1 -use_counters=0
done
