"""Upstream mode in front of a real Apache Kafka 4.4.0 cluster: three KRaft nodes (combined broker and
controller) on 127.0.0.1, shared by the module, with a PLAINTEXT listener and a SASL_PLAINTEXT listener that
offers SCRAM-SHA-512 and GSSAPI (a private MIT KDC). kgate instances are made per test.

* port-per-broker and SNI: partition leaders and group coordinators on all three brokers; a request routed to
  the wrong broker would be answered NOT_LEADER / NOT_COORDINATOR forever; clients see only kgate addresses.
* a leader moved (controlled shutdown, restart, preferred election) while producing and consuming; a broker
  killed with SIGKILL and restarted mid-produce: every record acknowledged with acks=all is read back.
* a broker added to the cluster gets its own kgate port and serves a partition it leads.
* kgate's own upstream identity (SCRAM-SHA-512, GSSAPI) is what Kafka's request log shows.
"""
from __future__ import annotations

import threading
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from apache_kafka import ADMIN_USER, LEADER_ELECTION, Listener
from krblib import CLIENT_PRINCIPAL, _environ, kdc  # noqa: F401
from peerlib import kcat, kstr, raw_call
from upstreamlib import brokers_seen, sni_kgate, upstream_kgate, wait_broker_served

N = 2000
SCRAM_USER, SCRAM_PASSWORD = "kgate", "kgate-upstream-secret"


@pytest.fixture(scope="module")
def cluster(kafka_factory, kdc):
    return kafka_factory(nodes=3, kdc=kdc, request_log=True, scram_users={SCRAM_USER: SCRAM_PASSWORD},
                         listeners=[Listener("CLIENT", "PLAINTEXT"),
                                    Listener("SASL", "SASL_PLAINTEXT", ("SCRAM-SHA-512", "GSSAPI"), host="localhost")],
                         properties={"min.insync.replicas": "2", "default.replication.factor": "3"})


def create_topic(cluster, name: str, partitions: int = 1, replicas: int = 3, assignment=None) -> dict[int, int]:
    """Creates the topic on Kafka directly and waits for leaders; returns partition -> leader."""
    admin = AdminClient(cluster.admin_config())
    topic = NewTopic(name, len(assignment), replica_assignment=assignment) if assignment \
        else NewTopic(name, partitions, replicas)
    admin.create_topics([topic], request_timeout=30)[name].result(30)
    return leaders(cluster, name)


def leaders(cluster, name: str, timeout: float = 30.0) -> dict[int, int]:
    """partition -> leader, once every partition has one."""
    admin = AdminClient(cluster.admin_config())
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(name, timeout=10).topics[name]
        found = {p.id: p.leader for p in md.partitions.values()}
        if md.error is None and found and all(v >= 0 for v in found.values()):
            return found
        assert time.monotonic() < deadline, f"topic {name} has no leaders after {timeout} s: {found}"
        time.sleep(0.2)


class BackgroundProducer:
    """Produces 0, 1, 2... with acks=all until stopped; remembers which numbers were acknowledged."""

    def __init__(self, bootstrap: str, topic: str):
        self.acked: list[int] = []
        self.errors: list[str] = []
        self.sent = 0
        self._stop = threading.Event()
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                                   "enable.idempotence": True, "message.timeout.ms": 120000})
        self._topic = topic
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _report(self, err, msg):
        if err is None:
            self.acked.append(int(msg.value()))
        else:
            self.errors.append(str(err))

    def _run(self):
        while not self._stop.is_set():
            self._producer.produce(self._topic, str(self.sent).encode(), on_delivery=self._report)
            self.sent += 1
            self._producer.poll(0.002)

    def wait_more(self, count: int, timeout: float = 60.0) -> None:
        """Until `count` more records than now are acknowledged."""
        want = len(self.acked) + count
        deadline = time.monotonic() + timeout
        while len(self.acked) < want:
            assert time.monotonic() < deadline, f"only {len(self.acked)} of {want} records acknowledged"
            time.sleep(0.05)

    def stop(self) -> list[int]:
        self._stop.set()
        self._thread.join(10)
        assert self._producer.flush(120) == 0, "records unacknowledged 120 s after the producer stopped"
        return self.acked


class BackgroundConsumer:
    """A group member reading `topic` from the beginning while the test goes on; `until(numbers)` waits for
    them and stops it."""

    def __init__(self, bootstrap: str, topic: str, group: str):
        self.got: set[int] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                                   "enable.auto.commit": True})
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                for m in self._consumer.consume(500, 0.2):
                    if m.error():
                        self.errors.append(str(m.error()))
                    else:
                        self.got.add(int(m.value()))
        finally:
            self._consumer.close()

    def until(self, want: set[int], timeout: float = 90.0) -> set[int]:
        deadline = time.monotonic() + timeout
        while not want <= self.got and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        self._thread.join(30)
        return self.got


