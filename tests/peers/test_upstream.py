"""Upstream mode with real third-party brokers behind kgate.

* librdkafka's mock cluster (3 brokers, partition leaders and coordinators spread over them): port-per-broker
  and SNI routing must take every request to the right broker (a wrong one answers NOT_LEADER /
  NOT_COORDINATOR, which the clients would retry until the test times out), and every address a client sees
  is kgate's.
* Tansu 0.6.0 with SCRAM: clients on SASL_SSL/SCRAM to kgate, kgate on SCRAM-SHA-512 to Tansu as its own
  identity; a wrong upstream password stops kgate at start-up with a message naming the setting.
* Brokers that go away: a mock broker set down and up, Tansu killed and restarted: clients recover and every
  record acknowledged with acks=all is read back.
* Apache Kafka 0.9.0.1 (no ApiVersions): kgate refuses it at start-up with a clear message.
"""
from __future__ import annotations

import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from peerlib import (assert_closed_by_server, consume_all, kcat, kstr, raw_call, raw_connect, recv_frame, request_frame,
                     to_toml)
from seclib import (ClientSec, auth_events, cert_events, provision, sasl_plaintext, secure_kgate,
                    ssl_listener)
from upstreamlib import (Kafka09, MockCluster, Tansu, brokers_seen, free_port_block, run_kgate_expecting_failure,
                         sni_kgate, upstream_kgate, wait_broker_served)

N = 600


@pytest.fixture
def mock3():
    m = MockCluster(3, topics=("spread:6",))
    yield m
    m.stop()


def create_topic_via(bootstrap: str, name: str, partitions: int, extra: dict | None = None) -> None:
    """CreateTopics through kgate (forwarded upstream); Tansu does not auto-create topics."""
    from confluent_kafka.admin import NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap, **(extra or {})})
    admin.create_topics([NewTopic(name, partitions, 1)], request_timeout=30)[name].result(30)
    deadline = time.monotonic() + 20
    while name not in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"topic {name} not in metadata after creation"
        time.sleep(0.1)


def produce_numbers(bootstrap: str, topic: str, n: int, extra: dict | None = None) -> list[int]:
    """Produces 0..n-1 with acks=all; returns the numbers acknowledged; fails on any delivery error."""
    errors, acked = [], []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            acked.append(int(msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, **(extra or {})})
    for i in range(n):
        p.produce(topic, str(i).encode(), key=str(i).encode(), on_delivery=report)
        p.poll(0)
    assert p.flush(60) == 0, "records still unacknowledged after 60 s"
    assert not errors, f"{len(errors)} delivery errors: {errors[:5]}"
    return acked


def consume_group(bootstrap: str, topic: str, group: str, want: int, extra: dict | None = None,
                  timeout: float = 60.0) -> list[int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, **(extra or {})})
    got: list[int] = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < want:
            assert time.monotonic() < deadline, f"group {group} read {len(got)} of {want} records"
            for m in c.consume(1000, 0.5):
                assert not m.error(), f"consume error: {m.error()}"
                got.append(int(m.value()))
        c.commit(asynchronous=False)
    finally:
        c.close()
    return got


def test_three_brokers_port_per_broker(kgate_factory, mock3):
    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    seen = brokers_seen(k.bootstrap)
    assert seen == {i: f"127.0.0.1:{k.base_port + i}" for i in (1, 2, 3)}, seen
    # kcat (librdkafka 2.0.2) lists the same, and no upstream address anywhere.
    listing = kcat("-b", k.bootstrap, "-L").stdout.decode()
    for upstream in mock3.addresses:
        assert upstream not in listing, f"upstream address {upstream} leaked:\n{listing}"
    md = AdminClient({"bootstrap.servers": k.bootstrap}).list_topics("spread", timeout=20)
    leaders = {p.leader for p in md.topics["spread"].partitions.values()}
    assert leaders == {1, 2, 3}, f"the mock should spread leaders over all brokers: {leaders}"

    # Produce to partitions led by three brokers: each request must reach its leader.
    acked = produce_numbers(k.bootstrap, "spread", N)
    assert sorted(acked) == list(range(N))
    # Groups: the coordinator of each group is one broker; JoinGroup/SyncGroup/OffsetCommit must reach it.
    for group in ("g-a", "g-b", "g-c"):
        assert sorted(consume_group(k.bootstrap, "spread", group, N)) == list(range(N))
    # FindCoordinator (v0, single host/port) answers with kgate's port of the coordinating broker.
    coordinators = set()
    for group in ("g-a", "g-b", "g-c", "g-d", "g-e", "g-f"):
        r = raw_call(k.bootstrap, 10, 0, kstr(group))
        error, node, host, port = r.i16(), r.i32(), r.string(), r.i32()
        assert error == 0, f"FindCoordinator({group}) error {error}"
        assert f"{host}:{port}" == f"127.0.0.1:{k.base_port + node}", (group, node, host, port)
        coordinators.add(node)
    assert len(coordinators) > 1, f"the mock should spread coordinators: {coordinators}"
    # The same through kcat: a consumer group reading everything back.
    out = kcat("-b", k.bootstrap, "-G", "g-kcat", "spread", "-o", "beginning", "-e", "-q", "-c", str(N),
               timeout=90).stdout.decode()
    assert sorted(int(x) for x in out.split()) == list(range(N))
    k.assert_alive()


