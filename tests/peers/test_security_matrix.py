"""Real clients through secured listeners: kcat (librdkafka 2.0.2), confluent-kafka (librdkafka 2.16) and
kafka-python 3.0, each with SASL_PLAINTEXT/PLAIN, SASL_SSL/SCRAM-SHA-256 and SASL_SSL/SCRAM-SHA-512, with the
CA checked and hostname verification on (connecting as `localhost`) or off (connecting to 127.0.0.1, which
the server certificate does not name: only verification being off lets that through). Each produces N
records and consumes them back in a consumer group with a commit; kgate's log must show the principal and
mechanism. Hostname verification must really be on: 127.0.0.1 with verification on fails with a
certificate error in every client, and so does an unknown CA with verification off."""
import json
import logging
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from peerlib import consume_all, create_topic, kcat
from seclib import (ALL_MECHANISMS, ClientSec, RawConn, auth_events, failed_events, listener_addr, provision,
                    sasl_login, sasl_plaintext, sasl_ssl, secure_kgate, tls_context)

N = 300

# (id, listener, security protocol, mechanism, verify hostname)
MODES = [
    ("plain", "SASL", "SASL_PLAINTEXT", "PLAIN", None),
    ("scram256-verify", "SECURE", "SASL_SSL", "SCRAM-SHA-256", True),
    ("scram256-noverify", "SECURE_IP", "SASL_SSL", "SCRAM-SHA-256", False),
    ("scram512-verify", "SECURE", "SASL_SSL", "SCRAM-SHA-512", True),
    ("scram512-noverify", "SECURE_IP", "SASL_SSL", "SCRAM-SHA-512", False),
]


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(kgate_factory, pki):
    # SECURE and SECURE_IP use the certificate made with `--san localhost` only: SECURE advertises
    # localhost, SECURE_IP advertises 127.0.0.1 (so every connection of a client there is by IP).
    return secure_kgate(kgate_factory, [
        sasl_plaintext("SASL", host="localhost"),
        sasl_ssl("SECURE", pki.certs_lh, host="localhost"),
        sasl_ssl("SECURE_IP", pki.certs_lh, host="127.0.0.1"),
    ], security={"users_file": str(pki.users_file), "super_users": ["User:admin"]})


def client_sec(pki, protocol, mechanism, verify, user="alice", ca=None):
    return ClientSec(protocol, mechanism, user, pki.passwords[user], ca=ca or pki.certs_lh.ca,
                     verify_hostname=bool(verify))


