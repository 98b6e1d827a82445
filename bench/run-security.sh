#!/usr/bin/env bash
# What security costs, on one kgate in one run:  ./bench/run-security.sh [security_bench.py options]
#   --n 300000          1 KiB records per throughput run (PLAINTEXT vs SASL_SSL/SCRAM-SHA-512, confluent-kafka)
#   --rounds 3          runs per listener, alternating order (P S S P P S)
#   --conn-seconds 10   --conn-procs 4    new TLS + SCRAM-SHA-512 connections per second (Python clients)
# Result: a Markdown table on stdout and in bench/out/security-latest.md (+ .json). About 1 minute by default.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/install-deps.sh

echo "security bench: cargo build --release" >&2
cargo build --release --locked --bin kgate
KGATE=$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c \
  'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate

exec timeout 900 .venv/bin/python bench/security_bench.py --kgate "$KGATE" "$@"