def test_acks_0_is_forwarded_without_waiting_for_an_answer(kgate_factory, mock3):
    """Kafka never answers acks=0 Produce; kgate must not wait for (or mismatch) an answer: a Metadata request
    on the same connections afterwards still gets its own response, and every record arrives."""
    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    p = Producer({"bootstrap.servers": k.bootstrap, "acks": 0, "linger.ms": 5})
    for i in range(N):
        p.produce("spread", str(i).encode(), partition=i % 6)
    assert p.flush(30) == 0
    assert len(p.list_topics("spread", timeout=10).topics["spread"].partitions) == 6
    deadline = time.monotonic() + 20
    while True:
        stored = consume_all(k.bootstrap, "spread", 6)
        values = sorted(int(v) for records in stored.values() for _, _, v in records)
        if values == list(range(N)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert values == list(range(N)), f"{len(values)} of {N} acks=0 records arrived"
    k.assert_alive()


def test_a_broker_that_joins_gets_its_own_port(kgate_factory, mock3):
    k = upstream_kgate(kgate_factory, mock3.bootstrap, backend={"metadata_refresh_ms": 200})
    mock3.command("add 4")
    seen = wait_broker_served(k, 4, timeout=20)
    assert seen[4] == f"127.0.0.1:{k.base_port + 4}"
    # The new port leads to broker 4, which answers Metadata like the others.
    assert brokers_seen(f"127.0.0.1:{k.base_port + 4}")[4] == f"127.0.0.1:{k.base_port + 4}"
    k.assert_alive()


def test_a_port_leads_to_its_own_broker(kgate_factory, mock3):
    """Dialling broker 2's port must reach broker 2 and no other: move every leader to broker 2, then
    bootstrap a producer on broker 3's port; it reaches broker 2 through broker 2's advertised port."""
    for p in range(6):
        mock3.command(f"leader spread {p} 2")
    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    acked = produce_numbers(f"127.0.0.1:{k.base_port + 3}", "spread", 100)
    assert sorted(acked) == list(range(100))
    # And a broker's port knows only its broker: Metadata through it still lists every broker by kgate address.
    assert brokers_seen(f"127.0.0.1:{k.base_port + 1}") == {i: f"127.0.0.1:{k.base_port + i}" for i in (1, 2, 3)}


def test_sni_routing_with_kafka_python(kgate_factory, kgate_bin, mock3, tmp_path, monkeypatch):
    """One TLS port; broker N is broker-N.kgate.test. kafka-python resolves *.kgate.test to 127.0.0.1 (patched
    getaddrinfo, in-process only) and sends the broker's name as SNI; kgate routes by it. Produce and fetch go
    to leaders on all three brokers over the one port: a wrong route would be answered NOT_LEADER forever."""
    from kafka import KafkaConsumer, KafkaProducer

    k, certs = sni_kgate(kgate_factory, kgate_bin, tmp_path, mock3.bootstrap, monkeypatch)
    tls = {"security_protocol": "SSL", "ssl_cafile": certs.ca, "ssl_check_hostname": True}
    bootstrap = f"bootstrap.kgate.test:{k.port}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **tls)
    futures = [producer.send("spread", str(i).encode(), partition=i % 6) for i in range(N)]
    for f in futures:
        f.get(timeout=60)
    brokers = {b.node_id: (b.host, b.port) for b in producer._metadata.brokers()}
    producer.close()
    assert brokers == {i: (f"broker-{i}.kgate.test", k.port) for i in (1, 2, 3)}, brokers

    # Fetch from the three leaders. (Assigned, not subscribed: the mock cluster closes the connection on
    # kafka-python's JoinGroup v6 even without kgate in between.)
    from kafka import TopicPartition as KTP
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=30000, **tls)
    consumer.assign([KTP("spread", p) for p in range(6)])
    consumer.seek_to_beginning()
    got = []
    for m in consumer:
        got.append(int(m.value))
        if len(got) == N:
            break
    consumer.close()
    assert sorted(got) == list(range(N))
    k.assert_alive()


