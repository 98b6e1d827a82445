#!/usr/bin/env python3
"""What Kerberos costs: one kgate, one run, the same client (confluent-kafka 2.0.2 built with GSSAPI).

    bench/run-kerberos.sh [--n 200000] [--rounds 2] [--conn-seconds 10] [--conn-procs 4]

1. Throughput at 1 KiB records through a PLAINTEXT listener and a SASL_PLAINTEXT/GSSAPI listener of the
   same server, with bench/client.py's workload (produce, then consume; acks=all, linger.ms=5), the GSSAPI
   run only adding the SASL settings. Rounds alternate the order.
2. GSSAPI handshakes per second: --conn-procs processes (python-gssapi) each loop over TCP connect,
   SaslHandshake v1 GSSAPI, the SaslAuthenticate token exchange (AP-REQ, mutual auth, RFC 4752 layer),
   Metadata v1, close. Each process gets its TGT and service ticket once (clients reuse tickets); every
   connection makes a fresh security context, so the server's side (accept, replay cache, wrap/unwrap)
   is complete per connection.

A private MIT KDC comes from scripts/kdc.sh. Prints a Markdown table; writes bench/out/kerberos-latest.md.
"""
import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
SIZE = 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"port {port} did not open")


# ---------------------------------------------------------------------------------------------- wire


class Conn:
    """Request header v1 frames over one socket."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.cid = 0

    def call(self, key, version, body):
        self.cid += 1
        cid = b"bench"
        frame = struct.pack(">hhih", key, version, self.cid, len(cid)) + cid + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", self._exact(4))[0]
        data = self._exact(size)
        if struct.unpack(">i", data[:4])[0] != self.cid:
            raise RuntimeError("correlation id mismatch")
        return data[4:]

    def _exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise RuntimeError("connection closed")
            out += chunk
        return out

    def authenticate(self, token):
        body = self.call(36, 1, struct.pack(">i", len(token)) + token)
        err = struct.unpack(">h", body[:2])[0]
        mlen = struct.unpack(">h", body[2:4])[0]
        pos = 4 + max(mlen, 0)
        if err:
            raise RuntimeError(f"SaslAuthenticate error {err}: {body[4:pos].decode(errors='replace')}")
        blen = struct.unpack(">i", body[pos:pos + 4])[0]
        return body[pos + 4:pos + 4 + blen]


def gssapi_login(conn, service_name):
    import gssapi
    hs = conn.call(17, 1, struct.pack(">h", 6) + b"GSSAPI")
    if struct.unpack(">h", hs[:2])[0] != 0:
        raise RuntimeError("GSSAPI not enabled")
    target = gssapi.Name(f"{service_name}@localhost", gssapi.NameType.hostbased_service)
    ctx = gssapi.SecurityContext(name=target, usage="initiate", flags=[gssapi.RequirementFlag.mutual_authentication])
    token = ctx.step()
    while not ctx.complete:
        reply = conn.authenticate(token)
        token = ctx.step(reply)
    offer = conn.authenticate(token or b"")
    layer = ctx.unwrap(offer).message
    if layer[0] & 1 == 0:
        raise RuntimeError("server offers no 'no security layer'")
    conn.authenticate(ctx.wrap(b"\x01\x00\x00\x00", False).message)


# ---------------------------------------------------------------------------------------------- children


def throughput_child(a):
    import client as workload
    from confluent_kafka import Consumer, Producer
    from confluent_kafka.admin import AdminClient
    sec = json.loads(sys.stdin.read())
    workload.Producer = lambda conf, **kw: Producer({**conf, **sec}, **kw)
    from confluent_kafka import libversion
    # librdkafka before 2.1 has no fetch.queue.backoff.ms (and no such backoff to disable).
    old = libversion()[1] < 0x020100FF

    def consumer(conf, **kw):
        merged = {**conf, **sec}
        if old:
            merged.pop("fetch.queue.backoff.ms", None)
        return Consumer(merged, **kw)

    workload.Consumer = consumer
    workload.AdminClient = lambda conf, **kw: AdminClient({**conf, **sec}, **kw)
    workload.create(a.bootstrap, a.topic)
    out = {"produce": workload.produce_throughput(a.bootstrap, a.topic, a.n, SIZE)}
    out["consume"] = workload.consume_throughput(a.bootstrap, a.topic, a.n, SIZE)
    json.dump(out, sys.stdout)


def connect_child(a):
    ok = failed = 0
    lat, errors = [], {}
    while time.time() < a.start_at:
        time.sleep(0.001)
    end = a.start_at + a.seconds
    while time.time() < end:
        t0 = time.perf_counter()
        try:
            conn = Conn(a.port)
            try:
                gssapi_login(conn, "kafka")
                conn.call(3, 1, struct.pack(">i", 0))
            finally:
                conn.sock.close()
            ok += 1
            lat.append(time.perf_counter() - t0)
        except Exception as e:  # counted and reported
            failed += 1
            key = f"{type(e).__name__}: {str(e)[:120]}"
            errors[key] = errors.get(key, 0) + 1
    lat.sort()
    json.dump({"ok": ok, "failed": failed, "errors": errors,
               "p50_ms": lat[len(lat) // 2] * 1e3 if lat else None,
               "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3 if lat else None}, sys.stdout)


# ---------------------------------------------------------------------------------------------- orchestration


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kgate", required=True)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conn-seconds", type=float, default=10)
    ap.add_argument("--conn-procs", type=int, default=4)
    ap.add_argument("--mode", default="main")
    ap.add_argument("--bootstrap")
    ap.add_argument("--topic")
    ap.add_argument("--port", type=int)
    ap.add_argument("--start-at", type=float)
    ap.add_argument("--seconds", type=float)
    a = ap.parse_args()
    if a.mode == "throughput":
        return throughput_child(a)
    if a.mode == "connect":
        return connect_child(a)

    work = Path(tempfile.mkdtemp(prefix="kgate-krb-bench-"))
    kdc_dir, kdc_port = work / "kdc", free_port()
    subprocess.run(["bash", str(REPO / "scripts" / "kdc.sh"), str(kdc_dir), str(kdc_port), "localhost"],
                   check=True, capture_output=True, timeout=60)
    kdc_pid = int((kdc_dir / "kdc.pid").read_text())
    plain, krb = free_port(), free_port()
    (work / "kgate.toml").write_text(f"""