def read_all(bootstrap: str, topic: str, group: str, want: set[int], timeout: float = 90.0) -> set[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    got: set[int] = set()
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while not want <= got and time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                assert not m.error(), f"consume error: {m.error()}"
                got.add(int(m.value()))
    finally:
        c.close()
    return got


def test_port_per_broker_leaders_and_coordinators_on_every_broker(kgate_factory, cluster):
    initial = create_topic(cluster, "spread", 6)
    assert set(initial.values()) == {1, 2, 3}, f"Kafka should spread leaders over its three brokers: {initial}"
    k = upstream_kgate(kgate_factory, cluster.bootstrap("CLIENT").split(","))
    assert brokers_seen(k.bootstrap) == {i: f"127.0.0.1:{k.base_port + i}" for i in (1, 2, 3)}
    listing = kcat("-b", k.bootstrap, "-L").stdout.decode()
    for upstream in cluster.bootstrap("CLIENT").split(","):
        assert upstream not in listing, f"upstream address {upstream} leaked:\n{listing}"

    p = Producer({"bootstrap.servers": k.bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(N):
        p.produce("spread", str(i).encode(), partition=i % 6)
    assert p.flush(60) == 0
    coordinators = set()
    for group in ("ga", "gb", "gc", "gd", "ge", "gf", "gg", "gh"):
        deadline = time.monotonic() + 30
        while True:  # Kafka creates __consumer_offsets on the first FindCoordinator: COORDINATOR_NOT_AVAILABLE (15)
            r = raw_call(k.bootstrap, 10, 0, kstr(group))  # FindCoordinator v0: error, node, host, port
            error, node, host, port = r.i16(), r.i32(), r.string(), r.i32()
            if error != 15 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert error == 0 and f"{host}:{port}" == f"127.0.0.1:{k.base_port + node}", (group, error, node, host, port)
        coordinators.add(node)
    assert len(coordinators) > 1, f"coordinators should be spread over the brokers: {coordinators}"
    for group in ("ga", "gb", "gc"):
        assert read_all(k.bootstrap, "spread", group, set(range(N))) == set(range(N)), group
    out = kcat("-b", k.bootstrap, "-G", "g-kcat", "spread", "-o", "beginning", "-e", "-q", "-c", str(N),
               timeout=90).stdout.decode()
    assert sorted(int(x) for x in out.split()) == list(range(N))
    k.assert_alive()


def test_sni_routing_to_real_kafka(kgate_factory, kgate_bin, cluster, tmp_path, monkeypatch):
    """One TLS port, broker N named broker-N.kgate.test (kafka-python sends the name as SNI; *.kgate.test is
    resolved to 127.0.0.1 in this process only). Leaders are on all three brokers."""
    from kafka import KafkaConsumer, KafkaProducer

    create_topic(cluster, "sni", 6)
    k, certs = sni_kgate(kgate_factory, kgate_bin, tmp_path, cluster.bootstrap("CLIENT").split(","), monkeypatch)
    tls = {"security_protocol": "SSL", "ssl_cafile": certs.ca, "ssl_check_hostname": True}
    bootstrap = f"bootstrap.kgate.test:{k.port}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **tls)
    for f in [producer.send("sni", str(i).encode(), partition=i % 6) for i in range(600)]:
        f.get(timeout=60)
    brokers = {b.node_id: (b.host, b.port) for b in producer._metadata.brokers()}
    producer.close()
    assert brokers == {i: (f"broker-{i}.kgate.test", k.port) for i in (1, 2, 3)}, brokers
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="sni-group", auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=30000, **tls)
    consumer.subscribe(["sni"])
    got = []
    for m in consumer:
        got.append(int(m.value))
        if len(got) == 600:
            break
    consumer.commit()
    consumer.close()
    assert sorted(got) == list(range(600))
    k.assert_alive()


def test_leaders_moved_while_producing_and_consuming(kgate_factory, cluster):
    """Broker 2 shuts down (controlled: its leaderships move), comes back, and a preferred-leader election
    moves them back, while a producer with acks=all runs through kgate. Everything acknowledged is read."""
    initial = create_topic(cluster, "moving", 6)
    moved = [p for p, leader in initial.items() if leader == 2]
    assert moved, f"broker 2 leads nothing: {initial}"
    k = upstream_kgate(kgate_factory, cluster.bootstrap("CLIENT").split(","))
    consumer = BackgroundConsumer(k.bootstrap, "moving", "moving-live")
    producer = BackgroundProducer(k.bootstrap, "moving")
    try:
        producer.wait_more(500)
        cluster.stop_node(2)
        after_stop = leaders(cluster, "moving")
        assert all(after_stop[p] != 2 for p in moved), f"leaders did not move off broker 2: {after_stop}"
        producer.wait_more(500)
        cluster.start_node(2)
        cp = cluster.tool(LEADER_ELECTION, "--bootstrap-server", cluster.bootstrap("INTERNAL"),
                          "--admin.config", str(cluster.admin_properties()), "--election-type", "preferred",
                          "--all-topic-partitions", timeout=120)
        assert cp.returncode == 0, f"leader election failed:\n{cp.stdout}\n{cp.stderr}"
        deadline = time.monotonic() + 60
        while any(leaders(cluster, "moving")[p] != 2 for p in moved):
            assert time.monotonic() < deadline, "preferred leaders not back on broker 2 after 60 s"
            time.sleep(0.5)
        producer.wait_more(500)
    finally:
        acked = producer.stop()
    assert not producer.errors, f"{len(producer.errors)} delivery errors: {producer.errors[:5]}"
    live = consumer.until(set(acked))
    assert set(acked) <= live, f"the consumer running through the moves missed {len(set(acked) - live)} records"
    assert not [e for e in consumer.errors if "PARTITION_EOF" not in e], consumer.errors[:5]
    got = read_all(k.bootstrap, "moving", "moving-readers", set(acked))
    assert set(acked) <= got, f"{len(set(acked) - got)} acknowledged records lost"
    k.assert_alive()


def test_broker_killed_and_restarted_mid_produce(kgate_factory, cluster):
    create_topic(cluster, "killed", 3)
    k = upstream_kgate(kgate_factory, cluster.bootstrap("CLIENT").split(","))
    producer = BackgroundProducer(k.bootstrap, "killed")
    try:
        producer.wait_more(1000)
        cluster.kill_node(3)
        producer.wait_more(1000)  # min.insync.replicas=2 of 3: acks=all goes on with two brokers
        cluster.start_node(3)
        producer.wait_more(1000)
    finally:
        acked = producer.stop()
    assert not producer.errors, f"{len(producer.errors)} delivery errors: {producer.errors[:5]}"
    got = read_all(k.bootstrap, "killed", "killed-readers", set(acked))
    assert set(acked) <= got, f"{len(set(acked) - got)} acknowledged records lost"
    k.assert_alive()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "GSSAPI"])
