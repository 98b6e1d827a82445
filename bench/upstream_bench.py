#!/usr/bin/env python3
"""Upstream mode: the same client (bench/client.py) direct to Tansu and through kgate in front of it.

Three modes, one after the other, each with a fresh Tansu (memory storage) so that no run reads or
writes another's data:
  direct          client -> Tansu
  kgate           client -> kgate (PLAINTEXT, port-per-broker) -> Tansu
  kgate-sasl-ssl  client -> kgate (SASL_SSL, SCRAM-SHA-512, CA and hostname verified) -> Tansu
Reported: throughput ratios against direct, and the latency kgate adds (p50/p99 at a fixed rate and
at saturation). Use bench/run-upstream.sh, which builds kgate and installs Tansu first.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench  # free_port, wait_port, vm_hwm_kb, stop, start_tansu

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run_client(bootstrap, size, n, rate, lat_n, conf):
    args = [sys.executable, str(HERE / "client.py"), "--bootstrap", bootstrap, "--size", str(size), "--n", str(n),
            "--rate", str(rate), "--lat-n", str(lat_n)]
    for k, v in conf.items():
        args += ["--conf", f"{k}={v}"]
    cp = subprocess.run(args, stdout=subprocess.PIPE, timeout=1800)
    if cp.returncode != 0:
        sys.exit(f"client failed against {bootstrap} ({size} B, exit {cp.returncode})")
    return json.loads(cp.stdout)


def run_mode(mode, a, sizes, counts, secrets):
    work = Path(tempfile.mkdtemp(prefix=f"kgate-upstream-bench-{mode}-"))
    print(f"== {mode}", file=sys.stderr, flush=True)
    tansu, tansu_port, _ = bench.start_tansu(a.tansu, work)
    kgate = None
    conf = {}
    try:
        if mode == "direct":
            bootstrap = f"127.0.0.1:{tansu_port}"
        else:
            secure = mode == "kgate-sasl-ssl"
            shutil.copytree(secrets / "certs", work / "certs")
            shutil.copy(secrets / "users.toml", work / "users.toml")
            # Tansu's node id is 111.
            kgate, bootstrap = bench.start_kgate_upstream(a.kgate, work, f"127.0.0.1:{tansu_port}", 111, secure,
                                                          work / "users.toml", work / "certs")
            if secure:
                conf = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
                        "sasl.username": "bench", "sasl.password": (secrets / "password").read_text().strip(),
                        "ssl.ca.location": str(work / "certs" / "ca.pem"),
                        "ssl.endpoint.identification.algorithm": "https"}
        runs = {size: run_client(bootstrap, size, counts[size], a.rate, a.lat_n, conf) for size in sizes}
        rss = bench.vm_hwm_kb(kgate.pid) if kgate else None
        return {"runs": runs, "kgate_vm_hwm_kb": rss}
    finally:
        if kgate:
            bench.stop(kgate)
        bench.stop(tansu)
        shutil.rmtree(work, ignore_errors=True)


MODES = ("direct", "kgate", "kgate-sasl-ssl")


def median_of(results):
    """The element-wise median of equally shaped nested dicts of numbers."""
    first = results[0]
    if isinstance(first, dict):
        return {k: median_of([r[k] for r in results]) for k in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        vals = sorted(results)
        return vals[len(vals) // 2]
    return first


def table(res, sizes, a, meta):
    rows = []
    d = res["direct"]

    def fmt(v, digits=0):
        return "n/a" if v is None else f"{v:,.{digits}f}"

    for s in sizes:
        label = f"{s} B" if s < 1024 else f"{s // 1024} KiB"
        dr = d["runs"][s]
        for mode in ("kgate", "kgate-sasl-ssl"):
            r = res[mode]["runs"][s]
            rows.append(f"| produce msg/s | {label} | {mode} | {fmt(r['produce']['msg_s'])} | "
                        f"{fmt(dr['produce']['msg_s'])} | {r['produce']['msg_s'] / dr['produce']['msg_s']:.2f}x |")
            rows.append(f"| consume msg/s | {label} | {mode} | {fmt(r['consume']['msg_s'])} | "
                        f"{fmt(dr['consume']['msg_s'])} | {r['consume']['msg_s'] / dr['consume']['msg_s']:.2f}x |")
            for q in ("p50", "p99"):
                kv, dv = r["fixed"][f"{q}_ms"], dr["fixed"][f"{q}_ms"]
                rows.append(f"| produce {q} ms @ {a.rate:,}/s | {label} | {mode} | {kv:.2f} | {dv:.2f} | "
                            f"{kv - dv:+.2f} ms |")
            for q in ("p50", "p99"):
                kv, dv = r["produce"][f"{q}_ms"], dr["produce"][f"{q}_ms"]
                rows.append(f"| produce {q} ms @ saturation | {label} | {mode} | {kv:.1f} | {dv:.1f} | "
                            f"{kv - dv:+.1f} ms |")
    rss = {m: res[m]["kgate_vm_hwm_kb"] for m in ("kgate", "kgate-sasl-ssl")}
    errors = {m: sum(r[p]["errors"] for r in res[m]["runs"].values() for p in ("produce", "consume", "fixed"))
              for m in res}
    records = ", ".join(f"{meta['counts'][s]:,} x {s} B" for s in sizes)
    return "\n".join([
        f"# kgate in front of Tansu vs Tansu direct ({meta['date']})", "",
        f"- machine: {meta['machine']}; client: confluent-kafka {meta['client']} (`bench/client.py`, the same script "
        f"in every mode), one partition, acks=all, no compression",
        f"- Tansu {meta['tansu']} (`memory://`, fresh per mode and round); kgate {meta['kgate']} (release); "
        f"{a.repeat} rounds with the modes interleaved, every figure the median of the rounds",
        f"- records: {records}; fixed-rate latency: {a.lat_n:,} "
        f"records at {a.rate:,}/s, linger.ms=0",
        f"- kgate peak RSS: PLAINTEXT {fmt(rss['kgate'] / 1024 if rss['kgate'] else None, 1)} MiB, SASL_SSL "
        f"{fmt(rss['kgate-sasl-ssl'] / 1024 if rss['kgate-sasl-ssl'] else None, 1)} MiB; client errors: {errors}",
        "- client, kgate and Tansu share 2 cores: kgate's own CPU comes out of the same budget",
        "", "| metric | size | mode | through kgate | direct | kgate vs direct |", "|---|---|---|---|---|---|",
        *rows, ""])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgate", required=True)
    ap.add_argument("--tansu", required=True)
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--n-small", type=int, default=500_000)
    ap.add_argument("--n-large", type=int, default=200_000)
    ap.add_argument("--rate", type=int, default=5_000, help="the moderate fixed rate of the latency run")
    ap.add_argument("--lat-n", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of all modes; figures are medians")
    ap.add_argument("--out", default=str(HERE / "out" / "upstream.md"))
    a = ap.parse_args()
    a.kgate, a.tansu = str(Path(a.kgate).resolve()), str(Path(a.tansu).resolve())
    sizes = [int(s) for s in a.sizes.split(",")]
    counts = {s: a.n_small if s < 1024 else a.n_large for s in sizes}
    secrets = Path(tempfile.mkdtemp(prefix="kgate-upstream-bench-secrets-"))
    try:
        subprocess.run([a.kgate, "certs", "dev", "--out", str(secrets / "certs")], check=True, capture_output=True)
        password = os.urandom(12).hex()
        (secrets / "password").write_text(password)
        subprocess.run([a.kgate, "users", "add", "bench", "--mechanism", "SCRAM-SHA-512", "--password-stdin",
                        "--users-file", str(secrets / "users.toml")], input=password + "\n", text=True, check=True,
                       capture_output=True)
        # Modes interleaved, --repeat rounds; every figure below is the median over the rounds.
        rounds = [{mode: run_mode(mode, a, sizes, counts, secrets) for mode in MODES} for _ in range(a.repeat)]
        res = {mode: median_of([r[mode] for r in rounds]) for mode in MODES}
    finally:
        shutil.rmtree(secrets, ignore_errors=True)
    import confluent_kafka
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.release()}",
            "client": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})",
            "kgate": rev.stdout.strip() or "?", "tansu": "0.6.0", "counts": counts}
    md = table(res, sizes, a, meta)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": res}, indent=1, default=str))
    print(md)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
