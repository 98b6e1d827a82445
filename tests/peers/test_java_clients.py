"""Apache Kafka 4.4.0's Java clients and tools through kgate, on the embedded broker and in front of a real
Apache Kafka 4.4.0, configured the way operators configure them:

* SASL_PLAINTEXT + GSSAPI: a JAAS file with a KafkaClient section (Krb5LoginModule, keytab, useTicketCache=false,
  storeKey=true), sasl.kerberos.service.name=kafka, -Djava.security.krb5.conf at the test KDC's file;
* SASL_SSL + SCRAM-SHA-256 with a PEM truststore, ssl.endpoint.identification.algorithm=https (the default)
  and empty (no host name check, dialled by IP address);
* SASL_PLAINTEXT + PLAIN with a JAAS PlainLoginModule line in sasl.jaas.config.

kafka-topics, the console producer and consumer, kafka-consumer-groups --describe, kafka-producer-perf-test,
kafka-consumer-perf-test and an AdminClient (java/AdminProbe.java) must all work and see the same as against
Apache Kafka directly; kgate's log must name the principal each client authenticated as.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from apache_kafka import (CONSOLE_CONSUMER, CONSOLE_PRODUCER, CONSUMER_GROUPS, CONSUMER_PERF, KAFKA_LIBS,
                          PRODUCER_PERF, TOPICS, JavaTools)
from krblib import CLIENT_PRINCIPAL, _environ, kdc  # noqa: F401
from peerlib import free_port
from seclib import auth_events, provision, to_toml
from upstreamlib import free_port_block

JAVA_DIR = Path(__file__).resolve().parent / "java"
LINES = 60
PARTITIONS = 3


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"), users=("alice",))


@pytest.fixture(scope="module")
def kafka(kafka_factory):
    return kafka_factory(nodes=1)


@pytest.fixture(scope="module")
def probe_classes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("probe")
    cp = subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", f"{KAFKA_LIBS}/*", str(JAVA_DIR / "AdminProbe.java")],
                        capture_output=True, text=True, timeout=180)
    assert cp.returncode == 0, f"javac AdminProbe.java failed:\n{cp.stdout}\n{cp.stderr}"
    return out


def java_kgate(factory, kdc, pki, upstream: str | None = None):
    """kgate with GSS (SASL_PLAINTEXT/GSSAPI), SCRAM_SSL (SASL_SSL/SCRAM-SHA-256,512) and PLAIN
    (SASL_PLAINTEXT/PLAIN) listeners advertised as localhost; embedded, or in front of `upstream` with a
    port-per-broker block for each listener."""
    k = factory(start=False)
    rows = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
             "security_protocol": "PLAINTEXT"}]
    k.ports = {"PLAINTEXT": k.port}
    specs = [("GSS", "SASL_PLAINTEXT", ["GSSAPI"]), ("SCRAM_SSL", "SASL_SSL", ["SCRAM-SHA-256", "SCRAM-SHA-512"]),
             ("PLAIN", "SASL_PLAINTEXT", ["PLAIN"])]
    for name, protocol, mechanisms in specs:
        port = free_port()
        row = {"name": name, "bind": f"127.0.0.1:{port}", "advertised": f"localhost:{port}",
               "security_protocol": protocol, "sasl_enabled_mechanisms": mechanisms}
        if protocol == "SASL_SSL":
            row["tls"] = {"cert": pki.certs.server_cert, "key": pki.certs.server_key}
        rows.append(row)
        k.ports[name] = port
    if upstream:
        for row in rows:
            row["broker_addresses"] = {"scheme": "port_per_broker", "base_port": free_port_block(3)}
        k.config["backend"] = {"kind": "upstream", "bootstrap": [upstream]}
    k.config["listeners"] = rows
    k.config["security"] = {"users_file": str(pki.users_file)}
    k.config["kerberos"] = {"keytab": str(kdc.kafka_keytab), "krb5_conf": str(kdc.krb5_conf)}
    k.config_path.write_text(to_toml(k.config))
    (k.workdir / "rcache").mkdir(exist_ok=True)
    with _environ(KRB5RCACHEDIR=str(k.workdir / "rcache")):
        k.start()
    return k


@pytest.fixture(scope="module")
def kgates(module_kgate_factory, kdc, pki, kafka) -> dict:
    return {"embedded": java_kgate(module_kgate_factory, kdc, pki),
            "upstream": java_kgate(module_kgate_factory, kdc, pki, upstream=kafka.bootstrap())}


class Setup:
    """One way of configuring the Java client: a properties file, JVM options, where it connects."""

    def __init__(self, name: str, listener: str, host: str, properties: dict, tools: JavaTools, principal: str,
                 mechanism: str):
        self.name, self.listener, self.host = name, listener, host
        self.properties, self.tools = properties, tools
        self.principal, self.mechanism = principal, mechanism

    def write(self, directory: Path) -> Path:
        path = directory / f"{self.name}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self.properties.items()))
        return path


@pytest.fixture(scope="module")
def setups(kdc, pki, tmp_path_factory) -> dict[str, Setup]:
    work = tmp_path_factory.mktemp("java")
    jaas = work / "kafka_client_jaas.conf"
    jaas.write_text("KafkaClient {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n"
                    f'  keyTab="{kdc.client_keytab}"\n  principal="{CLIENT_PRINCIPAL}"\n  useTicketCache=false\n'
                    "  storeKey=true;\n};\n")
    gss_tools = JavaTools(work / "gss", krb5_conf=kdc.krb5_conf, jaas=jaas)
    tools = JavaTools(work / "plain")
    password = pki.passwords["alice"]
    scram = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-256",
             "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required "
                                 f'username="alice" password="{password}";',
             "ssl.truststore.type": "PEM", "ssl.truststore.location": pki.certs.ca}
    return {s.name: s for s in [
        Setup("gssapi", "GSS", "localhost",
              {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI", "sasl.kerberos.service.name": "kafka"},
              gss_tools, "User:client", "GSSAPI"),
        Setup("scram-https", "SCRAM_SSL", "localhost",
              {**scram, "ssl.endpoint.identification.algorithm": "https"}, tools, "User:alice", "SCRAM-SHA-256"),
        Setup("scram-no-host-check", "SCRAM_SSL", "127.0.0.1",
              {**scram, "ssl.endpoint.identification.algorithm": ""}, tools, "User:alice", "SCRAM-SHA-256"),
        Setup("plain", "PLAIN", "localhost",
              {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
               "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule required "
                                   f'username="alice" password="{password}";'}, tools, "User:alice", "PLAIN"),
    ]}


def ok(cp: subprocess.CompletedProcess, what: str) -> str:
    assert cp.returncode == 0, f"{what} exited {cp.returncode}:\n{cp.stdout[-3000:]}\n{cp.stderr[-5000:]}"
    return cp.stdout


def console_roundtrip(tools: JavaTools, bootstrap: str, config: Path, topic: str, group: str,
                      lines: list[str]) -> list[tuple[int, str, str]]:
    """kafka-topics --create/--describe/--list, the console producer (key:value lines) and a console consumer
    in `group`; returns what the consumer printed as (partition, key, value)."""
    ok(tools.tool(TOPICS, "--bootstrap-server", bootstrap, "--command-config", str(config), "--create", "--topic", topic,
                  "--partitions", str(PARTITIONS), "--replication-factor", "1"), "kafka-topics --create")
    described = ok(tools.tool(TOPICS, "--bootstrap-server", bootstrap, "--command-config", str(config), "--describe",
                              "--topic", topic), "kafka-topics --describe")
    assert re.search(rf"Topic: {re.escape(topic)}\s.*PartitionCount: {PARTITIONS}\b", described), described
    listed = ok(tools.tool(TOPICS, "--bootstrap-server", bootstrap, "--command-config", str(config), "--list"),
                "kafka-topics --list")
    assert topic in listed.split(), listed
    ok(tools.tool(CONSOLE_PRODUCER, "--bootstrap-server", bootstrap, "--topic", topic, "--command-config", str(config),
                  "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                  "--command-property", "acks=all", heap="512m", input="\n".join(lines) + "\n"),
       "console producer")
    out = ok(tools.tool(CONSOLE_CONSUMER, "--bootstrap-server", bootstrap, "--topic", topic, "--group", group,
                        "--from-beginning", "--max-messages", str(len(lines)), "--timeout-ms", "60000",
                        "--command-config", str(config), "--formatter-property", "print.partition=true",
                        "--formatter-property", "print.key=true", "--formatter-property", "key.separator=|",
                        heap="512m", timeout=150), "console consumer")
    got = []
    for line in out.splitlines():
        m = re.match(r"Partition:(\d+)\|(.*?)\|(.*)$", line)
        assert m, f"unexpected console consumer line {line!r}"
        got.append((int(m.group(1)), m.group(2), m.group(3)))
    return got


def group_lag(tools: JavaTools, bootstrap: str, config: Path, group: str, topic: str) -> dict[int, tuple[int, int, int]]:
    """kafka-consumer-groups --describe: partition -> (current offset, log end offset, lag)."""
    out = ok(tools.tool(CONSUMER_GROUPS, "--bootstrap-server", bootstrap, "--command-config", str(config),
                        "--describe", "--group", group), "kafka-consumer-groups --describe")
    rows = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0] == group and cols[1] == topic:
            rows[int(cols[2])] = tuple(int(c) if c.isdigit() else -1 for c in cols[3:6])
    assert rows, f"no rows for {group}/{topic} in:\n{out}"
    return rows


def check_roundtrip(got: list[tuple[int, str, str]], lines: list[str]) -> None:
    sent = [tuple(line.split(":", 1)) for line in lines]
    assert sorted((k, v) for _, k, v in got) == sorted(sent), f"consumed {got} for {sent}"
    by_key = {}
    for partition, key, value in got:
        by_key.setdefault(key, []).append((partition, value))
    for key, seen in by_key.items():
        assert len({p for p, _ in seen}) == 1, f"key {key} in several partitions: {seen}"
        assert [v for _, v in seen] == [v for k, v in sent if k == key], f"key {key} out of order: {seen}"


@pytest.mark.parametrize("backend", ["embedded", "upstream"])
@pytest.mark.parametrize("setup_name", ["gssapi", "scram-https", "scram-no-host-check", "plain"])
def test_console_tools_through_kgate(kgates, setups, tmp_path, backend, setup_name):
    k, setup = kgates[backend], setups[setup_name]
    config = setup.write(tmp_path)
    bootstrap = f"{setup.host}:{k.ports[setup.listener]}"
    topic, group = f"java-{setup_name}-{backend}", f"java-{setup_name}-{backend}-g"
    lines = [f"k{i % 7}:{setup_name} value {i}" for i in range(LINES)]
    before = len(auth_events(k, setup.listener))
    check_roundtrip(console_roundtrip(setup.tools, bootstrap, config, topic, group, lines), lines)
    lag = group_lag(setup.tools, bootstrap, config, group, topic)
    assert sorted(lag) == list(range(PARTITIONS)), lag
    assert sum(cur for cur, _, _ in lag.values()) == LINES and all(cur == end and lagv == 0
                                                                   for cur, end, lagv in lag.values()), lag
    events = auth_events(k, setup.listener)[before:]
    assert events, f"kgate logged no authentication on {setup.listener}"
    assert {(e["principal"], e["mechanism"]) for e in events} == {(setup.principal, setup.mechanism)}, events
    k.assert_alive()


@pytest.mark.parametrize("backend", ["embedded", "upstream"])
def test_perf_tools_through_kgate_with_gssapi(kgates, setups, tmp_path, backend):
    k, setup = kgates[backend], setups["gssapi"]
    config = setup.write(tmp_path)
    bootstrap = f"localhost:{k.ports['GSS']}"
    topic, records = f"perf-{backend}", 20000
    out = ok(setup.tools.tool(PRODUCER_PERF, "--topic", topic, "--num-records", str(records), "--record-size", "100",
                              "--throughput", "-1", "--bootstrap-server", bootstrap, "--command-config", str(config),
                              "--command-property", "acks=all", heap="512m", timeout=180), "producer perf test")
    assert re.search(rf"^{records} records sent, .* records/sec", out, re.M), out
    out = ok(setup.tools.tool(CONSUMER_PERF, "--bootstrap-server", bootstrap, "--topic", topic, "--num-records",
                              str(records), "--group", f"{topic}-g", "--timeout", "60000", "--command-config",
                              str(config), heap="512m", timeout=180), "consumer perf test")
    rows = [line.split(",") for line in out.splitlines() if re.match(r"^\d{4}-\d\d-\d\d", line)]
    assert rows and int(rows[-1][4].strip()) == records, f"consumer perf test did not read {records}:\n{out}"
    k.assert_alive()


def probe(tools: JavaTools, classes: Path, config: Path, bootstrap: str, topic: str, group: str) -> dict:
    out = ok(tools.run_java(["AdminProbe", str(config), bootstrap, topic, group], classpath=str(classes)),
             "AdminProbe")
    return json.loads(out.strip().splitlines()[-1])


def test_admin_client_sees_what_it_sees_on_apache_kafka(kgates, setups, kafka, probe_classes, tmp_path):
    """The same console-tool actions on Apache Kafka (PLAINTEXT) and through both kgates (GSSAPI); the
    AdminClient's view must agree (nodes aside: each kgate shows its own addresses)."""
    setup = setups["gssapi"]
    lines = [f"k{i % 5}:admin value {i}" for i in range(LINES)]
    plain = JavaTools(tmp_path / "plain")
    plain_config = tmp_path / "plaintext.properties"
    plain_config.write_text("security.protocol=PLAINTEXT\n")
    views = {}
    targets = {"kafka": (plain, plain_config, kafka.bootstrap()),
               **{name: (setup.tools, setup.write(tmp_path), f"localhost:{k.ports['GSS']}") for name, k in kgates.items()}}
    for name, (tools, config, bootstrap) in targets.items():
        topic, group = f"admin-probe-{name}", f"admin-probe-{name}-g"  # kafka and upstream share a cluster
        console_roundtrip(tools, bootstrap, config, topic, group, lines)
        views[name] = probe(tools, probe_classes, config, bootstrap, topic, group)
    for name, k in kgates.items():
        nodes = views[name].pop("nodes")
        port = k.ports["GSS"]
        want = [{"id": 1, "address": f"localhost:{k.config['listeners'][1]['broker_addresses']['base_port'] + 1}"}] \
            if name == "upstream" else [{"id": 0, "address": f"localhost:{port}"}]
        assert nodes == want, f"{name}: AdminClient nodes {nodes}, want {want}"
        views[name].pop("cluster_id")
    assert views["upstream"]["topic"]["leaders"] == [1] * PARTITIONS
    views["kafka"].pop("nodes"), views["kafka"].pop("cluster_id")
    for view in views.values():
        view["topic"].pop("leaders")  # node ids differ: Kafka's node 1, the embedded broker's node 0
    assert views["kafka"]["group"] == {"state": "Empty", "members": 0, "simple": False}, views["kafka"]
    assert sum(views["kafka"]["end_offsets"]) == LINES, views["kafka"]
    assert views["kafka"]["missing_topic"] == {"error": "UnknownTopicOrPartitionException"}, views["kafka"]
    for name in kgates:
        assert views[name] == views["kafka"], f"AdminClient through {name}: {views[name]}\nApache Kafka: {views['kafka']}"
