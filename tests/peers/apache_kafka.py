"""Apache Kafka 4.4.0 as a real peer: KRaft clusters on 127.0.0.1 and the Java tools, from the jars that
scripts/install-deps.sh puts into .cache/apache-kafka-4.4.0/libs (Maven Central, sha256-locked).

    cluster = KafkaCluster(workdir, nodes=3, listeners=[Listener("CLIENT", "PLAINTEXT")])
    cluster.start()                       # format, start every node, wait until all brokers are registered
    cluster.bootstrap("CLIENT")           # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
    cluster.kill_node(2); cluster.start_node(2); cluster.add_broker()
    cluster.tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", ..., "--list")
    cluster.stop()

Every node is a combined broker+controller (static quorum); `add_broker()` adds a broker-only node. The
cluster's own links (CONTROLLER, and INTERNAL between brokers) authenticate with SASL/PLAIN as `User:admin`,
which is always a super user, so the StandardAuthorizer can be switched on without a back door. Client
listeners are whatever a test asks for: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL with GSSAPI (against a test
KDC, `kafka/localhost`), PLAIN and SCRAM-SHA-256/512 (users written at format time).

Processes are stopped by PID; their logs stay in the node's directory (server.log, kafka-request.log,
kafka-authorizer.log) for a failed test to show. `python apache_kafka.py --help` runs a cluster by hand
(scripts/apache-kafka.sh).
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peerlib import REPO, _child_setup, free_port  # noqa: E402

KAFKA_VERSION = "4.4.0"
KAFKA_LIBS = REPO / ".cache" / f"apache-kafka-{KAFKA_VERSION}" / "libs"
ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"
STORE_PASSWORD = "changeit"
INSTALL_HINT = "run scripts/install-deps.sh (it resolves Apache Kafka from Maven Central)"

TOOLS_LOG4J = """status = warn
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
"""


def broker_log4j(request_log_level: str) -> str:
    """server.log (INFO), kafka-request.log (kafka.request.logger: DEBUG names every request's principal)
    and kafka-authorizer.log (denials at INFO, allowed at DEBUG), like Kafka's own config/log4j2.yaml."""
    lines = ["status = warn", "property.logdir = ${sys:kafka.logs.dir}"]
    for name, file in (("FILE", "server.log"), ("REQ", "kafka-request.log"), ("AUTHZ", "kafka-authorizer.log")):
        lines += [f"appender.{name}.type = File", f"appender.{name}.name = {name}",
                  f"appender.{name}.fileName = ${{logdir}}/{file}",
                  f"appender.{name}.layout.type = PatternLayout",
                  f"appender.{name}.layout.pattern = [%d] %p %m (%c)%n"]
    lines += ["rootLogger.level = INFO", "rootLogger.appenderRef.file.ref = FILE",
              "logger.req.name = kafka.request.logger", f"logger.req.level = {request_log_level}",
              "logger.req.additivity = false", "logger.req.appenderRef.r.ref = REQ",
              "logger.authz.name = kafka.authorizer.logger", "logger.authz.level = DEBUG",
              "logger.authz.additivity = false", "logger.authz.appenderRef.a.ref = AUTHZ"]
    return "\n".join(lines) + "\n"


def require_kafka() -> None:
    assert (KAFKA_LIBS / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file(), \
        f"Apache Kafka {KAFKA_VERSION} jars missing in {KAFKA_LIBS}: {INSTALL_HINT}"


def java_cmd(heap: str, log4j: Path, logs_dir: Path | None, quick: bool) -> list[str]:
    """`java` with Kafka's launcher settings (kafka-run-class.sh). quick: C1 only and the serial GC, which
    halves a short-lived JVM's start-up CPU on two cores (tools, test brokers; never for benchmarks)."""
    cmd = ["java", f"-Xms{heap}", f"-Xmx{heap}", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
           f"-Dlog4j2.configurationFile={log4j}"]
    cmd += ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"] if quick else \
        ["-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
         "-XX:+ExplicitGCInvokesConcurrent"]
    if logs_dir is not None:
        cmd.append(f"-Dkafka.logs.dir={logs_dir}")
    return cmd + ["-cp", f"{KAFKA_LIBS}/*"]


def random_cluster_id() -> str:
    """A Kafka Uuid as StorageTool random-uuid prints it (base64url of 16 bytes, no padding)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class JavaTools:
    """Kafka 4.4.0's Java tools and clients, each a short-lived JVM logging warnings to stderr.
    krb5_conf / jaas: -Djava.security.krb5.conf / -Djava.security.auth.login.config, as GSSAPI users set them."""

    def __init__(self, workdir: Path, krb5_conf: Path | None = None, jaas: Path | None = None,
                 debug_loggers: tuple[str, ...] = ()):
        require_kafka()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log4j = self.workdir / "log4j2-tools.properties"
        self.log4j.write_text(TOOLS_LOG4J + "".join(
            f"logger.d{i}.name = {name}\nlogger.d{i}.level = DEBUG\n" for i, name in enumerate(debug_loggers)))
        self.options = []
        if krb5_conf is not None:
            self.options.append(f"-Djava.security.krb5.conf={krb5_conf}")
        if jaas is not None:
            self.options.append(f"-Djava.security.auth.login.config={jaas}")

    def run_java(self, args: list[str], heap: str = "256m", timeout: float = 120, input: str | None = None,
                 jvm_options: list[str] = (), classpath: str | None = None) -> subprocess.CompletedProcess:
        cmd = java_cmd(heap, self.log4j, None, True)
        if classpath:
            cmd[-1] = f"{classpath}:{cmd[-1]}"
        cmd += self.options + list(jvm_options) + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input, cwd=self.workdir)

    def tool(self, main_class: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run_java([main_class, *args], **kw)


@dataclasses.dataclass
class Listener:
    """A client listener on every broker. `host` is what the broker advertises: GSSAPI clients ask the KDC
    for kafka/<that host>, so GSSAPI listeners advertise "localhost"."""
    name: str
    protocol: str = "PLAINTEXT"           # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    mechanisms: tuple[str, ...] = ()      # GSSAPI, PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    host: str = "127.0.0.1"
    client_auth: str = "none"             # SSL listeners: none | requested | required


@dataclasses.dataclass
class Node:
    id: int
    dir: Path
    roles: str
    ports: dict[str, int]                  # listener name -> port, CONTROLLER and INTERNAL included
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "logs" / "server.log"

    @property
    def request_log_path(self) -> Path:
        return self.dir / "logs" / "kafka-request.log"

    @property
    def authorizer_log_path(self) -> Path:
        return self.dir / "logs" / "kafka-authorizer.log"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class KafkaCluster:
    def __init__(self, workdir: Path, nodes: int = 1, listeners: list[Listener] | None = None,
                 kdc=None, certs=None, scram_users: dict[str, str] | None = None,
                 plain_users: dict[str, str] | None = None, authorizer: bool = False,
                 super_users: tuple[str, ...] = (), properties: dict[str, str] | None = None,
                 request_log: bool = False, heap: str = "512m", quick: bool = True):
        require_kafka()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.listeners = listeners or [Listener("CLIENT")]
        self.kdc, self.certs = kdc, certs
        self.scram_users = dict(scram_users or {})
        self.plain_users = {ADMIN_USER: ADMIN_PASSWORD, **(plain_users or {})}
        self.authorizer = authorizer
        self.super_users = (f"User:{ADMIN_USER}", *super_users)
        self.properties = dict(properties or {})
        self.heap, self.quick = heap, quick
        self.cluster_id = random_cluster_id()
        self.log4j = self.workdir / "log4j2-broker.properties"
        self.log4j.write_text(broker_log4j("DEBUG" if request_log else "WARN"))
        self.tools = JavaTools(self.workdir / "tools")
        if any(lst.protocol in ("SSL", "SASL_SSL") for lst in self.listeners):
            assert certs is not None, "TLS listeners need certs (seclib.certs_dev)"
            self.keystore = self._pkcs12(Path(certs.server_cert), Path(certs.server_key), "broker")
        if any("GSSAPI" in lst.mechanisms for lst in self.listeners):
            assert kdc is not None, "GSSAPI listeners need a KDC (krblib.start_kdc)"
        names = [lst.name for lst in self.listeners]
        assert len(set(names)) == len(names) and not {"CONTROLLER", "INTERNAL"} & set(names), names
        self.nodes: list[Node] = []
        for i in range(1, nodes + 1):
            self.nodes.append(self._new_node(i, "broker,controller"))
        self.voters = ",".join(f"{n.id}@127.0.0.1:{n.ports['CONTROLLER']}" for n in self.nodes)

    # ------------------------------------------------------------------------------------------
    # configuration

    def _new_node(self, node_id: int, roles: str) -> Node:
        ports = {"INTERNAL": free_port(), **{lst.name: free_port() for lst in self.listeners}}
        if "controller" in roles:
            ports["CONTROLLER"] = free_port()
        return Node(node_id, self.workdir / f"node{node_id}", roles, ports)

    def _pkcs12(self, cert: Path, key: Path, name: str) -> Path:
        out = self.workdir / f"{name}.p12"
        cp = subprocess.run(["openssl", "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
                             "-name", name, "-out", str(out), "-passout", f"pass:{STORE_PASSWORD}"],
                            capture_output=True, text=True, timeout=30)
        assert cp.returncode == 0, f"openssl pkcs12 -export failed: {cp.stderr}"
        return out

    def _plain_jaas(self, with_client_side: bool) -> str:
        users = " ".join(f'user_{u}="{p}"' for u, p in self.plain_users.items())
        client = f'username="{ADMIN_USER}" password="{ADMIN_PASSWORD}" ' if with_client_side else ""
        return f"org.apache.kafka.common.security.plain.PlainLoginModule required {client}{users};"

    def node_properties(self, node: Node) -> str:
        is_controller = "controller" in node.roles
        listeners = [f"INTERNAL://127.0.0.1:{node.ports['INTERNAL']}"]
        advertised = [f"INTERNAL://127.0.0.1:{node.ports['INTERNAL']}"]
        if is_controller:
            listeners.append(f"CONTROLLER://127.0.0.1:{node.ports['CONTROLLER']}")
        protocol_map = ["CONTROLLER:SASL_PLAINTEXT", "INTERNAL:SASL_PLAINTEXT"]
        props: dict[str, str] = {
            "process.roles": node.roles,
            "node.id": str(node.id),
            "controller.quorum.voters": self.voters,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(node.dir / "data"),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": self._plain_jaas(True),
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": self._plain_jaas(True),
            # a small machine: few partitions for the internal topics, small thread pools and cleaner buffer
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.num.partitions": "3",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "log.cleaner.dedupe.buffer.size": "2097152",
        }
        replication = str(min(3, len([n for n in self.nodes if "controller" in n.roles])))
        for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                    "share.coordinator.state.topic.replication.factor"):
            props[key] = replication
        for key in ("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
            props[key] = "1" if replication == "1" else "2"
        for lst in self.listeners:
            low = lst.name.lower()
            listeners.append(f"{lst.name}://127.0.0.1:{node.ports[lst.name]}")
            advertised.append(f"{lst.name}://{lst.host}:{node.ports[lst.name]}")
            protocol_map.append(f"{lst.name}:{lst.protocol}")
            if lst.protocol.startswith("SASL"):
                props[f"listener.name.{low}.sasl.enabled.mechanisms"] = ",".join(lst.mechanisms)
            for mech in lst.mechanisms:
                key = f"listener.name.{low}.{mech.lower()}.sasl.jaas.config"
                if mech == "PLAIN":
                    props[key] = self._plain_jaas(False)
                elif mech.startswith("SCRAM"):
                    props[key] = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
                elif mech == "GSSAPI":
                    props[key] = ("com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true "
                                  f'storeKey=true doNotPrompt=true keyTab="{self.kdc.kafka_keytab}" '
                                  f'principal="kafka/{lst.host}@EXAMPLE.COM";')
                    props["sasl.kerberos.service.name"] = "kafka"
            if lst.protocol in ("SSL", "SASL_SSL"):
                props[f"listener.name.{low}.ssl.keystore.type"] = "PKCS12"
                props[f"listener.name.{low}.ssl.keystore.location"] = str(self.keystore)
                props[f"listener.name.{low}.ssl.keystore.password"] = STORE_PASSWORD
                props[f"listener.name.{low}.ssl.key.password"] = STORE_PASSWORD
                if lst.client_auth != "none":
                    props[f"listener.name.{low}.ssl.client.auth"] = lst.client_auth
                    props[f"listener.name.{low}.ssl.truststore.type"] = "PEM"
                    props[f"listener.name.{low}.ssl.truststore.location"] = str(self.certs.ca)
        props["listeners"] = ",".join(listeners)
        props["advertised.listeners"] = ",".join(advertised)
        props["listener.security.protocol.map"] = ",".join(protocol_map)
        if self.authorizer:
            props["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            props["allow.everyone.if.no.acl.found"] = "false"
            props["super.users"] = ";".join(self.super_users)
        props.update(self.properties)
        # Java's Properties treats backslashes as escapes: write values verbatim otherwise.
        return "".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in props.items())

    # ------------------------------------------------------------------------------------------
    # processes

    def _format(self, node: Node) -> None:
        node.dir.mkdir(parents=True, exist_ok=True)
        (node.dir / "logs").mkdir(exist_ok=True)
        conf = node.dir / "server.properties"
        conf.write_text(self.node_properties(node))
        args = ["kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(conf)]
        if "controller" not in node.roles:
            args.append("--no-initial-controllers")
        for user, password in self.scram_users.items():
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                args += ["--add-scram", f"{mech}=[name={user},password={password}]"]
        args += ["--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={ADMIN_PASSWORD}]"]
        cp = self.run_java(args, heap="256m", timeout=120)
        assert cp.returncode == 0 and "Formatting" in cp.stdout, \
            f"kafka-storage format of node {node.id} failed (exit {cp.returncode}):\n{cp.stdout}\n{cp.stderr}"

    def _spawn(self, node: Node) -> None:
        env = dict(os.environ)
        jvm = java_cmd(self.heap, self.log4j, node.dir / "logs", self.quick)
        if self.kdc is not None:
            jvm.insert(1, f"-Djava.security.krb5.conf={self.kdc.krb5_conf}")
        with open(node.dir / "stdout.log", "ab") as out:
            node.proc = subprocess.Popen(jvm + ["kafka.Kafka", str(node.dir / "server.properties")],
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
                                         cwd=node.dir, preexec_fn=_child_setup(None))

    def _wait_started(self, nodes: list[Node], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for node in list(pending):
                if not node.running():
                    raise AssertionError(f"Kafka node {node.id} exited with {node.proc.returncode} during start-up:\n"
                                         f"{self.node_log_tail(node)}")
                text = node.log_path.read_text(errors="replace") if node.log_path.exists() else ""
                if "Kafka Server started" in text:
                    pending.remove(node)
            if pending and time.monotonic() > deadline:
                raise AssertionError(f"Kafka node(s) {[n.id for n in pending]} not started within {timeout}s:\n"
                                     + "\n".join(self.node_log_tail(n) for n in pending))
            time.sleep(0.2)

    def start(self, timeout: float = 120.0) -> "KafkaCluster":
        for node in self.nodes:
            self._format(node)
        for node in self.nodes:  # all voters at once: a quorum needs a majority to elect a leader
            self._spawn(node)
        self._wait_started(self.nodes, timeout)
        self.wait_brokers(len(self.nodes), timeout)
        return self

    def start_node(self, node_id: int, timeout: float = 120.0) -> None:
        node = self.node(node_id)
        assert not node.running(), f"node {node_id} is already running"
        with open(node.log_path, "a") as log:
            log.write(f"===== test harness: restarting node {node_id} at {time.strftime('%H:%M:%S')} =====\n")
        node.log_path.rename(node.log_path.with_suffix(f".log.{int(time.time() * 1000)}"))
        self._spawn(node)
        self._wait_started([node], timeout)
        self.wait_brokers(len([n for n in self.nodes if n.running()]), timeout)

    def add_broker(self, timeout: float = 120.0) -> Node:
        """A broker-only node that joins the running cluster (the next node id)."""
        node = self._new_node(max(n.id for n in self.nodes) + 1, "broker")
        self.nodes.append(node)
        self._format(node)
        self._spawn(node)
        self._wait_started([node], timeout)
        self.wait_brokers(len([n for n in self.nodes if n.running()]), timeout)
        return node

    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        node = self.node(node_id)
        if node.running():
            node.proc.send_signal(sig)
            try:
                node.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(10)

    def kill_node(self, node_id: int) -> None:
        self.stop_node(node_id, signal.SIGKILL)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every node at once (a controller alone would wait for its quorum), SIGKILL after
        `timeout` seconds: test data is thrown away, the logs are kept."""
        running = [n for n in self.nodes if n.running()]
        for node in running:
            node.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for node in running:
            try:
                node.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait(10)

    # ------------------------------------------------------------------------------------------
    # addresses and inspection

    def node(self, node_id: int) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def bootstrap(self, listener: str | None = None, nodes: list[int] | None = None) -> str:
        listener = listener or self.listeners[0].name
        host = "127.0.0.1" if listener == "INTERNAL" else \
            next(lst.host for lst in self.listeners if lst.name == listener)
        return ",".join(f"{host}:{n.ports[listener]}" for n in self.nodes
                        if nodes is None or n.id in nodes)

    def admin_config(self) -> dict:
        """confluent-kafka settings for the INTERNAL listener as the super user."""
        return {"bootstrap.servers": self.bootstrap("INTERNAL"), "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanisms": "PLAIN", "sasl.username": ADMIN_USER, "sasl.password": ADMIN_PASSWORD}

    def admin_properties(self) -> Path:
        """A Java client properties file for the INTERNAL listener as the super user."""
        path = self.workdir / "admin.properties"
        path.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
                        f'username="{ADMIN_USER}" password="{ADMIN_PASSWORD}";\n')
        return path

    def wait_brokers(self, count: int, timeout: float = 60.0) -> None:
        """Until Metadata lists `count` brokers (registered and unfenced)."""
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({**self.admin_config(), "log_level": 0})
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = sorted(admin.list_topics(timeout=5).brokers)
                if len(seen) >= count:
                    return
            except Exception as e:  # noqa: BLE001 - not up yet
                seen = repr(e)
            time.sleep(0.3)
        raise AssertionError(f"the Kafka cluster did not list {count} brokers within {timeout}s (last: {seen})")

    def node_log_tail(self, node: Node, lines: int = 40) -> str:
        parts = []
        for path in (node.log_path, node.dir / "stdout.log"):
            if path.exists():
                parts.append(f"--- {path}:\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(parts) or f"(node {node.id} wrote no log)"

    def request_log(self) -> list[dict]:
        """Every request kafka.request.logger wrote on any node (needs request_log=True): one JSON object per
        "Completed request:" line, with requestHeader, principal, listener, clientInformation..."""
        records = []
        for node in self.nodes:
            if not node.request_log_path.exists():
                continue
            for line in node.request_log_path.read_text(errors="replace").splitlines():
                at = line.find("Completed request:")
                end = line.rfind(" (kafka.request.logger)")
                if at >= 0 and end > at:
                    try:
                        records.append(json.loads(line[at + len("Completed request:"):end]))
                    except ValueError:
                        pass  # a line cut by a kill -9
        return records

    def principals_in_request_log(self, listener: str) -> set[str]:
        """The principals Kafka's request log shows on `listener`."""
        return {r.get("principal") for r in self.request_log() if r.get("listener") == listener}

    # ------------------------------------------------------------------------------------------
    # Java tools (as the cluster's admin they need --command-config admin_properties())

    def run_java(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        return self.tools.run_java(args, **kw)

    def tool(self, main_class: str, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.tools.tool(main_class, *args, **kw)


# Short names for the tools' main classes (bin/kafka-*.sh in a Kafka 4.4 release).
TOPICS = "org.apache.kafka.tools.TopicCommand"
CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
PRODUCER_PERF = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER_PERF = "org.apache.kafka.tools.ConsumerPerformance"
ACLS = "org.apache.kafka.tools.AclCommand"
CONFIGS = "org.apache.kafka.tools.ConfigCommand"
REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
LEADER_ELECTION = "org.apache.kafka.tools.LeaderElectionCommand"


def main() -> int:
    ap = argparse.ArgumentParser(description="Run an Apache Kafka 4.4.0 KRaft cluster on 127.0.0.1 until Ctrl-C "
                                 "(the peer the tests and benchmarks use).")
    ap.add_argument("--dir", required=True, help="working directory (fresh; data and logs go here)")
    ap.add_argument("--nodes", type=int, default=1, help="combined broker+controller nodes (default 1)")
    ap.add_argument("--heap", default="1g", help="broker heap (default 1g, as kafka-server-start.sh)")
    args = ap.parse_args()
    cluster = KafkaCluster(Path(args.dir), nodes=args.nodes, heap=args.heap, quick=False)
    cluster.start()
    print(f"PLAINTEXT bootstrap: {cluster.bootstrap()}", flush=True)
    print(f"admin (SASL_PLAINTEXT/PLAIN {ADMIN_USER}): {cluster.bootstrap('INTERNAL')}", flush=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
