#!/usr/bin/env python3
"""The one benchmark client (confluent-kafka / librdkafka), run unchanged against every server.

    client.py --bootstrap HOST:PORT --size BYTES --n RECORDS [--rate 10000] [--lat-n 50000] [--conf K=V ...]

--conf adds librdkafka properties (security.protocol, sasl.*, ssl.*) to every client it makes.

Prints one JSON object on stdout:
  produce   throughput run: N records as fast as possible (acks=all, linger.ms=5, no compression),
            msg/s, MB/s and the p50/p99 delivery-report latency under saturation (Message.latency():
            produce() call -> acknowledgement, so it includes time queued in the client)
  consume   a fresh consumer reads the N records back from offset 0 (msg/s, MB/s, from first record)
  fixed     latency run: --lat-n records at a fixed --rate with linger.ms=0 (p50/p99/max delivery latency)
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


EXTRA = {}  # --conf properties, applied to every client


def conf(**props):
    return {**props, **EXTRA}


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def create(bootstrap, topic):
    a = AdminClient(conf(**{"bootstrap.servers": bootstrap}))  # keep the handle alive until the future resolves
    if topic not in a.list_topics(timeout=10).topics:
        fs = a.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)], operation_timeout=30)
        fs[topic].result(30)
    # wait until metadata has a leader
    c = Consumer(conf(**{"bootstrap.servers": bootstrap, "group.id": "bench-md"}))
    try:
        for _ in range(100):
            t = c.list_topics(topic, timeout=10).topics.get(topic)
            if t is not None and t.error is None and t.partitions and t.partitions[0].leader >= 0:
                return
            time.sleep(0.1)
    finally:
        c.close()
    raise SystemExit(f"topic {topic} has no leader")


def produce_throughput(bootstrap, topic, n, size):
    lat, errors = [], [0]

    def dr(err, msg):
        if err is not None:
            errors[0] += 1
        else:
            lat.append(msg.latency())

    p = Producer(conf(**{"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "batch.size": 1000000,
                         "queue.buffering.max.messages": 1000000, "queue.buffering.max.kbytes": 1048576,
                         "compression.type": "none"}))
    payload = b"x" * size
    t0 = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce(topic, payload, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.005)
        if i % 10000 == 0:
            p.poll(0)
    left = p.flush(300)
    dt = time.perf_counter() - t0
    lat.sort()
    return {"records": n, "seconds": dt, "msg_s": n / dt, "mb_s": n * size / dt / 1e6,
            "errors": errors[0] + left, "p50_ms": pct(lat, 0.50) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3}


def consume_throughput(bootstrap, topic, n, size):
    c = Consumer(conf(**{"bootstrap.servers": bootstrap, "group.id": f"bench-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.max.bytes": 52428800, "max.partition.fetch.bytes": 10485760,
                  # librdkafka stops fetching at 100k queued messages and then backs off 1 s
                  # (fetch.queue.backoff.ms): with small records that caps any server near 190k msg/s.
                  "queued.min.messages": 2000000, "fetch.queue.backoff.ms": 0}))
    c.assign([TopicPartition(topic, 0, 0)])
    got, nbytes, t_first, errors = 0, 0, None, 0
    deadline = time.monotonic() + 600
    # Per-message work stays in C (map over method descriptors): a Python loop over every record
    # caps this client near 200k msg/s, which would measure the client, not the server.
    while got < n and time.monotonic() < deadline:
        msgs = c.consume(10000, 1.0)
        if not msgs:
            continue
        if any(map(Message.error, msgs)):
            bad = [m for m in msgs if m.error()]
            errors += sum(1 for m in bad if m.error().code() != KafkaError._PARTITION_EOF)
            msgs = [m for m in msgs if not m.error()]
        if t_first is None and msgs:
            t_first = time.perf_counter()
        got += len(msgs)
        nbytes += sum(map(len, map(Message.value, msgs)))
    dt = time.perf_counter() - (t_first or time.perf_counter())
    c.close()
    return {"records": got, "seconds": dt, "msg_s": got / dt if dt else 0.0, "mb_s": nbytes / dt / 1e6 if dt else 0.0,
            "errors": errors + (n - got)}


def fixed_rate_latency(bootstrap, topic, n, size, rate):
    lat, errors = [], [0]

    def dr(err, msg):
        if err is not None:
            errors[0] += 1
        else:
            lat.append(msg.latency())

    p = Producer(conf(**{"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, "compression.type": "none"}))
    payload = b"y" * size
    p.produce(topic, payload)  # warm up the connection
    p.flush(30)
    t0 = time.perf_counter()
    i = 0
    while i < n:  # 1 ms ticks: send what is due, then serve delivery reports for up to 1 ms
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            p.produce(topic, payload, on_delivery=dr)
            i += 1
        p.poll(0.001)
    sent_dt = time.perf_counter() - t0
    left = p.flush(60)
    lat.sort()
    return {"records": n, "rate": rate, "achieved_rate": n / sent_dt, "errors": errors[0] + left,
            "p50_ms": pct(lat, 0.50) * 1e3, "p99_ms": pct(lat, 0.99) * 1e3, "max_ms": lat[-1] * 1e3}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--lat-n", type=int, default=50000)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    a = ap.parse_args()
    EXTRA.update(kv.split("=", 1) for kv in a.conf)
    tp, lt = f"bench-tp-{a.size}", f"bench-lat-{a.size}"
    create(a.bootstrap, tp)
    create(a.bootstrap, lt)
    out = {"size": a.size}
    out["produce"] = produce_throughput(a.bootstrap, tp, a.n, a.size)
    print(f"  produce {a.size} B: {out['produce']['msg_s']:,.0f} msg/s", file=sys.stderr, flush=True)
    out["consume"] = consume_throughput(a.bootstrap, tp, a.n, a.size)
    print(f"  consume {a.size} B: {out['consume']['msg_s']:,.0f} msg/s", file=sys.stderr, flush=True)
    out["fixed"] = fixed_rate_latency(a.bootstrap, lt, a.lat_n, a.size, a.rate)
    print(f"  latency {a.size} B @ {a.rate}/s: p50 {out['fixed']['p50_ms']:.2f} ms p99 {out['fixed']['p99_ms']:.2f} ms",
          file=sys.stderr, flush=True)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