def test_a_broker_down_and_up_loses_nothing_acknowledged(kgate_factory, mock3):
    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    acked, errors = [], []
    stop = threading.Event()

    def report(err, msg):
        (errors.append(str(err)) if err else acked.append(int(msg.value())))

    def produce():
        p = Producer({"bootstrap.servers": k.bootstrap, "acks": "all", "enable.idempotence": True,
                      "linger.ms": 5, "message.timeout.ms": 60000})
        i = 0
        while not stop.is_set():
            p.produce("spread", str(i).encode(), partition=i % 6, on_delivery=report)
            i += 1
            p.poll(0.001)
        assert p.flush(60) == 0

    t = threading.Thread(target=produce)
    t.start()
    time.sleep(1.5)
    mock3.command("down 2")
    time.sleep(3)
    mock3.command("up 2")
    time.sleep(2)
    stop.set()
    t.join(90)
    assert not errors, f"{len(errors)} delivery errors: {errors[:5]}"
    assert len(acked) > 1000, f"only {len(acked)} records acknowledged"
    stored = consume_all(k.bootstrap, "spread", 6, timeout=90)
    values = {int(v) for records in stored.values() for _, _, v in records}
    missing = set(acked) - values
    assert not missing, f"{len(missing)} acknowledged records are missing, e.g. {sorted(missing)[:10]}"
    k.assert_alive()


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


def scram_upstream_kgate(kgate_factory, tansu: Tansu, pki, password_file) -> "Kgate":
    k = kgate_factory(start=False)
    base = free_port_block(2)
    listeners = [{"name": "SECURE", "bind": f"127.0.0.1:{k.port}", "advertised": f"localhost:{k.port}",
                  "security_protocol": "SASL_SSL", "sasl_enabled_mechanisms": ["SCRAM-SHA-512", "SCRAM-SHA-256"],
                  "tls": {"cert": pki.certs.server_cert, "key": pki.certs.server_key},
                  "broker_addresses": {"scheme": "port_per_broker", "base_port": base,
                                       "brokers": {"111": f"localhost:{base + 1}"}}}]
    k = upstream_kgate(lambda start: k, tansu.bootstrap, listeners=listeners,
                       backend={"sasl": {"mechanism": "SCRAM-SHA-512", "username": "kgate",
                                         "password_file": str(password_file)}},
                       security={"users_file": str(pki.users_file)}, start=False)
    k.base_port = base
    return k


