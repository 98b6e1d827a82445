#!/usr/bin/env bash
# kgate against Apache Kafka 4.4.0 (one KRaft node, from scripts/install-deps.sh), side by side in one run:
#   A  kgate's embedded broker vs Kafka: 1 and 6 partitions, 100 B and 1 KiB records, acks=all, with the same
#      confluent-kafka script (bench/client.py) and with kafka-producer-perf-test / kafka-consumer-perf-test;
#      throughput, p50/p99 at a fixed rate, server CPU seconds per GB, peak RSS
#   B  kgate in front of that Kafka vs Kafka direct, PLAINTEXT and SASL_SSL/SCRAM-SHA-512 on the client side
#      (producer-perf percentiles at a fixed rate and at saturation, consumer-perf, CPU s/GB, AES-GCM speed)
#   ./bench/run-kafka.sh [kafka_bench.py options]          about 15 minutes by default on 2 cores
#   --quick                 smoke run, ~2.5-3 minutes (1 round, small counts)
#   --rounds 3              interleaved rounds; figures are medians with [min, max]
#   --sizes 100,1024  --partitions 1,6  --clients confluent,java
#   --n-small 300000  --n-large 100000  records per throughput run (< 1 KiB, >= 1 KiB)
#   --rate 5000  --lat-n 20000          the moderate fixed rate and records per latency run
#   --warmup 100000                     1 KiB records through each server per round before measuring
#   --aes-seconds 3  --keep-failed  --out bench/out/kafka.md
# Result: Markdown tables on stdout and in bench/out/kafka.md, every round in bench/out/kafka.json.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
./scripts/install-deps.sh   # also Apache Kafka 4.4.0's jars into .cache/apache-kafka-4.4.0/libs
echo "kafka bench: cargo build --release" >&2
cargo build --release --locked --bin kgate
KGATE=$(cargo metadata --format-version 1 --no-deps --locked | .venv/bin/python -c \
  'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/kgate
exec timeout 3600 .venv/bin/python bench/kafka_bench.py --kgate "$KGATE" "$@"
