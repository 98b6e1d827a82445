#!/usr/bin/env bash
# Run an Apache Kafka 4.4.0 KRaft cluster on 127.0.0.1 until Ctrl-C: the real Kafka the peer tests and the
# benchmarks compare kgate with. The jars come from Maven Central through scripts/install-deps.sh.
#   scripts/apache-kafka.sh --dir /tmp/kafka --nodes 3
# Prints the PLAINTEXT bootstrap list and the admin listener (SASL_PLAINTEXT/PLAIN admin/admin-secret).
# Every node keeps server.log and kafka-request.log under DIR/nodeN/logs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -x "$ROOT/.venv/bin/python" ] || { echo "apache-kafka.sh: run scripts/install-deps.sh first" >&2; exit 1; }
exec "$ROOT/.venv/bin/python" "$ROOT/tests/peers/apache_kafka.py" "$@"
