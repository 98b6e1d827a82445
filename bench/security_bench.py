#!/usr/bin/env python3
"""What security costs: one kgate, one run, the same client.

    bench/run-security.sh [--n 300000] [--rounds 3] [--conn-seconds 10] [--conn-procs 4]

1. Throughput at 1 KiB records through a PLAINTEXT listener and through a SASL_SSL/SCRAM-SHA-512 listener
   of the same server, with the unchanged confluent-kafka workload of bench/client.py (produce_throughput,
   consume_throughput; acks=all, linger.ms=5, no compression). For SASL_SSL its Producer/Consumer/AdminClient
   only get the security settings added (CA verification and hostname verification on). Rounds alternate
   the order (PLAINTEXT, SASL_SSL, SASL_SSL, PLAINTEXT, ...) on fresh topics; the table gives the mean, and the
   server's and the client's CPU seconds per run show where the extra cost of TLS goes.
2. New connections per second: --conn-procs Python processes (ssl + the minimal SCRAM client of
   tests/peers/seclib.py) each loop for --conn-seconds over: TCP connect, full TLS handshake (no session
   resumption), ApiVersions, SaslHandshake v1, SCRAM-SHA-512 in two SaslAuthenticate v1, Metadata v1,
   close. The client caches SaltedPassword per (salt, iterations) as RFC 5802 allows, so PBKDF2 runs once
   per process; the server's side of every login is complete. kgate logs at its default level (info):
   one "authenticated" line per connection, which the bench counts as a cross-check.

Prints a Markdown table and writes bench/out/security-latest.md (+ .json). Provisioning uses the real CLI
(`kgate certs dev`, `kgate users add --password-stdin`).
"""
import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests" / "peers"))
sys.path.insert(0, str(HERE))

SIZE = 1024
GOAL_RATIO = 0.85
GOAL_CONN = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(binary, *args, input=None):
    cp = subprocess.run([binary, *args], input=input, capture_output=True, text=True, timeout=120)
    if cp.returncode != 0:
        sys.exit(f"kgate {' '.join(args)} failed ({cp.returncode}):\n{cp.stderr}")
    return cp.stdout


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_hwm_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


# ----------------------------------------------------------------------------------------------
# child modes


def throughput_child(a):
    """Runs bench/client.py's workload with security settings merged into every client it creates."""
    import client as workload
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    sec = json.loads(sys.stdin.read())
    workload.Producer = lambda conf, **kw: Producer({**conf, **sec}, **kw)
    workload.Consumer = lambda conf, **kw: Consumer({**conf, **sec}, **kw)
    workload.AdminClient = lambda conf, **kw: AdminClient({**conf, **sec}, **kw)
    workload.create(a.bootstrap, a.topic)
    out = {"produce": workload.produce_throughput(a.bootstrap, a.topic, a.n, a.size)}
    out["consume"] = workload.consume_throughput(a.bootstrap, a.topic, a.n, a.size)
    json.dump(out, sys.stdout)


