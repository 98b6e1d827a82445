#!/usr/bin/env bash
# Upstream mode: the same confluent-kafka client direct to Tansu 0.6.0 and through kgate in front of it
# (PLAINTEXT, then SASL_SSL/SCRAM-SHA-512 on the client side):  ./bench/run-upstream.sh [upstream_bench.py options]
#   --sizes 100,1024  --n-small 500000  --n-large 200000  --rate 5000  --lat-n 20000  --repeat 3
# Result: a Markdown table on stdout and in bench/out/upstream.md (+ upstream.json).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/install-deps.sh   # also builds Tansu once into $TANSU_ROOT (default ~/.local/tansu)
echo "bench: cargo build --release" >&2
cargo build --release --locked --bin kgate
KGATE=$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c \
  'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate
TANSU=${TANSU_ROOT:-$HOME/.local/tansu}/bin/tansu
cd bench
exec ../.venv/bin/python upstream_bench.py --kgate "$KGATE" --tansu "$TANSU" "$@"
