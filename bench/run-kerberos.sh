#!/usr/bin/env bash
# What Kerberos costs, on one kgate in one run:  ./bench/run-kerberos.sh [kerberos_bench.py options]
#   --n 200000 --rounds 2        1 KiB throughput, PLAINTEXT vs SASL_PLAINTEXT/GSSAPI (confluent-kafka 2.0.2 + GSSAPI)
#   --conn-seconds 10 --conn-procs 4   GSSAPI handshakes per second (python-gssapi clients)
# Result: a Markdown table on stdout and in bench/out/kerberos-latest.md. About a minute.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/install-deps.sh
cargo build --release --locked --bin kgate
KGATE=$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c \
  'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate
[ -x .venv-gssapi/bin/python ] || { echo "run-kerberos: .venv-gssapi missing (scripts/install-deps.sh makes it)" >&2; exit 1; }
exec timeout 900 .venv-gssapi/bin/python bench/kerberos_bench.py --kgate "$KGATE" "$@"