def test_tansu_with_scram_upstream_and_sasl_ssl_clients(kgate_factory, pki, tmp_path):
    from kafka import KafkaConsumer, KafkaProducer

    tansu = Tansu(tmp_path / "tansu", users={"kgate": "kgate-upstream-secret"}, authentication=True)
    try:
        password_file = tmp_path / "upstream.pass"
        password_file.write_text("kgate-upstream-secret\n")
        password_file.chmod(0o600)
        k = scram_upstream_kgate(kgate_factory, tansu, pki, password_file)
        k.start()
        bootstrap = f"localhost:{k.port}"
        sec = ClientSec("SASL_SSL", "SCRAM-SHA-512", "alice", pki.passwords["alice"], ca=pki.certs.ca)
        assert brokers_seen(bootstrap, sec.rdkafka()) == {111: f"localhost:{k.base_port + 1}"}
        # confluent-kafka: create a topic, produce, then consume in a group with a commit.
        create_topic_via(bootstrap, "via-kgate", 2, sec.rdkafka())
        assert sorted(produce_numbers(bootstrap, "via-kgate", N, sec.rdkafka())) == list(range(N))
        got = consume_group(bootstrap, "via-kgate", "g-confluent", N, sec.rdkafka(), timeout=90)
        assert sorted(got) == list(range(N))
        # kafka-python with SCRAM-SHA-256 on the client side (kgate still uses SCRAM-SHA-512 upstream).
        sec256 = ClientSec("SASL_SSL", "SCRAM-SHA-256", "bob", pki.passwords["bob"], ca=pki.certs.ca)
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **sec256.kafka_python())
        for f in [producer.send("via-kgate", str(N + i).encode()) for i in range(100)]:
            f.get(timeout=60)
        producer.close()
        consumer = KafkaConsumer("via-kgate", bootstrap_servers=bootstrap, group_id="g-kafka-python",
                                 auto_offset_reset="earliest", consumer_timeout_ms=30000, **sec256.kafka_python())
        values = set()
        for m in consumer:
            values.add(int(m.value))
            if len(values) == N + 100:
                break
        consumer.close()
        assert values == set(range(N + 100))
        # kcat (librdkafka 2.0.2 cannot read Tansu's own ApiVersions answer; kgate answers it instead).
        listing = kcat("-b", bootstrap, *sec.kcat_args(), "-L").stdout.decode()
        assert f"broker 111 at localhost:{k.base_port + 1}" in listing, listing
        assert tansu.bootstrap not in listing
        k.assert_alive()
        assert "kgate-upstream-secret" not in k.log_text(), "the upstream password reached kgate's log"
    finally:
        tansu.stop()


def test_wrong_upstream_password_stops_startup_with_the_setting_named(kgate_factory, kgate_bin, pki, tmp_path):
    tansu = Tansu(tmp_path / "tansu", users={"kgate": "right-password"}, authentication=True)
    try:
        password_file = tmp_path / "upstream.pass"
        password_file.write_text("wrong-password\n")
        k = scram_upstream_kgate(kgate_factory, tansu, pki, password_file)
        cp = run_kgate_expecting_failure(kgate_bin, k.config_path)
        assert cp.returncode == 69, f"exit {cp.returncode}\n{cp.stderr[-3000:]}"
        assert "SASL authentication to upstream broker" in cp.stderr and "backend.sasl" in cp.stderr, cp.stderr[-3000:]
        assert "wrong-password" not in cp.stderr + cp.stdout
    finally:
        tansu.stop()


def test_tansu_killed_and_restarted_during_produce(kgate_factory, tmp_path):
    tansu = Tansu(tmp_path / "tansu")
    try:
        k = kgate_factory(start=False)
        base = free_port_block(2)
        listeners = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
                      "broker_addresses": {"scheme": "port_per_broker", "base_port": base,
                                           "brokers": {"111": f"127.0.0.1:{base + 1}"}}}]
        k = upstream_kgate(lambda start: k, tansu.bootstrap, listeners=listeners)
        acked, errors = [], []
        stop = threading.Event()

        def report(err, msg):
            (errors.append(str(err)) if err else acked.append(int(msg.value())))

        def produce():
            p = Producer({"bootstrap.servers": k.bootstrap, "acks": "all", "linger.ms": 5,
                          "message.timeout.ms": 60000, "retries": 1000000})
            i = 0
            while not stop.is_set():
                p.produce("restarts", str(i).encode(), on_delivery=report)
                i += 1
                p.poll(0.002)
            assert p.flush(60) == 0

        create_topic_via(k.bootstrap, "restarts", 1)
        t = threading.Thread(target=produce)
        t.start()
        time.sleep(2)
        tansu.kill9()
        time.sleep(2)
        tansu.start()
        time.sleep(3)
        stop.set()
        t.join(90)
        assert not errors, f"{len(errors)} delivery errors: {errors[:5]}"
        assert len(acked) > 500, f"only {len(acked)} acknowledged"
        stored = consume_all(k.bootstrap, "restarts", 1, timeout=90)[0]
        values = {int(v) for _, _, v in stored}
        missing = set(acked) - values
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:10]}"
        k.assert_alive()
    finally:
        tansu.stop()


def test_kafka_0_9_upstream_is_refused_at_startup(kgate_factory, kgate_bin, tmp_path):
    kafka = Kafka09(tmp_path / "kafka09")
    try:
        k = upstream_kgate(kgate_factory, kafka.bootstrap, start=False)
        cp = run_kgate_expecting_failure(kgate_bin, k.config_path)
        assert cp.returncode == 69, f"exit {cp.returncode}\n{cp.stderr[-3000:]}"
        assert "older than Kafka 0.10.0" in cp.stderr, cp.stderr[-3000:]
        assert "upgrade the cluster" in cp.stderr
    finally:
        kafka.stop()