def test_upstream_identity_is_what_kafka_logs(kgate_factory, cluster, kdc, tmp_path, mechanism):
    if mechanism == "GSSAPI":
        sasl = {"mechanism": "GSSAPI", "principal": CLIENT_PRINCIPAL, "keytab": str(kdc.client_keytab)}
        want = "User:client"
    else:
        secret = tmp_path / "upstream.pass"
        secret.write_text(SCRAM_PASSWORD + "\n")
        secret.chmod(0o600)
        sasl = {"mechanism": mechanism, "username": SCRAM_USER, "password_file": str(secret)}
        want = f"User:{SCRAM_USER}"
    k = upstream_kgate(kgate_factory, cluster.bootstrap("SASL").split(","), start=False, backend={"sasl": sasl})
    (k.workdir / "rcache").mkdir(exist_ok=True)
    with _environ(KRB5_CONFIG=str(kdc.krb5_conf), KRB5RCACHEDIR=str(k.workdir / "rcache")):
        k.start()
    topic = f"identity-{mechanism.lower()}"
    p = Producer({"bootstrap.servers": k.bootstrap, "acks": "all"})
    for i in range(50):
        p.produce(topic, str(i).encode())
    assert p.flush(60) == 0
    assert read_all(k.bootstrap, topic, f"{topic}-g", set(range(50))) == set(range(50))
    deadline = time.monotonic() + 10
    while want not in cluster.principals_in_request_log("SASL"):
        assert time.monotonic() < deadline, \
            f"Kafka's request log shows {cluster.principals_in_request_log('SASL')} on SASL, not {want}"
        time.sleep(0.2)
    produces = [r for r in cluster.request_log() if r.get("listener") == "SASL"
                and r["requestHeader"]["requestApiKeyName"] == "PRODUCE"
                and topic in str(r.get("request"))]
    assert produces and {r["principal"] for r in produces} == {want}, \
        f"Produce to {topic} logged by Kafka as {[r['principal'] for r in produces]}"
    assert f"User:{ADMIN_USER}" not in {r["principal"] for r in produces}
    k.assert_alive()


def test_a_broker_added_to_the_cluster_gets_a_port(kgate_factory, cluster):
    k = upstream_kgate(kgate_factory, cluster.bootstrap("CLIENT").split(","), brokers=4, backend={"metadata_refresh_ms": 500})
    node = cluster.add_broker()
    assert node.id == 4
    seen = wait_broker_served(k, 4)
    assert seen[4] == f"127.0.0.1:{k.base_port + 4}"
    assert create_topic(cluster, "on-four", 1, assignment=[[4]]) == {0: 4}
    p = Producer({"bootstrap.servers": k.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce("on-four", str(i).encode())
    assert p.flush(60) == 0
    assert read_all(k.bootstrap, "on-four", "four-readers", set(range(100))) == set(range(100))
    k.assert_alive()
