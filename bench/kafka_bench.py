#!/usr/bin/env python3
"""kgate against Apache Kafka 4.4.0, side by side on one machine in one run (use bench/run-kafka.sh).

A  embedded: kgate's own broker against a single Apache Kafka 4.4.0 KRaft node (tests/peers/apache_kafka.py's
   KafkaCluster: 1 GiB heap, C2 and G1 as kafka-server-start.sh; otherwise Kafka's defaults apart from what
   KafkaCluster sets for a small machine). Topics with 1 and 6 partitions, 100 B and 1 KiB records, acks=all,
   no compression. Two clients, each the same for both servers:
   - confluent-kafka, the workload of bench/client.py unchanged (its functions are called from a child
     process of this script, which only widens its topic to N partitions and its consumer to all of them):
     produce N records as fast as possible, consume them back from offset 0, then produce --lat-n records at
     a fixed --rate with linger.ms=0 (delivery latency p50/p99 at microsecond resolution);
   - Kafka 4.4.0's kafka-producer-perf-test and kafka-consumer-perf-test (JVM flags as kafka-run-class.sh: C2,
     G1, 512 MiB heap): producer-perf at full speed (acks=all, the producer's other defaults: linger.ms=5,
     batch.size=16384), consumer-perf over the same records (fetch.nMsg.sec: the group join left out), and
     producer-perf at --throughput RATE with linger.ms=0 and --lat-n/4 warm-up records left out of its
     percentiles (the tool measures whole milliseconds).
   Beside every throughput: the CPU seconds the server process spent (utime + stime of all its threads, from
   /proc/PID/stat around each phase) per GB of record payload moved; and each server's peak RSS (VmHWM) over A.
B  upstream: kgate in front of that Kafka against Kafka direct, 1 partition, PLAINTEXT and SASL_SSL with
   SCRAM-SHA-512 on the client side (kgate: `kgate certs dev` + `kgate users add`; Kafka: a SASL_SSL listener
   with the same certificate and a SCRAM user made at format time; clients verify the CA and the host name).
   kgate talks PLAINTEXT to Kafka. Per mode: producer-perf at RATE (linger.ms=0) and at full speed,
   consumer-perf, and bench/client.py's fixed-rate run (sub-millisecond percentiles); kgate's and Kafka's CPU
   seconds per GB. For TLS the extra CPU per GB against the machine's raw AES-256-GCM speed
   (`openssl speed -evp aes-256-gcm`, 16 KiB blocks, one core).
C  the machine is shared: --rounds rounds, every mode in each (A: which server goes first in every workload
   alternates from round to round; B rotates the modes), a fresh Kafka and fresh kgates per round after a
   warm-up of both servers (the JVM's JIT); figures are medians with [min, max] over the rounds, ratios the
   median of the per-round ratios. Writes bench/out/kafka.json (every round) and bench/out/kafka.md, and
   prints the tables.
"""
import argparse
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "peers"))
sys.path.insert(0, str(HERE))

import bench  # noqa: E402  free_port, wait_port, vm_hwm_kb, cpu_seconds, start_kgate, stop

# kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS, over JavaTools' start-up flags (C1 only, serial GC)
PERF_JVM = ["-XX:TieredStopAtLevel=4", "-XX:-UseSerialGC", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent"]
PERF_HEAP = "512m"  # kafka-producer-perf-test.sh / kafka-consumer-perf-test.sh: -Xmx512M
USER = "bench"
MODES = ("direct", "kgate", "direct-sasl-ssl", "kgate-sasl-ssl")
GB = 1e9


class Failed(Exception):
    pass


# ----------------------------------------------------------------------------------------------
# bench/client.py, reused


@contextmanager
def client_settings(workload, partitions, sec):
    """bench/client.py's clients with `sec` (librdkafka security properties) merged in, its topics created
    with `partitions` partitions and its consumer assigned every partition (client.py assigns partition 0)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import NewTopic

    class AllPartitions(Consumer):
        def assign(self, tps):
            super().assign([TopicPartition(tps[0].topic, p, tps[0].offset) for p in range(partitions)])

    saved = dict(workload.EXTRA), workload.NewTopic, workload.Consumer
    workload.EXTRA.clear()
    workload.EXTRA.update(sec)
    workload.NewTopic = lambda topic, num_partitions=1, replication_factor=1: NewTopic(
        topic, num_partitions=partitions, replication_factor=replication_factor)
    workload.Consumer = AllPartitions
    try:
        yield workload
    finally:
        workload.EXTRA.clear()
        workload.EXTRA.update(saved[0])
        workload.NewTopic, workload.Consumer = saved[1], saved[2]


def cpu_of(pids):
    return {name: bench.cpu_seconds(pid) for name, pid in pids.items()}


def client_child(a):
    """Child mode: client.py's phases against one server, its CPU sampled around each phase."""
    import client as workload
    sec = json.loads(sys.stdin.read() or "{}")
    pids = json.loads(a.pids)
    phases = a.phases.split(",")
    out = {}
    with client_settings(workload, a.partitions, sec):
        if {"produce", "consume"} & set(phases):
            workload.create(a.bootstrap, a.topic)
        if "fixed" in phases:
            workload.create(a.bootstrap, a.topic + "-lat")
        for phase in phases:
            c0 = cpu_of(pids)
            if phase == "produce":
                r = workload.produce_throughput(a.bootstrap, a.topic, a.n, a.size)
            elif phase == "consume":
                r = workload.consume_throughput(a.bootstrap, a.topic, a.n, a.size)
            else:
                r = workload.fixed_rate_latency(a.bootstrap, a.topic + "-lat", a.lat_n, a.size, a.rate)
            c1 = cpu_of(pids)
            r["server_cpu_s"] = {k: c1[k] - c0[k] for k in pids}
            out[phase] = r
    json.dump(out, sys.stdout)


def run_client(target, topic, size, n, partitions, phases, a):
    args = [sys.executable, str(Path(__file__).resolve()), "client-child", "--bootstrap", target["bootstrap"],
            "--topic", topic, "--size", str(size), "--n", str(n), "--partitions", str(partitions),
            "--rate", str(a.rate), "--lat-n", str(a.lat_n), "--phases", ",".join(phases),
            "--pids", json.dumps(target["pids"])]
    cp = subprocess.run(args, input=json.dumps(target["sec"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, timeout=900)
    if cp.returncode != 0:
        raise Failed(f"client.py workload against {target['name']} ({topic}) failed (exit {cp.returncode}):\n"
                     f"{cp.stderr[-3000:]}")
    return json.loads(cp.stdout)


def create_topic(target, topic, partitions):
    import client as workload
    with client_settings(workload, partitions, target["sec"]):
        workload.create(target["bootstrap"], topic)


# ----------------------------------------------------------------------------------------------
# Kafka's Java perf tools

PRODUCER_LINE = re.compile(
    r"(\d+) (steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def java_tool(tools, main_class, args, target, timeout=900):
    c0 = cpu_of(target["pids"])
    t0 = time.monotonic()
    cp = tools.tool(main_class, *args, heap=PERF_HEAP, timeout=timeout, jvm_options=PERF_JVM)
    c1 = cpu_of(target["pids"])
    if cp.returncode != 0:
        raise Failed(f"{main_class.rsplit('.', 1)[1]} against {target['name']} failed (exit {cp.returncode}):\n"
                     f"{cp.stdout[-2000:]}\n{cp.stderr[-3000:]}")
    errors = sum(1 for line in cp.stderr.splitlines() if re.match(r"^[\w.$]+(Exception|Error)\b", line))
    return cp.stdout, {"server_cpu_s": {k: c1[k] - c0[k] for k in c0}, "wall_s": time.monotonic() - t0,
                       "errors": errors}


def producer_perf(tools, target, topic, n, size, throughput, props=(), warmup=0):
    args = ["--topic", topic, "--num-records", str(n), "--record-size", str(size), "--throughput", str(throughput)]
    if warmup:
        args += ["--warmup-records", str(warmup)]
    if target["java_config"]:
        args += ["--command-config", str(target["java_config"])]
    args += ["--command-property", f"bootstrap.servers={target['bootstrap']}", "acks=all", *props]
    out, info = java_tool(tools, "org.apache.kafka.tools.ProducerPerformance", args, target)
    lines = {}
    for m in PRODUCER_LINE.finditer(out):
        lines["steady" if m.group(2) else "total"] = {
            "records": int(m.group(1)), "msg_s": float(m.group(3)), "mb_s": float(m.group(4)),
            "avg_ms": float(m.group(5)), "max_ms": float(m.group(6)), "p50_ms": int(m.group(7)),
            "p95_ms": int(m.group(8)), "p99_ms": int(m.group(9)), "p999_ms": int(m.group(10))}
    if "total" not in lines:
        raise Failed(f"no summary from producer-perf against {target['name']}:\n{out[-2000:]}")
    return {**info, **lines}


def consumer_perf(tools, target, topic, n):
    args = ["--bootstrap-server", target["bootstrap"], "--topic", topic, "--num-records", str(n),
            "--timeout", "60000"]
    if target["java_config"]:
        args += ["--command-config", str(target["java_config"])]
    out, info = java_tool(tools, "org.apache.kafka.tools.ConsumerPerformance", args, target)
    lines = out.splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith("start.time"):
            row = dict(zip([h.strip() for h in line.split(",")], [v.strip() for v in lines[i + 1].split(",")]))
            got = int(row["data.consumed.in.nMsg"])
            if got < n:
                raise Failed(f"consumer-perf read {got} of {n} records from {target['name']}")
            return {**info, "records": got, "msg_s": float(row["fetch.nMsg.sec"]),
                    "mb_s": float(row["fetch.MB.sec"]) * 1.048576, "with_join_msg_s": float(row["nMsg.sec"]),
                    "rebalance_ms": float(row["rebalance.time.ms"]), "fetch_ms": float(row["fetch.time.ms"])}
    raise Failed(f"no summary from consumer-perf against {target['name']}:\n{out[-2000:]}")


# ----------------------------------------------------------------------------------------------
# one workload: the same key set for both clients


def per_gb(cpu_s, records, size):
    return cpu_s / (records * size / GB) if records else None


def workload_client(target, who, partitions, size, n, a):
    r = run_client(target, f"cp-p{partitions}-{size}", size, n, partitions, ["produce", "consume", "fixed"], a)
    p, c, f = r["produce"], r["consume"], r["fixed"]
    return {"produce_msg_s": p["msg_s"], "consume_msg_s": c["msg_s"], "p50_ms": f["p50_ms"], "p99_ms": f["p99_ms"],
            "sat_p50_ms": p["p50_ms"], "sat_p99_ms": p["p99_ms"],
            "produce_cpu_s_gb": per_gb(p["server_cpu_s"][who], p["records"], size),
            "consume_cpu_s_gb": per_gb(c["server_cpu_s"][who], c["records"], size),
            "errors": p["errors"] + c["errors"] + f["errors"], "raw": r}


def workload_java(tools, target, who, partitions, size, n, a):
    topic, lat_topic = f"jp-p{partitions}-{size}", f"jl-p{partitions}-{size}"
    create_topic(target, topic, partitions)
    create_topic(target, lat_topic, partitions)
    p = producer_perf(tools, target, topic, n, size, -1)
    c = consumer_perf(tools, target, topic, n)
    f = producer_perf(tools, target, lat_topic, a.lat_n, size, a.rate, props=("linger.ms=0",),
                      warmup=a.lat_n // 4)
    fs = f.get("steady", f["total"])
    return {"produce_msg_s": p["total"]["msg_s"], "consume_msg_s": c["msg_s"], "p50_ms": fs["p50_ms"],
            "p99_ms": fs["p99_ms"], "sat_p50_ms": p["total"]["p50_ms"], "sat_p99_ms": p["total"]["p99_ms"],
            "produce_cpu_s_gb": per_gb(p["server_cpu_s"][who], p["total"]["records"], size),
            "consume_cpu_s_gb": per_gb(c["server_cpu_s"][who], c["records"], size),
            "errors": p["errors"] + c["errors"] + f["errors"], "raw": {"produce": p, "consume": c, "fixed": f}}


# ----------------------------------------------------------------------------------------------
# servers


def alive(name, proc):
    if proc.poll() is not None:
        raise Failed(f"{name} exited with {proc.returncode} during the run")


# ----------------------------------------------------------------------------------------------
# one round


def run_round(rnd, a, ctx):
    from apache_kafka import JavaTools, KafkaCluster, Listener
    from seclib import Certs
    work = Path(tempfile.mkdtemp(prefix=f"kgate-kafka-bench-r{rnd}-"))
    tools = JavaTools(work / "tools")
    result = {"round": rnd + 1, "load_before": os.getloadavg()[0]}
    t_round = time.monotonic()
    kafka = embedded = None
    upstream = {}
    ok = False
    try:
        print(f"== round {rnd + 1}/{a.rounds}: starting Apache Kafka 4.4.0 and kgate", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        kafka = KafkaCluster(work / "kafka", nodes=1, heap="1g", quick=False, certs=Certs(ctx["certs"]),
                             scram_users={USER: ctx["password"]},
                             listeners=[Listener("CLIENT"),
                                        Listener("SECURE", "SASL_SSL", ("SCRAM-SHA-512",), host="localhost")])
        kafka.start()
        kpid = kafka.nodes[0].proc.pid
        result["kafka_start_s"] = time.monotonic() - t0
        (work / "kgate-embedded").mkdir()
        embedded, eport, _ = bench.start_kgate(a.kgate, work / "kgate-embedded")
        servers = {
            "kgate": {"name": "kgate (embedded)", "bootstrap": f"127.0.0.1:{eport}", "sec": {}, "java_config": None,
                      "pids": {"kgate": embedded.pid}},
            "kafka": {"name": "Apache Kafka", "bootstrap": kafka.bootstrap("CLIENT"), "sec": {}, "java_config": None,
                      "pids": {"kafka": kpid}},
        }

        def check():
            if not kafka.nodes[0].running():
                raise Failed(f"Kafka exited during the run:\n{kafka.node_log_tail(kafka.nodes[0])}")
            if "A" not in result:
                alive("kgate (embedded)", embedded)
            for m, (proc, _) in upstream.items():
                alive(f"kgate ({m})", proc)

        # ---- A: embedded kgate vs Kafka
        if a.warmup:
            for who, target in servers.items():
                print(f"   warm-up: {target['name']}", file=sys.stderr, flush=True)
                create_topic(target, "warmup", 1)
                producer_perf(tools, target, "warmup", a.warmup, 1024, -1)
                consumer_perf(tools, target, "warmup", a.warmup)
        c0 = {w: cpu_of(s["pids"]) for w, s in servers.items()}
        time.sleep(a.idle_seconds)
        result["idle_cpu_pct"] = {w: 100 * (cpu_of(s["pids"])[w] - c0[w][w]) / a.idle_seconds
                                  for w, s in servers.items()}
        A = {w: {} for w in servers}
        order = ["kgate", "kafka"] if rnd % 2 == 0 else ["kafka", "kgate"]
        for client in a.clients:
            for partitions in a.partitions:
                for size in a.sizes:
                    n = a.n_small if size < 1024 else a.n_large
                    for who in order:
                        target = servers[who]
                        key = f"{client}/p{partitions}/{size}"
                        if client == "confluent":
                            r = workload_client(target, who, partitions, size, n, a)
                        else:
                            r = workload_java(tools, target, who, partitions, size, n, a)
                        check()
                        r["vm_hwm_mib"] = bench.vm_hwm_kb(target["pids"][who]) / 1024  # the peak so far
                        A[who][key] = r
                        print(f"   A {key:<18} {who:<5}: produce {r['produce_msg_s']:>10,.0f} msg/s "
                              f"({r['produce_cpu_s_gb']:.1f} CPU s/GB), consume {r['consume_msg_s']:>10,.0f} msg/s "
                              f"({r['consume_cpu_s_gb']:.1f}), p50/p99 @ {a.rate}/s {r['p50_ms']:.2f}/{r['p99_ms']:.2f}"
                              f" ms, errors {r['errors']}", file=sys.stderr, flush=True)
        result["A"] = A
        result["rss_mib"] = {"kgate": bench.vm_hwm_kb(embedded.pid) / 1024, "kafka": bench.vm_hwm_kb(kpid) / 1024}
        bench.stop(embedded)

        # ---- B: kgate in front of Kafka vs Kafka direct
        for mode in ("kgate", "kgate-sasl-ssl"):
            secure = mode.endswith("ssl")
            proc, bootstrap = bench.start_kgate_upstream(a.kgate, work / mode, kafka.bootstrap("CLIENT"), 1, secure,
                                                         ctx["users_file"], ctx["certs"],
                                                         host="localhost" if secure else "127.0.0.1")
            upstream[mode] = (proc, bootstrap)
        targets = {}
        for mode in MODES:
            secure = mode.endswith("sasl-ssl")
            t = {"name": mode, "sec": ctx["sec"] if secure else {},
                 "java_config": ctx["java_config"] if secure else None}
            if mode.startswith("direct"):
                t.update(bootstrap=kafka.bootstrap("SECURE" if secure else "CLIENT"), pids={"kafka": kpid})
            else:
                t.update(bootstrap=upstream[mode][1], pids={"kafka": kpid, "kgate": upstream[mode][0].pid})
            targets[mode] = t
        if a.warmup:
            print("   warm-up: Kafka's SASL_SSL listener", file=sys.stderr, flush=True)
            create_topic(targets["direct-sasl-ssl"], "warmup-tls", 1)
            producer_perf(tools, targets["direct-sasl-ssl"], "warmup-tls", a.warmup, 1024, -1)
            consumer_perf(tools, targets["direct-sasl-ssl"], "warmup-tls", a.warmup)
        B = {m: {} for m in MODES}
        shift = rnd % len(MODES)
        modes = MODES[shift:] + MODES[:shift]
        for size in a.sizes:
            n = a.n_small if size < 1024 else a.n_large
            for mode in modes:
                t = targets[mode]
                topic, lat_topic = f"b-{mode}-{size}", f"bl-{mode}-{size}"
                create_topic(t, topic, 1)
                create_topic(t, lat_topic, 1)
                f = producer_perf(tools, t, lat_topic, a.lat_n, size, a.rate, props=("linger.ms=0",),
                                  warmup=a.lat_n // 4)
                p = producer_perf(tools, t, topic, n, size, -1)
                c = consumer_perf(tools, t, topic, n)
                rd = run_client(t, f"br-{mode}-{size}", size, 0, 1, ["fixed"], a)["fixed"]
                check()
                fs = f.get("steady", f["total"])
                r = {"produce_msg_s": p["total"]["msg_s"], "consume_msg_s": c["msg_s"],
                     "p50_ms": fs["p50_ms"], "p99_ms": fs["p99_ms"],
                     "sat_p50_ms": p["total"]["p50_ms"], "sat_p99_ms": p["total"]["p99_ms"],
                     "rdk_p50_ms": rd["p50_ms"], "rdk_p99_ms": rd["p99_ms"],
                     "errors": p["errors"] + c["errors"] + f["errors"] + rd["errors"],
                     "raw": {"produce": p, "consume": c, "fixed": f, "client_fixed": rd}}
                for who in t["pids"]:
                    r[f"{who}_produce_cpu_s_gb"] = per_gb(p["server_cpu_s"][who], p["total"]["records"], size)
                    r[f"{who}_consume_cpu_s_gb"] = per_gb(c["server_cpu_s"][who], c["records"], size)
                B[mode][size] = r
                print(f"   B {size:>5} B {mode:<15}: produce {r['produce_msg_s']:>9,.0f} msg/s, consume "
                      f"{r['consume_msg_s']:>9,.0f} msg/s, p50/p99 @ {a.rate}/s java {r['p50_ms']}/{r['p99_ms']} ms, "
                      f"librdkafka {r['rdk_p50_ms']:.2f}/{r['rdk_p99_ms']:.2f} ms; CPU s/GB produce "
                      + ", ".join(f"{w} {r[f'{w}_produce_cpu_s_gb']:.1f}" for w in t["pids"])
                      + f"; errors {r['errors']}", file=sys.stderr, flush=True)
        result["B"] = B
        result["rss_mib"].update({f"kgate-upstream-{'sasl-ssl' if m.endswith('ssl') else 'plaintext'}":
                                  bench.vm_hwm_kb(proc.pid) / 1024 for m, (proc, _) in upstream.items()})
        result["rss_mib"]["kafka_end"] = bench.vm_hwm_kb(kpid) / 1024
        result["seconds"] = time.monotonic() - t_round
        result["load_after"] = os.getloadavg()[0]
        ok = True
        return result
    finally:
        for proc, _ in upstream.values():
            bench.stop(proc)
        if embedded is not None:
            bench.stop(embedded)
        if kafka is not None:
            kafka.stop()
        if ok or not a.keep_failed:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"round {rnd + 1} failed: its logs are kept in {work}", file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# statistics and tables


def stats(values):
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": vals[0], "max": vals[-1], "n": len(vals)}


def per_round(rounds, *path):
    out = []
    for r in rounds:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        out.append(v)
    return out


def fnum(v, digits):
    if v is None:
        return "n/a"
    if digits is not None and round(v, digits) == 0:
        v = 0.0  # no "-0.00"
    if digits is None:  # throughput: whole numbers, the spread in thousands
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def fk(v):
    return f"{v / 1e6:.2f}M" if v >= 1e6 else f"{v / 1e3:.0f}k" if v >= 1e4 else f"{v:,.0f}"


def cell(values, digits):
    s = stats(values)
    if s is None:
        return "n/a"
    if s["n"] == 1 or s["min"] == s["max"]:
        return fnum(s["median"], digits)
    if digits is None:
        return f"{fnum(s['median'], None)} [{fk(s['min'])}, {fk(s['max'])}]"
    return f"{fnum(s['median'], digits)} [{fnum(s['min'], digits)}, {fnum(s['max'], digits)}]"


def compare(xs, ys, kind, digits=2):
    """kgate against the other, per round: a ratio for throughput, a difference for latency and CPU."""
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
    if kind == "ratio":
        s = stats([x / y for x, y in pairs if y])
        if s is None:
            return "n/a"
        return f"{s['median']:.2f}x" + (f" [{s['min']:.2f}, {s['max']:.2f}]" if s["n"] > 1 else "")
    s = stats([x - y for x, y in pairs])
    if s is None:
        return "n/a"
    unit = " ms" if kind == "ms" else ""
    d = 2 if digits is None else digits
    s = {k: (0.0 if isinstance(v, float) and round(v, d) == 0 else v) for k, v in s.items()}
    return f"{s['median']:+.{d}f}{unit}" + (f" [{s['min']:+.{d}f}, {s['max']:+.{d}f}]" if s["n"] > 1 else "")


A_ROWS = [("produce msg/s", "produce_msg_s", None, "ratio"), ("consume msg/s", "consume_msg_s", None, "ratio"),
          ("produce p50 ms @ {rate}/s", "p50_ms", 2, "ms"), ("produce p99 ms @ {rate}/s", "p99_ms", 2, "ms"),
          ("produce p99 ms @ saturation", "sat_p99_ms", 1, "ms"),
          ("server CPU s/GB, produce", "produce_cpu_s_gb", 2, "ratio"),
          ("server CPU s/GB, consume", "consume_cpu_s_gb", 2, "ratio")]


def label(size):
    return f"{size} B" if size < 1024 else f"{size // 1024} KiB"


def table_a(rounds, a):
    clients = {"confluent": "confluent-kafka (client.py)", "java": "Java perf tools"}
    head = "| metric | size | partitions |"
    sep = "|---|---|---|"
    for c in a.clients:
        head += f" {clients[c]}: kgate | Kafka 4.4 | kgate vs Kafka |"
        sep += "---|---|---|"
    rows = [head, sep]
    for metric, key, digits, kind in A_ROWS:
        for size in a.sizes:
            for partitions in a.partitions:
                line = f"| {metric.format(rate=f'{a.rate:,}')} | {label(size)} | {partitions} |"
                for c in a.clients:
                    wk = f"{c}/p{partitions}/{size}"
                    kv, fv = per_round(rounds, "A", "kgate", wk, key), per_round(rounds, "A", "kafka", wk, key)
                    d = digits if not (c == "java" and key.endswith("_ms")) else 0
                    line += f" {cell(kv, d)} | {cell(fv, d)} | {compare(kv, fv, kind, d)} |"
                rows.append(line)
    kr, fr = per_round(rounds, "rss_mib", "kgate"), per_round(rounds, "rss_mib", "kafka")
    line = "| server peak RSS MiB (VmHWM over all of A; per workload in the .json) | | |"
    line += f" {cell(kr, 0)} | {cell(fr, 0)} | {compare(kr, fr, 'ratio')} |"
    line += " | | |" * (len(a.clients) - 1)
    rows.append(line)
    return rows


B_ROWS = [("produce msg/s (producer-perf)", "produce_msg_s", None, "ratio"),
          ("consume msg/s (consumer-perf)", "consume_msg_s", None, "ratio"),
          ("produce p50 ms @ {rate}/s (producer-perf)", "p50_ms", 0, "ms"),
          ("produce p99 ms @ {rate}/s (producer-perf)", "p99_ms", 0, "ms"),
          ("produce p50 ms @ {rate}/s (client.py)", "rdk_p50_ms", 2, "ms"),
          ("produce p99 ms @ {rate}/s (client.py)", "rdk_p99_ms", 2, "ms"),
          ("produce p99 ms @ saturation (producer-perf)", "sat_p99_ms", 0, "ms"),
          ("Kafka CPU s/GB, produce", "kafka_produce_cpu_s_gb", 2, "cpu"),
          ("Kafka CPU s/GB, consume", "kafka_consume_cpu_s_gb", 2, "cpu"),
          ("kgate CPU s/GB, produce", "kgate_produce_cpu_s_gb", 2, None),
          ("kgate CPU s/GB, consume", "kgate_consume_cpu_s_gb", 2, None)]


def table_b(rounds, a):
    rows = ["| metric | size | Kafka direct PLAINTEXT | via kgate PLAINTEXT | kgate vs direct | "
            "Kafka direct SASL_SSL | via kgate SASL_SSL | kgate vs direct |", "|---|---|---|---|---|---|---|---|"]
    for metric, key, digits, kind in B_ROWS:
        for size in a.sizes:
            line = f"| {metric.format(rate=f'{a.rate:,}')} | {label(size)} |"
            for direct, via in (("direct", "kgate"), ("direct-sasl-ssl", "kgate-sasl-ssl")):
                dv, kv = per_round(rounds, "B", direct, size, key), per_round(rounds, "B", via, size, key)
                line += f" {cell(dv, digits)} | {cell(kv, digits)} | {compare(kv, dv, kind, digits) if kind else ''} |"
            rows.append(line)
    line = "| kgate peak RSS MiB | | | " + cell(per_round(rounds, "rss_mib", "kgate-upstream-plaintext"), 0)
    line += " | | | " + cell(per_round(rounds, "rss_mib", "kgate-upstream-sasl-ssl"), 0) + " | |"
    rows.append(line)
    return rows


def table_tls(rounds, a, aes):
    aes_s_gb = GB / aes if aes else None
    rows = ["| CPU seconds per GB of payload | produce | consume |", "|---|---|---|",
            f"| raw AES-256-GCM, one core (`openssl speed`, 16 KiB blocks: {aes / 1e9:.2f} GB/s) | "
            f"{aes_s_gb:.2f} | {aes_s_gb:.2f} |" if aes else "| raw AES-256-GCM | n/a | n/a |"]
    for who, name in (("kgate", "kgate"), ("kafka", "Kafka")):
        cells = []
        for phase in ("produce", "consume"):
            key = f"{who}_{phase}_cpu_s_gb"
            diffs = []
            for size in a.sizes:
                secure, plain = ("kgate-sasl-ssl", "kgate") if who == "kgate" else ("direct-sasl-ssl", "direct")
                s, p = per_round(rounds, "B", secure, size, key), per_round(rounds, "B", plain, size, key)
                extra = [x - y if x is not None and y is not None else None for x, y in zip(s, p)]
                diffs.append(f"{label(size)}: {cell(extra, 2)}")
            cells.append(", ".join(diffs))
        what = "kgate's extra for SASL_SSL over PLAINTEXT (TLS to the client only)" if who == "kgate" else \
            "Kafka's extra for SASL_SSL over PLAINTEXT (direct)"
        rows.append(f"| {what} | {cells[0]} | {cells[1]} |")
    return rows


def goals(rounds, a):
    lines = []
    tp, lat = [], []
    for c in a.clients:
        for partitions in a.partitions:
            for size in a.sizes:
                wk = f"{c}/p{partitions}/{size}"
                for key in ("produce_msg_s", "consume_msg_s"):
                    k, f = (stats(per_round(rounds, "A", w, wk, key)) for w in ("kgate", "kafka"))
                    if k and f:
                        tp.append(k["median"] >= f["median"])
                k, f = (stats(per_round(rounds, "A", w, wk, "p99_ms")) for w in ("kgate", "kafka"))
                if k and f:
                    lat.append(k["median"] < f["median"] if c == "confluent" else k["median"] <= f["median"])
    kr, fr = stats(per_round(rounds, "rss_mib", "kgate")), stats(per_round(rounds, "rss_mib", "kafka"))
    lines.append(f"- A, kgate >= 1.0x Kafka's throughput (medians): {sum(tp)} of {len(tp)} produce/consume figures")
    lines.append(f"- A, kgate's p99 at {a.rate:,}/s lower than Kafka's (Java: not higher, whole ms): "
                 f"{sum(lat)} of {len(lat)}")
    if kr and fr:
        lines.append(f"- A, peak RSS kgate/Kafka: {kr['median'] / fr['median']:.3f} (goal <= 0.1)")
    for direct, via in (("direct", "kgate"), ("direct-sasl-ssl", "kgate-sasl-ssl")):
        parts = []
        for size in a.sizes:
            d, k = (per_round(rounds, "B", m, size, "produce_msg_s") for m in (direct, via))
            r = stats([x / y for x, y in zip(k, d) if x and y])
            dl, kl = per_round(rounds, "B", direct, size, "rdk_p99_ms"), per_round(rounds, "B", via, size, "rdk_p99_ms")
            added = stats([x - y for x, y in zip(kl, dl) if x is not None and y is not None])
            if r and added:
                parts.append(f"{label(size)} {r['median']:.2f}x, {added['median']:+.2f} ms")
        lines.append(f"- B, {via} vs {direct} (goal >= 0.95x produce throughput, <= +0.5 ms p99 at {a.rate:,}/s, "
                     f"client.py's percentiles): " + "; ".join(parts))
    return lines


def markdown(rounds, a, meta):
    counts = ", ".join(f"{a.n_small if s < 1024 else a.n_large:,} x {label(s)}" for s in a.sizes)
    out = [f"# kgate vs Apache Kafka 4.4.0 ({meta['date']})", "",
           f"- machine: {meta['machine']}; load average (1 min) {meta['load']}; run took {meta['minutes']:.1f} min",
           f"- kgate {meta['kgate']} (release); Apache Kafka 4.4.0 single KRaft node (1 GiB heap, G1, "
           f"tests/peers/apache_kafka.py), {meta['java']}",
           f"- clients: confluent-kafka {meta['client']} (bench/client.py) and Kafka 4.4.0's producer/consumer perf "
           f"tools, the same for every server; acks=all, no compression",
           f"- records per run: {counts}; fixed-rate latency: {a.lat_n:,} records at {a.rate:,}/s with linger.ms=0 "
           f"(producer-perf: whole ms, truncated, so 0 is < 1 ms; the first {a.lat_n // 4:,} left out)",
           f"- {len(rounds)} interleaved round(s), fresh servers per round after a warm-up of {a.warmup:,} x 1 KiB; "
           f"cells: median [min, max] over the rounds; kgate vs Kafka: median [min, max] of the per-round "
           f"ratios or differences",
           f"- client-side errors: {meta['errors']}; idle CPU %: {meta['idle']}",
           "- client and servers share the machine's cores: throughput is partly client-bound; CPU s/GB is the "
           "server's own CPU per GB of record payload and moves less with the neighbours (/proc counts in 10 ms "
           "ticks: one tick is " + ", ".join(f"{0.01 / ((a.n_small if s < 1024 else a.n_large) * s / GB):.2f} s/GB at "
                                             f"{label(s)}" for s in a.sizes) + ")",
           "", "## Embedded: kgate vs Apache Kafka 4.4.0", "", *table_a(rounds, a), "",
           "## Upstream: kgate in front of Apache Kafka 4.4.0 vs Kafka direct (1 partition)", "",
           *table_b(rounds, a), "", "## TLS cost (SASL_SSL + SCRAM-SHA-512 over PLAINTEXT, from the table above)", "",
           *table_tls(rounds, a, meta["aes_gcm_bytes_s"]), "", "## Goals", "", *goals(rounds, a), ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------


def aes_gcm_speed(seconds):
    cp = subprocess.run(["openssl", "speed", "-evp", "aes-256-gcm", "-seconds", str(seconds)], capture_output=True,
                        text=True, timeout=120)
    for line in cp.stdout.splitlines():
        if line.lower().startswith("aes-256-gcm"):
            return float(line.split()[-1].rstrip("k")) * 1000  # the 16384-byte column, in 1000s of bytes/s
    return None


def provision(a, work):
    """kgate's certificate and SCRAM user (the real CLI), and the Java client's SASL_SSL properties."""
    certs = work / "certs"
    subprocess.run([a.kgate, "certs", "dev", "--out", str(certs)], check=True, capture_output=True, timeout=60)
    password = secrets.token_urlsafe(18)
    users_file = work / "users.toml"
    subprocess.run([a.kgate, "users", "add", USER, "--mechanism", "SCRAM-SHA-512", "--password-stdin",
                    "--users-file", str(users_file)], input=password + "\n", text=True, check=True,
                   capture_output=True, timeout=60)
    java_config = work / "sasl-ssl.properties"
    java_config.touch(mode=0o600)
    java_config.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{USER}" password="{password}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={certs / 'ca.pem'}\n"
        "ssl.endpoint.identification.algorithm=https\n")
    sec = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": USER,
           "sasl.password": password, "ssl.ca.location": str(certs / "ca.pem"),
           "ssl.endpoint.identification.algorithm": "https"}
    return {"certs": certs, "password": password, "users_file": users_file, "java_config": java_config, "sec": sec}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "client-child":
        ap = argparse.ArgumentParser()
        ap.add_argument("mode")
        for opt in ("--bootstrap", "--topic", "--phases", "--pids"):
            ap.add_argument(opt, required=True)
        for opt in ("--size", "--n", "--partitions", "--rate", "--lat-n"):
            ap.add_argument(opt, type=int, required=True)
        return client_child(ap.parse_args())

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kgate", required=True, help="the kgate release binary")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run (~2.5-3 min): 1 round, 20,000 x 100 B / 10,000 x 1 KiB, --lat-n 2000, "
                         "--warmup 5000, openssl speed 1 s; explicit options still win")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3)")
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--partitions", default="1,6", help="topic partitions for A (default 1,6)")
    ap.add_argument("--clients", default="confluent,java", help="A's clients: confluent (client.py), java (perf tools)")
    ap.add_argument("--n-small", type=int, help="records per run for sizes < 1 KiB (default 300,000)")
    ap.add_argument("--n-large", type=int, help="records per run for sizes >= 1 KiB (default 100,000)")
    ap.add_argument("--rate", type=int, default=5_000, help="the moderate fixed rate of the latency runs, msg/s")
    ap.add_argument("--lat-n", type=int, help="records per fixed-rate latency run (default 20,000)")
    ap.add_argument("--warmup", type=int, help="1 KiB records produced and consumed per server and round before "
                    "measuring (default 100,000; 0: none)")
    ap.add_argument("--idle-seconds", type=float, default=2.0, help="servers' idle CPU sampled this long per round")
    ap.add_argument("--aes-seconds", type=int, help="openssl speed -seconds (default 3)")
    ap.add_argument("--keep-failed", action="store_true", help="keep a failed round's directory (logs)")
    ap.add_argument("--out", default=str(HERE / "out" / "kafka.md"))
    a = ap.parse_args()
    defaults = {"rounds": 3, "n_small": 300_000, "n_large": 100_000, "lat_n": 20_000, "warmup": 100_000,
                "aes_seconds": 3}
    quick = {"rounds": 1, "n_small": 20_000, "n_large": 10_000, "lat_n": 2_000, "warmup": 5_000, "aes_seconds": 1}
    for k, v in (quick if a.quick else defaults).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.kgate = str(Path(a.kgate).resolve())
    a.sizes = [int(s) for s in a.sizes.split(",")]
    a.partitions = [int(p) for p in a.partitions.split(",")]
    a.clients = [c for c in a.clients.split(",") if c]
    if not set(a.clients) <= {"confluent", "java"}:
        sys.exit("--clients: confluent and/or java")
    from apache_kafka import require_kafka
    require_kafka()

    t_start = time.monotonic()
    load_before = os.getloadavg()[0]
    if load_before > 1.0:
        print(f"kafka bench: WARNING: load average {load_before:.2f} before starting; other work on the machine "
              f"distorts the figures", file=sys.stderr)
    print(f"== openssl speed -evp aes-256-gcm -seconds {a.aes_seconds}", file=sys.stderr, flush=True)
    aes = aes_gcm_speed(a.aes_seconds)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import confluent_kafka
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no", "src"],
                           capture_output=True, text=True).stdout.strip()
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.release()}",
            "client": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})",
            "kgate": (rev.stdout.strip() or "?") + (" + uncommitted src changes" if dirty else "")
            + f", binary built {time.strftime('%Y-%m-%d %H:%M', time.localtime(Path(a.kgate).stat().st_mtime))}",
            "java": java[1].strip() if len(java) > 1 else "java ?", "aes_gcm_bytes_s": aes,
            "options": {k: v for k, v in vars(a).items() if k != "out"}}
    rounds = []
    secret_dir = Path(tempfile.mkdtemp(prefix="kgate-kafka-bench-secrets-"))
    try:
        ctx = provision(a, secret_dir)
        for rnd in range(a.rounds):
            try:
                rounds.append(run_round(rnd, a, ctx))
            except Failed as e:
                sys.exit(f"kafka bench: round {rnd + 1} failed: {e}")
            out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rounds": rounds}, indent=1, default=str))
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
    meta["minutes"] = (time.monotonic() - t_start) / 60
    meta["load"] = f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after"
    meta["errors"] = sum(w["errors"] for r in rounds for part in ("A", "B") for s in r[part].values()
                         for w in s.values())
    meta["idle"] = ", ".join(f"{w} {cell(per_round(rounds, 'idle_cpu_pct', w), 1)}" for w in ("kgate", "kafka"))
    md = markdown(rounds, a, meta)
    out.write_text(md)
    summary = {"meta": meta, "rounds": rounds}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1, default=str))
    if any(ctx["password"] in p.read_text(errors="replace") for p in (out, out.with_suffix(".json"))):
        sys.exit("the benchmark user's password was written to bench/out")
    print(md)
    print(f"written to {out} and {out.with_suffix('.json')} ({meta['minutes']:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
    main()