def connect_child(a):
    from seclib import RawConn, sasl_login, tls_context
    cfg = json.loads(sys.stdin.read())
    ctx = tls_context(cfg["ca"], check_hostname=True)
    cache = {}
    ok = failed = 0
    lat = []
    errors = {}
    while time.time() < a.start_at:
        time.sleep(0.001)
    end = a.start_at + a.seconds
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            with RawConn("127.0.0.1", a.port, ctx=ctx, server_hostname="localhost", timeout=10) as c:
                r = sasl_login(c, "SCRAM-SHA-512", cfg["user"], cfg["password"], salted_cache=cache)
                if r.error_code != 0:
                    raise RuntimeError(f"SaslAuthenticate error {r.error_code}: {r.error_message}")
                md = c.metadata()
                if md.i32() != 1:
                    raise RuntimeError("metadata without the broker")
            ok += 1
            lat.append(time.perf_counter() - t0)
        except Exception as e:  # counted and reported
            failed += 1
            key = type(e).__name__ + ": " + str(e)[:120]
            errors[key] = errors.get(key, 0) + 1
    lat.sort()
    json.dump({"ok": ok, "failed": failed, "errors": errors, "seconds": a.seconds,
               "p50_ms": lat[len(lat) // 2] * 1e3 if lat else None,
               "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else None}, sys.stdout)


# ----------------------------------------------------------------------------------------------
# orchestration


def start_kgate(binary, work, certs, users_file):
    plain, secure = free_port(), free_port()
    cfg = work / "kgate.toml"
    cfg.write_text(f"""data_dir = "{work / 'data'}"
[[listeners]]
name = "PLAINTEXT"
bind = "127.0.0.1:{plain}"
advertised = "127.0.0.1:{plain}"
security_protocol = "PLAINTEXT"
[[listeners]]
name = "SECURE"
bind = "127.0.0.1:{secure}"
advertised = "localhost:{secure}"
security_protocol = "SASL_SSL"
sasl_enabled_mechanisms = ["SCRAM-SHA-512"]
tls = {{ cert = "{certs / 'server.pem'}", key = "{certs / 'server.key'}" }}
[broker]
node_id = 0
auto_create_topics = true
num_partitions = 1
group_initial_rebalance_delay_ms = 0
[network]
socket_request_max_bytes = 104857600
[security]
users_file = "{users_file}"
""")
    log = work / "kgate.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUST_LOG")}
    env["NO_COLOR"] = "1"
    proc = subprocess.Popen([binary, "serve", "--config", str(cfg)], cwd=work, stdin=subprocess.DEVNULL,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            sys.exit(f"kgate exited with {proc.returncode} at startup:\n{log.read_text()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", secure), timeout=0.5).close()
            socket.create_connection(("127.0.0.1", plain), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("kgate did not listen within 30 s")
            time.sleep(0.05)
    return proc, plain, secure, log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_throughput(bootstrap, sec, topic, n, server_pid):
    import resource
    cpu0, ru0 = cpu_seconds(server_pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    cp = subprocess.run([sys.executable, __file__, "throughput-child", "--bootstrap", bootstrap, "--topic", topic,
                         "--n", str(n), "--size", str(SIZE)], input=json.dumps(sec), stdout=subprocess.PIPE,
                        text=True, timeout=600)
    if cp.returncode != 0:
        sys.exit(f"throughput client failed for {bootstrap} (exit {cp.returncode})")
    out = json.loads(cp.stdout)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out["server_cpu_s"] = cpu_seconds(server_pid) - cpu0
    out["client_cpu_s"] = (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    return out


def run_connections(port, ca, user, password, procs, seconds, server_pid):
    start_at = time.time() + 1.5  # let every process import and get ready
    children = [subprocess.Popen([sys.executable, __file__, "connect-child", "--port", str(port),
                                  "--seconds", str(seconds), "--start-at", repr(start_at)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    for c in children:
        c.stdin.write(json.dumps({"ca": ca, "user": user, "password": password}))
        c.stdin.close()
    while time.time() < start_at:
        time.sleep(0.001)
    cpu0 = cpu_seconds(server_pid)
    results = []
    for c in children:
        out = c.stdout.read()
        if c.wait(seconds + 60) != 0:
            sys.exit("a connection client failed")
        results.append(json.loads(out))
    cpu = cpu_seconds(server_pid) - cpu0
    ok = sum(r["ok"] for r in results)
    errors = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    return {"procs": procs, "seconds": seconds, "ok": ok, "failed": sum(r["failed"] for r in results),
            "errors": errors, "conn_s": ok / seconds, "server_cpu_s": cpu,
            "server_cpu_ms_per_conn": cpu * 1e3 / ok if ok else None,
            "p50_ms": statistics.median([r["p50_ms"] for r in results if r["p50_ms"] is not None] or [0]),
            "p99_ms": max([r["p99_ms"] for r in results if r["p99_ms"] is not None] or [0])}


def tls_details(port, ca):
    from seclib import tls_context
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with tls_context(ca).wrap_socket(raw, server_hostname="localhost") as s:
            return f"{s.version()} {s.cipher()[0]}"


def fmt(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def table(res, meta):
    p, s = res["plaintext"], res["sasl_ssl"]
    rows = []
    for metric, key, sub, digits in [("produce msg/s", "produce", "msg_s", 0), ("produce MB/s", "produce", "mb_s", 1),
                                     ("consume msg/s", "consume", "msg_s", 0), ("consume MB/s", "consume", "mb_s", 1)]:
        pv, sv = p[key][sub], s[key][sub]
        ratio = sv / pv if pv else None
        goal = "" if "MB" in metric else (" ✅" if ratio and ratio >= GOAL_RATIO else " ❌")
        rows.append(f"| {metric} | {fmt(pv, digits)} | {fmt(sv, digits)} | {ratio:.2f}{goal} |")
    for who in ("server", "client"):
        pv, sv = p["cpu"][who], s["cpu"][who]
        rows.append(f"| {who} CPU seconds per run (produce + consume + setup) | {pv:.2f} | {sv:.2f} | "
                    f"{sv / pv:.2f} (CPU cost, lower is better) |")
    c = res["connections"]
    conn_goal = "✅" if c["conn_s"] >= GOAL_CONN else "❌"
    out = [f"# kgate: PLAINTEXT vs SASL_SSL/SCRAM-SHA-512 ({meta['date']})", "",
           f"- machine: {meta['machine']}; kgate {meta['kgate']} (release); client confluent-kafka "
           f"{meta['client']}, the workload of `bench/client.py` unchanged (acks=all, linger.ms=5, no compression, "
           f"one partition)",
           f"- same server, same run: PLAINTEXT listener and SASL_SSL listener ({meta['tls']}, server certificate from "
           f"`kgate certs dev`, client verifies CA and hostname); user from `kgate users add` (SCRAM-SHA-512, "
           f"{meta['iterations']} iterations)",
           f"- load average (1 min): {meta['load']}",
           f"- {meta['n']:,} records x {SIZE} B per run, {meta['rounds']} runs per listener in alternating order "
           f"(mean shown; per-run values in the .json); client-side errors: {res['errors']}",
           "", "| metric (1 KiB records) | PLAINTEXT | SASL_SSL + SCRAM-SHA-512 | ratio (goal ≥ 0.85) |",
           "|---|---|---|---|", *rows, "",
           f"New connections (TCP + full TLS handshake + ApiVersions + SCRAM-SHA-512 + Metadata v1, then close): "
           f"{c['procs']} Python client processes (`ssl` + seclib's SCRAM client) for {c['seconds']} s.", "",
           "| metric | value | goal |", "|---|---|---|",
           f"| connections/s | {fmt(c['conn_s'])} | ≥ {GOAL_CONN} {conn_goal} |",
           f"| failed connections | {c['failed']} | 0 |",
           f"| server CPU per connection | {fmt(c['server_cpu_ms_per_conn'], 3)} ms | |",
           f"| connect-to-metadata latency p50 / p99 | {fmt(c['p50_ms'], 2)} / {fmt(c['p99_ms'], 2)} ms | |",
           f"| 'authenticated' lines in kgate's log | {c['logged']:,} | = connections ({c['ok']:,}) |",
           "", "- client and server share the machine's cores, so absolute numbers are partly client-bound; "
           "the ratio compares both listeners under the same constraint", ""]
    return "\n".join(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("throughput-child", "connect-child"):
        ap = argparse.ArgumentParser()
        ap.add_argument("mode")
        ap.add_argument("--bootstrap")
        ap.add_argument("--topic")
        ap.add_argument("--n", type=int)
        ap.add_argument("--size", type=int, default=SIZE)
        ap.add_argument("--port", type=int)
        ap.add_argument("--seconds", type=float)
        ap.add_argument("--start-at", type=float)
        a = ap.parse_args()
        return throughput_child(a) if a.mode == "throughput-child" else connect_child(a)

    ap = argparse.ArgumentParser()
    ap.add_argument("--kgate", required=True)
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3, help="runs per listener, alternating order")
    ap.add_argument("--conn-seconds", type=float, default=10.0)
    ap.add_argument("--conn-procs", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / "out" / "security-latest.md"))
    a = ap.parse_args()

    load_before = os.getloadavg()[0]
    if load_before > 1.0:
        print(f"security bench: WARNING: load average {load_before:.2f} before starting; other work on the machine "
              f"distorts the figures", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="kgate-secbench-"))
    try:
        certs = work / "certs"
        cli(a.kgate, "certs", "dev", "--out", str(certs))
        users_file = work / "users.toml"
        password = secrets.token_urlsafe(18)
        added = cli(a.kgate, "users", "add", "bench", "--mechanism", "SCRAM-SHA-512", "--password-stdin",
                    "--users-file", str(users_file), input=password + "\n")
        iterations = int(added.split("(")[-1].split()[0])
        proc, plain, secure, log = start_kgate(a.kgate, work, certs, users_file)
        try:
            sec = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "bench",
                   "sasl.password": password, "ssl.ca.location": str(certs / "ca.pem"),
                   "ssl.endpoint.identification.algorithm": "https"}
            targets = {"plaintext": (f"127.0.0.1:{plain}", {}), "sasl_ssl": (f"localhost:{secure}", sec)}
            order = []
            for r in range(a.rounds):
                order += ["plaintext", "sasl_ssl"] if r % 2 == 0 else ["sasl_ssl", "plaintext"]
            runs = {"plaintext": [], "sasl_ssl": []}
            for i, name in enumerate(order):
                bootstrap, conf = targets[name]
                print(f"== throughput run {i + 1}/{len(order)}: {name}", file=sys.stderr, flush=True)
                r = run_throughput(bootstrap, conf, f"sec-bench-{i}-{name}", a.n, proc.pid)
                print(f"   produce {r['produce']['msg_s']:,.0f} msg/s, consume {r['consume']['msg_s']:,.0f} msg/s; "
                      f"CPU s: server {r['server_cpu_s']:.2f}, client {r['client_cpu_s']:.2f}", file=sys.stderr, flush=True)
                runs[name].append(r)
                if proc.poll() is not None:
                    sys.exit(f"kgate died during the {name} run")
            res = {"runs": runs}
            for name, rs in runs.items():
                res[name] = {k: {m: statistics.mean(r[k][m] for r in rs) for m in ("msg_s", "mb_s")}
                             for k in ("produce", "consume")}
                res[name]["cpu"] = {w: statistics.mean(r[f"{w}_cpu_s"] for r in rs) for w in ("server", "client")}
            res["errors"] = sum(r[k]["errors"] for rs in runs.values() for r in rs for k in ("produce", "consume"))
            before = log.read_text(errors="replace").count(" authenticated principal=")
            print(f"== connections: {a.conn_procs} processes x {a.conn_seconds:g} s", file=sys.stderr, flush=True)
            conn = run_connections(secure, str(certs / "ca.pem"), "bench", password, a.conn_procs, a.conn_seconds,
                                   proc.pid)
            time.sleep(0.5)
            conn["logged"] = log.read_text(errors="replace").count(" authenticated principal=") - before
            print(f"   {conn['conn_s']:,.0f} conn/s ({conn['failed']} failed)", file=sys.stderr, flush=True)
            res["connections"] = conn
            res["vm_hwm_kb"] = vm_hwm_kb(proc.pid)
            tls = tls_details(secure, str(certs / "ca.pem"))
        finally:
            stop(proc)
        if password in log.read_text(errors="replace"):
            sys.exit("the benchmark user's password appears in kgate's log")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    import confluent_kafka
    rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.release()}",
            "client": f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})",
            "kgate": rev.stdout.strip() or "?", "n": a.n,
            "load": f"{load_before:.2f} before, {os.getloadavg()[0]:.2f} after", "rounds": a.rounds, "tls": tls, "iterations": iterations}
    md = table(res, meta)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": res}, indent=1))
    print(md)
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