data_dir = "{work}/data"
[[listeners]]
name = "PLAINTEXT"
bind = "127.0.0.1:{plain}"
advertised = "localhost:{plain}"
[[listeners]]
name = "KERBEROS"
bind = "127.0.0.1:{krb}"
advertised = "localhost:{krb}"
security_protocol = "SASL_PLAINTEXT"
sasl_enabled_mechanisms = ["GSSAPI"]
[kerberos]
keytab = "{kdc_dir}/kafka.keytab"
krb5_conf = "{kdc_dir}/krb5.conf"
principal_to_local_rules = ["RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//", "DEFAULT"]
[broker]
group_initial_rebalance_delay_ms = 0
""")
    rcache = work / "rcache"
    rcache.mkdir()
    env = {**os.environ, "KRB5RCACHEDIR": str(rcache), "RUST_LOG": "warn"}
    log = open(work / "kgate.log", "w")
    server = subprocess.Popen([a.kgate, "serve", "--config", str(work / "kgate.toml")], stderr=log, env=env)
    try:
        wait_port(plain)
        wait_port(krb)
        client_env = {**os.environ, "KRB5_CONFIG": str(kdc_dir / "krb5.conf"),
                      "KRB5_CLIENT_KTNAME": f"FILE:{kdc_dir}/client.keytab",
                      "KRB5CCNAME": f"FILE:{work}/ccache"}
        subprocess.run(["kinit", "-kt", str(kdc_dir / "client.keytab"), "client@EXAMPLE.COM"], env=client_env,
                       check=True, timeout=30)
        gss = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "GSSAPI",
               "sasl.kerberos.service.name": "kafka", "sasl.kerberos.kinit.cmd": "true"}
        runs = {"PLAINTEXT": [], "GSSAPI": []}
        order = []
        for r in range(a.rounds):
            order += ["PLAINTEXT", "GSSAPI"] if r % 2 == 0 else ["GSSAPI", "PLAINTEXT"]
        for i, which in enumerate(order):
            port, sec = (plain, {}) if which == "PLAINTEXT" else (krb, gss)
            cpu0 = cpu_seconds(server.pid)
            cp = subprocess.run([sys.executable, __file__, "--kgate", a.kgate, "--mode", "throughput",
                                 "--bootstrap", f"localhost:{port}", "--topic", f"krb-bench-{i}", "--n", str(a.n)],
                                input=json.dumps(sec), capture_output=True, text=True, env=client_env, timeout=600)
            if cp.returncode != 0:
                sys.exit(f"throughput run failed:\n{cp.stderr[-3000:]}")
            out = json.loads(cp.stdout)
            out["server_cpu"] = cpu_seconds(server.pid) - cpu0
            if out["produce"]["errors"] or out["consume"]["errors"]:
                sys.exit(f"client errors in {which}: {out}")
            runs[which].append(out)
        start_at = time.time() + 1.0
        cpu0 = cpu_seconds(server.pid)
        procs = [subprocess.Popen([sys.executable, __file__, "--kgate", a.kgate, "--mode", "connect", "--port",
                                   str(krb), "--start-at", str(start_at), "--seconds", str(a.conn_seconds)],
                                  stdout=subprocess.PIPE, text=True, env=client_env) for _ in range(a.conn_procs)]
        results = [json.loads(p.communicate(timeout=a.conn_seconds + 120)[0]) for p in procs]
        conn_cpu = cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(30)
        os.kill(kdc_pid, 15)
        log.close()

    def mean(which, phase, key):
        return statistics.mean(r[phase][key] for r in runs[which])

    ok = sum(r["ok"] for r in results)
    failed = sum(r["failed"] for r in results)
    rate = ok / a.conn_seconds
    p50 = statistics.median(r["p50_ms"] for r in results if r["p50_ms"] is not None)
    p99 = max(r["p99_ms"] for r in results if r["p99_ms"] is not None)
    rows = []
    for phase in ("produce", "consume"):
        p, g = mean("PLAINTEXT", phase, "msg_s"), mean("GSSAPI", phase, "msg_s")
        rows.append(f"| {phase} 1 KiB msg/s | {p:,.0f} | {g:,.0f} | {g / p:.2f} |")
    errors = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    md = "\n".join([
        f"# kgate: PLAINTEXT vs SASL_PLAINTEXT/GSSAPI ({time.strftime('%Y-%m-%d %H:%M')})",
        "",
        f"- {a.n:,} x 1 KiB records per run, {a.rounds} rounds per listener (alternating), confluent-kafka 2.0.2 "
        "(Debian librdkafka, Cyrus GSSAPI), client and server on the same 2 cores; private MIT KDC on loopback",
        "",
        "| metric | PLAINTEXT | GSSAPI | GSSAPI/PLAINTEXT |",
        "|---|---|---|---|",
        *rows,
        "",
        "| GSSAPI handshakes (connect + SaslHandshake + AP-REQ/AP-REP + security layer + Metadata) | value |",
        "|---|---|",
        f"| handshakes/s ({a.conn_procs} client processes, {a.conn_seconds:.0f} s) | {rate:,.0f} |",
        f"| failed | {failed} |",
        f"| server CPU per handshake | {conn_cpu / max(ok, 1) * 1e3:.2f} ms |",
        f"| latency p50 / p99 | {p50:.1f} / {p99:.1f} ms |",
    ])
    if errors:
        md += "\n\nerrors: " + json.dumps(errors)
    print(md)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "kerberos-latest.md").write_text(md + "\n")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
