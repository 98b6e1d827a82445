#!/usr/bin/env bash
# Benchmark kgate against Tansu 0.6.0 with the same confluent-kafka client:  ./bench/run.sh [bench.py options]
#   --sizes 100,1024  --n-small 1000000  --n-large 300000  --rate 10000  --lat-n 50000
# (environment: BENCH_N_SMALL / BENCH_N_LARGE override the record counts)
# Result: a Markdown table on stdout and in bench/out/latest.md (+ latest.json).
# Tansu is built once with cargo install (~10-11 min on 2 cores) into $HOME/.local/tansu.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/install-deps.sh

echo "bench: cargo build --release" >&2
cargo build --release --locked --bin kgate
KGATE=$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c \
  'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate

TANSU_ROOT=${TANSU_ROOT:-$HOME/.local/tansu}
TANSU=$TANSU_ROOT/bin/tansu
if [ ! -x "$TANSU" ]; then
  echo "bench: Tansu 0.6.0 not found at $TANSU; building it (cargo install, ~10+ min)" >&2
  # A shared target dir: if another cargo install into the same root is already running, cargo's
  # build-directory lock makes this one wait for it and then reuse its artifacts.
  CARGO_TARGET_DIR=${TANSU_TARGET_DIR:-$HOME/.cache/kgate/target-tansu} \
    cargo install tansu --version 0.6.0 --features dynostore,libsql --locked --root "$TANSU_ROOT"
fi
[ -x "$TANSU" ] || { echo "bench: Tansu binary missing at $TANSU after install" >&2; exit 1; }

args=()
[ -n "${BENCH_N_SMALL:-}" ] && args+=(--n-small "$BENCH_N_SMALL")
[ -n "${BENCH_N_LARGE:-}" ] && args+=(--n-large "$BENCH_N_LARGE")
exec .venv/bin/python bench/bench.py --kgate "$KGATE" --tansu "$TANSU" "${args[@]}" "$@"
