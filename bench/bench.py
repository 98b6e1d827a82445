#!/usr/bin/env python3
"""Side-by-side benchmark of kgate and Tansu with the same client (bench/client.py).

The servers run one after the other (never at the same time: the machine has 2 cores shared by client
and server), each fresh, on its own loopback port. Peak RSS is the server's VmHWM after all its runs.
Use bench/run.sh, which builds kgate and installs Tansu first.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode} at startup:\n{Path(log).read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"server did not listen on 127.0.0.1:{port} within {timeout}s")


def vm_hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def cpu_seconds(pid):
    """CPU seconds (user + system, all threads) process `pid` has used so far, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_kgate(binary, work):
    port = free_port()
    cfg = work / "kgate.toml"
    cfg.write_text(f"""data_dir = "{work / 'data'}"
[[listeners]]
name = "PLAINTEXT"
bind = "127.0.0.1:{port}"
advertised = "127.0.0.1:{port}"
security_protocol = "PLAINTEXT"
[broker]
node_id = 0
auto_create_topics = true
num_partitions = 1
group_initial_rebalance_delay_ms = 0
[network]
socket_request_max_bytes = 104857600
""")
    log = work / "kgate.log"
    proc = subprocess.Popen([binary, "serve", "--config", str(cfg)], cwd=work, stdin=subprocess.DEVNULL,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    wait_port(port, proc, log)
    return proc, port, log


def start_kgate_upstream(binary, work, upstream_bootstrap, node_id, secure, users_file, certs, host="localhost"):
    """kgate in front of one upstream broker (`node_id`): one client listener, PLAINTEXT or SASL_SSL with
    SCRAM-SHA-512 (certs: a `kgate certs dev` folder), with an explicit port for that broker. Returns the
    process and the client bootstrap address."""
    work.mkdir(parents=True, exist_ok=True)
    port, broker_port = free_port(), free_port()
    listener = f"""[[listeners]]
name = "CLIENTS"
bind = "127.0.0.1:{port}"
advertised = "{host}:{port}"
security_protocol = "{'SASL_SSL' if secure else 'PLAINTEXT'}"
"""
    if secure:
        listener += f"""sasl_enabled_mechanisms = ["SCRAM-SHA-512"]
tls = {{ cert = "{certs / 'server.pem'}", key = "{certs / 'server.key'}" }}
"""
    listener += f"""[listeners.broker_addresses]
scheme = "port_per_broker"
base_port = {broker_port}
brokers = {{ "{node_id}" = "{host}:{broker_port}" }}
"""
    cfg = work / "kgate.toml"
    cfg.write_text(f"""data_dir = "{work / 'data'}"
{listener}
[backend]
kind = "upstream"
bootstrap = ["{upstream_bootstrap}"]
[security]
users_file = "{users_file}"
""")
    log = work / "kgate.log"
    proc = subprocess.Popen([binary, "serve", "--config", str(cfg)], cwd=work, stdin=subprocess.DEVNULL,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env={**os.environ, "RUST_LOG": "warn"})
    wait_port(port, proc, log)
    return proc, f"{host}:{port}"


def start_tansu(binary, work):
    port = free_port()
    log = work / "tansu.log"
    # run in a private cwd: tansu reads ./.env
    proc = subprocess.Popen([binary, "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}",
                             "--storage-engine", "memory://tansu/"],
                            cwd=work, stdin=subprocess.DEVNULL, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            env={k: v for k, v in os.environ.items() if not k.startswith("RUST_LOG")})
    wait_port(port, proc, log)
    return proc, port, log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_server(name, starter, binary, sizes, counts, rate, lat_n):
    work = Path(tempfile.mkdtemp(prefix=f"kgate-bench-{name}-"))
    print(f"== {name}: {binary}", file=sys.stderr, flush=True)
    proc, port, log = starter(binary, work)
    results = {"runs": {}}
    try:
        for size in sizes:
            cp = subprocess.run([sys.executable, str(HERE / "client.py"), "--bootstrap", f"127.0.0.1:{port}",
                                 "--size", str(size), "--n", str(counts[size]), "--rate", str(rate),
                                 "--lat-n", str(lat_n)], stdout=subprocess.PIPE, timeout=1800)
            if cp.returncode != 0:
                sys.exit(f"{name}: client failed for {size} B (exit {cp.returncode}); server log tail:\n"
                         f"{log.read_text(errors='replace')[-3000:]}")
            results["runs"][size] = json.loads(cp.stdout)
            if proc.poll() is not None:
                sys.exit(f"{name} died during the {size} B run")
        results["vm_hwm_kb"] = vm_hwm_kb(proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return results


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def table(res, sizes, rate, meta):
    k, t = res["kgate"], res["tansu"]
    rows = []

    def row(metric, size, kv, tv, digits=0, better="higher"):
        ratio = f"{kv / tv:.3g}" if kv is not None and tv else "n/a"
        rows.append(f"| {metric} | {size} | {fmt(kv, digits)} | {fmt(tv, digits)} | {ratio} ({better} is better) |")

    for s in sizes:
        label = f"{s} B" if s < 1024 else f"{s // 1024} KiB"
        kr, tr = k["runs"][s], t["runs"][s]
        row("produce msg/s", label, kr["produce"]["msg_s"], tr["produce"]["msg_s"])
        row("produce MB/s", label, kr["produce"]["mb_s"], tr["produce"]["mb_s"], 1)
        row("consume msg/s", label, kr["consume"]["msg_s"], tr["consume"]["msg_s"])
        row("consume MB/s", label, kr["consume"]["mb_s"], tr["consume"]["mb_s"], 1)
        row(f"produce p50 ms @ {rate:,}/s", label, kr["fixed"]["p50_ms"], tr["fixed"]["p50_ms"], 2, "lower")
        row(f"produce p99 ms @ {rate:,}/s", label, kr["fixed"]["p99_ms"], tr["fixed"]["p99_ms"], 2, "lower")
        row("produce p50 ms @ saturation", label, kr["produce"]["p50_ms"], tr["produce"]["p50_ms"], 1, "lower")
        row("produce p99 ms @ saturation", label, kr["produce"]["p99_ms"], tr["produce"]["p99_ms"], 1, "lower")
    km, tm = k["vm_hwm_kb"], t["vm_hwm_kb"]
    row("server peak RSS MiB (VmHWM)", "whole run", km / 1024 if km else None, tm / 1024 if tm else None, 1, "lower")
    errs = {n: sum(r[p]["errors"] for r in res[n]["runs"].values() for p in ("produce", "consume", "fixed"))
            for n in ("kgate", "tansu")}
    records = ", ".join(f"{meta['counts'][s]:,} x {s} B" for s in sizes)
    out = [f"# kgate vs Tansu ({meta['date']})", "",
           f"- machine: {meta['machine']}; client: confluent-kafka {meta['client']} (same script, "
           f"`bench/client.py`), one partition, acks=all, no compression",
           f"- kgate {meta['kgate']} (release, data on disk in a temp dir); Tansu {meta['tansu']} "
           f"(`--storage-engine memory://`)",
           f"- records: {records}; fixed-rate latency: "
           f"{meta['lat_n']:,} records at {rate:,}/s with linger.ms=0; saturation latency = Message.latency() "
           f"during the throughput run (includes client-side queueing)",
           f"- client-side errors: kgate {errs['kgate']}, Tansu {errs['tansu']}",
           f"- client and server share 2 cores, so throughput is partly client-bound: read ratios, not absolutes",
           "", "| metric | size | kgate | Tansu | kgate/Tansu |", "|---|---|---|---|---|", *rows, ""]
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgate", required=True)
    ap.add_argument("--tansu", required=True)
    ap.add_argument("--sizes", default="100,1024")
    ap.add_argument("--n-small", type=int, default=1_000_000, help="records for sizes < 1 KiB")
    ap.add_argument("--n-large", type=int, default=300_000, help="records for sizes >= 1 KiB")
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--lat-n", type=int, default=50_000)
    ap.add_argument("--out", default=str(HERE / "out" / "latest.md"))
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    counts = {s: a.n_small if s < 1024 else a.n_large for s in sizes}
    res = {
        "kgate": run_server("kgate", start_kgate, a.kgate, sizes, counts, a.rate, a.lat_n),
        "tansu": run_server("tansu", start_tansu, a.tansu, sizes, counts, a.rate, a.lat_n),
    }
    import confluent_kafka
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    tv = subprocess.run([a.tansu, "--version"], capture_output=True, text=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.release()}",
            "client": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})",
            "kgate": rev.stdout.strip() or "?", "tansu": (tv.stdout.strip().removeprefix("tansu ") or "0.6.0"),
            "counts": counts, "lat_n": a.lat_n}
    md = table(res, sizes, a.rate, meta)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": res}, indent=1, default=str))
    print(md)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