def test_upstream_config_mistakes_are_reported_together(kgate_factory, kgate_bin):
    k = kgate_factory(start=False)
    k.config["backend"] = {"kind": "upstream", "bootstrap": ["nohost"], "sasl": {
        "mechanism": "OAUTHBEARER", "username": "kgate", "password_file": "/nonexistent"}}
    k.config_path.write_text(to_toml(k.config))
    cp = run_kgate_expecting_failure(kgate_bin, k.config_path)
    assert cp.returncode == 64, cp.stderr
    for needle in ('backend.bootstrap: "nohost" is not HOST:PORT', 'backend.sasl.mechanism "OAUTHBEARER"',
                   'upstream mode needs [listeners.broker_addresses]'):
        assert needle in cp.stderr, f"{needle!r} not in:\n{cp.stderr}"
    # GSSAPI takes a principal, not a user name and password.
    k.config["backend"]["sasl"] = {"mechanism": "GSSAPI", "username": "kgate"}
    k.config_path.write_text(to_toml(k.config))
    cp = run_kgate_expecting_failure(kgate_bin, k.config_path)
    assert cp.returncode == 64, cp.stderr
    assert "GSSAPI needs principal" in cp.stderr and "username and password_file belong to PLAIN and SCRAM" in cp.stderr


def test_check_config_reads_the_upstream_secrets(kgate_factory, kgate_bin, tmp_path):
    """`kgate check-config` (and start-up) load backend.sasl.password_file and backend.tls.ca with the other
    files, every problem in one report, before anything is contacted."""
    k = upstream_kgate(kgate_factory, "127.0.0.1:9", start=False,
                       backend={"sasl": {"mechanism": "SCRAM-SHA-512", "username": "kgate",
                                         "password_file": str(tmp_path / "missing.pass")},
                                "tls": {"ca": str(tmp_path / "missing-ca.pem")}})
    cp = subprocess.run([kgate_bin, "check-config", str(k.config_path)], capture_output=True, text=True, timeout=60)
    assert cp.returncode == 64, cp.stderr
    assert "backend.sasl: cannot read password_file" in cp.stderr and "backend.tls: cannot read ca" in cp.stderr, \
        cp.stderr


def test_embedded_broker_honours_broker_addresses(kgate_factory):
    """NAT in front of a standalone kgate: the embedded broker is shown (Metadata, FindCoordinator) at
    host:(base_port + node id) and served there too."""
    k = kgate_factory(start=False)
    base = free_port_block(1)
    k.config["listeners"][0]["broker_addresses"] = {"scheme": "port_per_broker", "host": "localhost",
                                                    "base_port": base}
    k.config_path.write_text(to_toml(k.config))
    k.start()
    assert brokers_seen(k.bootstrap) == {0: f"localhost:{base}"}
    r = raw_call(k.bootstrap, 10, 0, kstr("g-nat"))
    assert (r.i16(), r.i32(), r.string(), r.i32()) == (0, 0, "localhost", base)
    assert sorted(produce_numbers(k.bootstrap, "nat", 100)) == list(range(100))
    assert sorted(consume_group(k.bootstrap, "nat", "g-nat", 100)) == list(range(100))


