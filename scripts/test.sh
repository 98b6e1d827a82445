#!/usr/bin/env bash
# The whole test suite, from a fresh machine:  ./scripts/test.sh [extra pytest args]
#   1. scripts/install-deps.sh        (Debian packages + ./.venv with pinned Python peers)
#   2. cargo build --release --locked  (the binary the peer tests run: target/release/kgate)
#   3. cargo test --locked             (all Rust unit/integration tests, debug profile)
#   4. pytest tests/peers              (real peers: kcat, confluent-kafka, kafka-python, Apache Kafka 4.4.0 and
#                                       its Java tools, Flink 2.2, an MIT KDC, Tansu; differential tests)
# The peer tests use the release binary (the 100k-record and durability tests are slow in debug).
# Set KGATE_BIN=/path/to/kgate to test another binary (step 2 is then skipped).
# Exits non-zero if any step fails; pytest's "no tests collected" (exit 5) counts as a failure.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
step() { echo; echo "==== $* ($(date +%H:%M:%S))"; }
T0=$SECONDS

step "install dependencies"
./scripts/install-deps.sh

if [ -z "${KGATE_BIN:-}" ]; then
  step "cargo build --release"
  cargo build --release --locked --bin kgate
  KGATE_BIN=$(cargo metadata --format-version 1 --no-deps --locked | "$ROOT/.venv/bin/python" -c \
    'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate
fi
[ -x "$KGATE_BIN" ] || { echo "test.sh: kgate binary not found at $KGATE_BIN" >&2; exit 1; }
export KGATE_BIN

step "cargo test"
cargo test --locked

step "pytest tests/peers (kgate binary: $KGATE_BIN)"
set +e
"$ROOT/.venv/bin/python" -m pytest tests/peers "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: counting that as a failure" >&2
  exit 5
fi
[ $rc -eq 0 ] || { echo "test.sh: pytest failed (exit $rc)" >&2; exit $rc; }
step "all tests passed in $((SECONDS - T0)) s"