def committed(k, group, topic):
    c = Consumer({"bootstrap.servers": k.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = c.committed([TopicPartition(topic, 0)], timeout=15)
        return tp.offset
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# the three clients: produce `values`, then consume them in group `group` and commit


def flow_confluent(sec, bootstrap, topic, group, values):
    errors = []
    base = {"bootstrap.servers": bootstrap, **sec.rdkafka(), "error_cb": lambda e: errors.append(str(e))}
    p = Producer({**base, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    delivery = []
    for v in values:
        p.produce(topic, v.encode(), on_delivery=lambda e, m: delivery.append((e, m.offset() if not e else None)))
    assert p.flush(60) == 0, f"producer: records left unacknowledged; client errors: {errors[:5]}"
    assert [e for e, _ in delivery if e] == [], f"delivery errors: {[e for e, _ in delivery if e][:5]}"
    assert sorted(o for _, o in delivery) == list(range(len(values)))
    c = Consumer({**base, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(got) < len(values):
            assert time.monotonic() < deadline, f"consumed {len(got)} of {len(values)}; errors {errors[:5]}"
            for m in c.consume(500, 0.5):
                assert not m.error(), f"consume error: {m.error()}"
                got.append((m.offset(), m.value().decode()))
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert not errors, f"client errors: {errors[:5]}"
    return got


def flow_kcat(sec, bootstrap, topic, group, values):
    kcat("-b", bootstrap, *sec.kcat_args(), "-P", "-t", topic, "-X", "acks=all",
         input=("\n".join(values) + "\n").encode(), timeout=60)
    out = kcat("-b", bootstrap, *sec.kcat_args(), "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q",
               "-J", topic, timeout=90)
    err = out.stderr.decode(errors="replace")
    assert "FAIL" not in err and "ERROR" not in err, f"kcat reported errors:\n{err[-2000:]}"
    msgs = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    return [(m["offset"], m["payload"]) for m in msgs]


def flow_kafka_python(sec, bootstrap, topic, group, values):
    from kafka import KafkaConsumer, KafkaProducer
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, bootstrap_timeout_ms=20000,
                      **sec.kafka_python())
    try:
        futs = [p.send(topic, v.encode()) for v in values]
        p.flush(60)
        offsets = sorted(f.get(timeout=30).offset for f in futs)
    finally:
        p.close(10)
    assert offsets == list(range(len(values)))
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                      enable_auto_commit=False, bootstrap_timeout_ms=20000, **sec.kafka_python())
    got = []
    try:
        deadline = time.monotonic() + 60
        while len(got) < len(values):
            assert time.monotonic() < deadline, f"consumed {len(got)} of {len(values)}"
            for _tp, recs in c.poll(timeout_ms=500).items():
                got += [(r.offset, r.value.decode()) for r in recs]
        c.commit()
    finally:
        c.close()
    return got


FLOWS = {"kcat": flow_kcat, "confluent": flow_confluent, "kafka-python": flow_kafka_python}


@pytest.mark.parametrize("client", list(FLOWS))
@pytest.mark.parametrize("mode", MODES, ids=[m[0] for m in MODES])
def test_produce_consume_commit(server, pki, client, mode):
    mode_id, listener, protocol, mechanism, verify = mode
    k = server
    topic, group = f"t-{client}-{mode_id}", f"g-{client}-{mode_id}"
    create_topic(k.bootstrap, topic, 1)
    values = [f"{client}/{mode_id}/{i}/{'x' * (i % 23)}" for i in range(N)]
    sec = client_sec(pki, protocol, mechanism, verify)
    bootstrap = listener_addr(k, listener)
    assert bootstrap.startswith("localhost:" if verify in (True, None) else "127.0.0.1:")

    got = FLOWS[client](sec, bootstrap, topic, group, values)

    assert got == list(enumerate(values)), "consumed records differ from the produced ones (content or order)"
    assert committed(k, group, topic) == N, "the group's committed offset is not N"
    # the records really are in the log (read back through PLAINTEXT)
    assert [v.decode() for _, _, v in consume_all(k.bootstrap, topic, 1)[0]] == values
    # who the server saw: only alice, with this mechanism, on this listener, at least for the producer's and
    # the consumer's connections; and no failed authentication anywhere
    events = auth_events(k)
    assert events, f"no 'authenticated' line in kgate's log:\n{k.log_tail()}"
    assert {(e["principal"], e["mechanism"], e["listener"]) for e in events} == {("User:alice", mechanism, listener)}, \
        events
    assert len({e["client"] for e in events}) >= 2, f"want the producer's and the consumer's connections: {events}"
    assert all(e["reauth"] == "false" and e["lifetime"] == "0" for e in events), events
    assert failed_events(k) == [], failed_events(k)
    k.assert_alive()


# ----------------------------------------------------------------------------------------------
# Verification must really be on


def expect_confluent_failure(conf, timeout=6.0):
    errors = []
    a = AdminClient({**conf, "error_cb": lambda e: errors.append(str(e)),
                     "reconnect.backoff.ms": 200, "reconnect.backoff.max.ms": 500})
    with pytest.raises(KafkaException):
        a.list_topics(timeout=timeout)
    a.poll(0.5)  # serves error_cb
    return "\n".join(errors)


def expect_kafka_python_failure(sec, bootstrap):
    from kafka import KafkaAdminClient
    lines = []

    class Grab(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    h = Grab(level=logging.DEBUG)
    lg = logging.getLogger("kafka")
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(logging.INFO)
    try:
        with pytest.raises(Exception) as ei:
            a = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=4000, request_timeout_ms=4000,
                                 reconnect_backoff_max_ms=300, **sec.kafka_python())
            a.close()
    finally:
        lg.removeHandler(h)
        lg.setLevel(old)
    return f"{ei.value!r}\n" + "\n".join(lines)


@pytest.mark.parametrize("client", ["kcat", "confluent", "kafka-python"])
def test_hostname_verification_rejects_a_name_not_in_the_certificate(server, pki, client):
    # SECURE_IP serves the `--san localhost` certificate; 127.0.0.1 is not in it. Same CA, same cert as the
    # passing "-noverify" runs: only the hostname check can refuse it.
    k = server
    sec = client_sec(pki, "SASL_SSL", "SCRAM-SHA-512", verify=True)
    bootstrap = listener_addr(k, "SECURE_IP")
    assert bootstrap.startswith("127.0.0.1:")
    if client == "kcat":
        cp = kcat("-b", bootstrap, *sec.kcat_args(), "-L", "-m", "5", check=False, timeout=30)
        assert cp.returncode != 0
        text = cp.stderr.decode(errors="replace")
        assert "certificate verify failed" in text, text[-2000:]
    elif client == "confluent":
        text = expect_confluent_failure({"bootstrap.servers": bootstrap, **sec.rdkafka()})
        assert "certificate verify failed" in text, text
    else:
        text = expect_kafka_python_failure(sec, bootstrap)
        assert "CERTIFICATE_VERIFY_FAILED" in text and "IP address mismatch, certificate is not valid for " \
            "'127.0.0.1'" in text, text[-3000:]
    assert auth_events(k) == [], "a client authenticated although the certificate does not match"
    assert "TLS handshake failed" in k.log_text()
    # the same certificate, CA and hostname check pass when the name matches
    with RawConn("127.0.0.1", k.ports["SECURE_IP"], ctx=tls_context(pki.certs_lh.ca, check_hostname=True),
                 server_hostname="localhost") as c:
        assert sasl_login(c, "SCRAM-SHA-512", "alice", pki.passwords["alice"]).error_code == 0


@pytest.mark.parametrize("client", ["kcat", "confluent", "kafka-python"])
def test_ca_verification_stays_on_without_hostname_verification(server, pki, client):
    # endpoint identification off, but a CA that did not sign the server certificate: refused
    k = server
    sec = client_sec(pki, "SASL_SSL", "SCRAM-SHA-512", verify=False, ca=pki.other.ca)
    bootstrap = listener_addr(k, "SECURE_IP")
    if client == "kcat":
        cp = kcat("-b", bootstrap, *sec.kcat_args(), "-L", "-m", "5", check=False, timeout=30)
        assert cp.returncode != 0
        text = cp.stderr.decode(errors="replace")
        assert "certificate verify failed" in text, text[-2000:]
    elif client == "confluent":
        text = expect_confluent_failure({"bootstrap.servers": bootstrap, **sec.rdkafka()})
        assert "certificate verify failed" in text, text
    else:
        text = expect_kafka_python_failure(sec, bootstrap)
        assert "CERTIFICATE_VERIFY_FAILED" in text and "unable to get local issuer certificate" in text, text[-3000:]
    assert auth_events(k) == []


def test_metadata_advertises_each_listeners_own_address(server, pki):
    # A client that authenticated on a secured listener must be sent back to that listener, never to the
    # PLAINTEXT one (which would bypass authentication).
    k = server
    for listener, ctx in [("SASL", None), ("SECURE", tls_context(pki.certs_lh.ca)),
                          ("SECURE_IP", tls_context(pki.certs_lh.ca))]:
        with RawConn("127.0.0.1", k.ports[listener], ctx=ctx, server_hostname="localhost") as c:
            assert sasl_login(c, "SCRAM-SHA-256", "bob", pki.passwords["bob"]).error_code == 0
            r = c.metadata()
            brokers = [(r.i32(), r.string(), r.i32(), r.string()) for _ in range(r.i32())]
            assert brokers == [(0, k.hosts[listener], k.ports[listener], None)], (listener, brokers)
    assert {(e["principal"], e["listener"]) for e in auth_events(k)} == {
        ("User:bob", "SASL"), ("User:bob", "SECURE"), ("User:bob", "SECURE_IP")}
    assert sorted(ALL_MECHANISMS) == sorted(k.config["listeners"][1]["sasl_enabled_mechanisms"])