def test_bad_client_input_in_upstream_mode_harms_nothing(kgate_factory, mock3):
    """Oversized and negative size prefixes, a truncated frame, an unknown api key, a version above what kgate
    forwards (Produce v10) and a body that does not parse: each closes that client's connection without an
    answer; a client on another connection goes on producing throughout, and kgate stays up. SASL out of
    order gets Kafka's ILLEGAL_SASL_STATE from kgate and is never forwarded (an upstream would take it as
    kgate's own re-authentication)."""
    import struct

    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    broker = f"127.0.0.1:{k.base_port + 1}"
    cases = {
        "negative size": struct.pack(">i", -1),
        "oversized": struct.pack(">i", (100 << 20) + 1) + b"x" * 16,
        "unknown api key": request_frame(9999, 0, 1),
        "Produce v10 (above kgate's cap)": request_frame(0, 10, 1, body=b"\x00" * 16),
        "garbage Produce v7 body": request_frame(0, 7, 1, body=b"\xff\xff\xff\x00\x00\x00\x01"),
    }
    for what, data in cases.items():
        s = raw_connect(broker)
        s.sendall(data)
        assert_closed_by_server(s, what=what)
        s.close()
        assert sorted(produce_numbers(k.bootstrap, "spread", 20)) == list(range(20)), f"after {what}"
    s = raw_connect(broker)
    s.sendall(request_frame(36, 1, 7, body=b"\x00\x00\x00\x00"))  # SaslAuthenticate v1 on PLAINTEXT
    answer = recv_frame(s)
    assert answer is not None and struct.unpack(">ih", answer[:6]) == (7, 34), answer  # ILLEGAL_SASL_STATE
    s.sendall(request_frame(3, 1, 8, body=b"\x00\x00\x00\x00"))  # the connection still serves Metadata
    answer = recv_frame(s)
    assert answer is not None and struct.unpack(">i", answer[:4]) == (8,)
    s.close()
    s = raw_connect(broker)
    s.sendall(request_frame(3, 1, 1, body=b"\x00\x00\x00\x00")[:-2])  # truncated, then the client leaves
    s.close()
    k.assert_alive()
    assert sorted(produce_numbers(k.bootstrap, "spread", 20)) == list(range(20))


def test_upstream_tls_with_a_client_certificate(kgate_factory, kgate_bin, pki):
    """kgate connects to its upstream over TLS with the CA checked and the host name verified, and presents
    its client certificate: the upstream (a kgate SSL listener requiring client certificates) logs the
    certificate's principal. A wrong CA stops start-up naming backend.tls; plaintext to the TLS port is
    refused with the [backend.tls] hint."""
    upstream = secure_kgate(kgate_factory, [ssl_listener("TLS", pki.certs, client_auth="required", host="localhost")])
    bootstrap = f"localhost:{upstream.ports['TLS']}"
    cert, key = pki.certs.client("alice")
    k = upstream_kgate(kgate_factory, bootstrap, brokers=1,
                       backend={"tls": {"ca": pki.certs.ca, "cert": cert, "key": key}})
    assert sorted(produce_numbers(k.bootstrap, "over-tls", 100)) == list(range(100))
    assert sorted(int(v) for _, _, v in consume_all(k.bootstrap, "over-tls", 1)[0]) == list(range(100))
    principals = {e["principal"] for e in cert_events(upstream, "TLS")}
    assert any("CN=alice" in p for p in principals), principals

    wrong_ca = upstream_kgate(kgate_factory, bootstrap, brokers=1, start=False,
                              backend={"tls": {"ca": pki.other.ca, "cert": cert, "key": key}})
    cp = run_kgate_expecting_failure(kgate_bin, wrong_ca.config_path)
    assert cp.returncode == 69 and "TLS handshake with upstream broker" in cp.stderr, cp.stderr[-2000:]
    assert "backend.tls.ca" in cp.stderr
    plaintext = upstream_kgate(kgate_factory, bootstrap, brokers=1, start=False)
    cp = run_kgate_expecting_failure(kgate_bin, plaintext.config_path)
    assert cp.returncode == 69 and "[backend.tls]" in cp.stderr, cp.stderr[-2000:]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_upstream_sasl_mechanism_is_the_one_used(kgate_factory, pki, tmp_path, mechanism):
    """kgate's upstream identity with each password mechanism, against a kgate SASL_PLAINTEXT listener whose
    log says which mechanism and principal authenticated (Tansu offers SCRAM only, tested above)."""
    upstream = secure_kgate(kgate_factory, [sasl_plaintext("SASL", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])],
                            security={"users_file": str(pki.users_file)})
    password_file = tmp_path / "alice.pass"
    password_file.write_text(pki.passwords["alice"] + "\n")
    k = upstream_kgate(kgate_factory, f"localhost:{upstream.ports['SASL']}", brokers=1,
                       backend={"sasl": {"mechanism": mechanism, "username": "alice",
                                         "password_file": str(password_file)}})
    assert sorted(produce_numbers(k.bootstrap, "sasl-up", 50)) == list(range(50))
    events = auth_events(upstream, "SASL")
    assert events and {(e["principal"], e["mechanism"]) for e in events} == {("User:alice", mechanism)}, events
