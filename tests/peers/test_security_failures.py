"""Authentication failures as Kafka clients report them (kcat / librdkafka 2.0.2, confluent-kafka /
librdkafka 2.16, kafka-python 3.0), the same bytes seen raw, and session expiry (KIP-368): librdkafka 2.16
re-authenticates and keeps working across several session lifetimes; a raw client that does not is
disconnected at its first request after the lifetime it was given."""
import re
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from peerlib import create_topic, kcat
from seclib import (PLAIN_BAD_CREDENTIALS, SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ClientSec,
                    RawConn, ScramClient, auth_events, capture_logs, failed_events, generic_scram_message,
                    kafka_python_fixed_eof_read, listener_addr, plain_token, provision, sasl_login, sasl_plaintext,
                    sasl_ssl, secure_kgate, tls_context, wait_log)


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


@pytest.fixture
def server(kgate_factory, pki):
    return secure_kgate(kgate_factory, [
        sasl_plaintext("SASL", host="localhost"),
        sasl_ssl("SECURE", pki.certs, host="localhost"),
        sasl_ssl("ONLY512", pki.certs, mechanisms=["SCRAM-SHA-512"], host="localhost"),
    ], security={"users_file": str(pki.users_file)})


# (id, listener, mechanism, user, expected client message, kgate's log reason)
BAD_CREDENTIALS = [
    ("plain-wrong-password", "SASL", "PLAIN", "alice", PLAIN_BAD_CREDENTIALS,
     'mechanism PLAIN: wrong password for user "alice"'),
    ("plain-unknown-user", "SASL", "PLAIN", "nobody", PLAIN_BAD_CREDENTIALS,
     'mechanism PLAIN: unknown user "nobody"'),
    ("scram256-wrong-password", "SECURE", "SCRAM-SHA-256", "alice", generic_scram_message("SCRAM-SHA-256"),
     'mechanism SCRAM-SHA-256: Invalid client credentials: wrong password for user "alice"'),
    ("scram512-wrong-password", "SECURE", "SCRAM-SHA-512", "alice", generic_scram_message("SCRAM-SHA-512"),
     'mechanism SCRAM-SHA-512: Invalid client credentials: wrong password for user "alice"'),
    ("scram256-unknown-user", "SECURE", "SCRAM-SHA-256", "nobody", generic_scram_message("SCRAM-SHA-256"),
     'mechanism SCRAM-SHA-256: unknown user "nobody" (no SCRAM-SHA-256 credential)'),
]


def sec(pki, listener, mechanism, user, password):
    protocol = "SASL_PLAINTEXT" if listener == "SASL" else "SASL_SSL"
    return ClientSec(protocol, mechanism, user, password, ca=pki.certs.ca, verify_hostname=True)


def librdkafka_errors_confluent(conf, seconds=4.0):
    errors = []
    a = AdminClient({**conf, "error_cb": lambda e: errors.append(e)})
    try:
        a.list_topics(timeout=seconds)
    except Exception:
        pass
    a.poll(0.5)
    return errors


def client_report(client, pki, k, listener, mechanism, user, password):
    """What the client says when it cannot authenticate (one text blob)."""
    s = sec(pki, listener, mechanism, user, password)
    bootstrap = listener_addr(k, listener)
    if client == "kcat":
        cp = kcat("-b", bootstrap, *s.kcat_args(), "-L", "-m", "3", check=False, timeout=30)
        assert cp.returncode != 0, "kcat got metadata without valid credentials"
        return cp.stderr.decode(errors="replace")
    if client == "confluent":
        errs = librdkafka_errors_confluent({"bootstrap.servers": bootstrap, **s.rdkafka()})
        auth = [e for e in errs if e.code() == KafkaError._AUTHENTICATION]
        assert auth, f"no _AUTHENTICATION error from confluent-kafka: {[str(e) for e in errs]}"
        return "\n".join(e.str() for e in errs)
    from kafka import KafkaAdminClient
    with kafka_python_fixed_eof_read(), capture_logs() as lines:
        with pytest.raises(Exception) as ei:
            KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=3000, request_timeout_ms=3000,
                             reconnect_backoff_max_ms=300, **s.kafka_python()).close()
    return f"{ei.value!r}\n" + "\n".join(lines)


@pytest.mark.parametrize("client", ["kcat", "confluent", "kafka-python"])
@pytest.mark.parametrize("case", BAD_CREDENTIALS, ids=[c[0] for c in BAD_CREDENTIALS])
def test_bad_credentials_as_the_client_reports_them(server, pki, client, case):
    _id, listener, mechanism, user, message, log_reason = case
    k = server
    text = client_report(client, pki, k, listener, mechanism, user, "not-the-password")
    if client == "kafka-python":
        assert f"SaslAuthenticationFailedError: {message}" in text, text[-3000:]
    else:
        # librdkafka: "SASL authentication error: <ErrorMessage> (after N ms in state AUTH_REQ)"; N includes
        # kgate's 100 ms connection.failed.authentication.delay.ms
        found = re.findall(r"SASL authentication error: (.*?) \(after (\d+)ms in state AUTH_REQ", text)
        assert found, text[-3000:]
        assert {m for m, _ in found} == {message}, found
        assert all(int(ms) >= 95 for _, ms in found), f"error came before the failed-authentication delay: {found}"
    reasons = {e["reason"] for e in failed_events(k)}
    assert reasons == {log_reason}, reasons
    assert auth_events(k) == []


@pytest.mark.parametrize("client", ["kcat", "confluent", "kafka-python"])
def test_mechanism_not_enabled_on_the_listener(server, pki, client):
    k = server
    text = client_report(client, pki, k, "ONLY512", "SCRAM-SHA-256", "alice", pki.passwords["alice"])
    if client == "kafka-python":
        assert "UnsupportedSaslMechanismError" in text, text[-3000:]
    else:
        assert "SASL SCRAM-SHA-256 mechanism handshake failed: Broker: Unsupported SASL mechanism: " \
               "broker's supported mechanisms: SCRAM-SHA-512" in text, text[-3000:]
    assert {e["reason"] for e in failed_events(k)} == {
        'Unsupported SASL mechanism SCRAM-SHA-256: the listener enables ["SCRAM-SHA-512"]'}
    assert auth_events(k) == []


# ----------------------------------------------------------------------------------------------
# the same, raw


def test_raw_bad_credentials_bytes_and_round_trips(server, pki):
    k = server
    ctx = tls_context(pki.certs.ca)
    # PLAIN, wrong password: error 58 with Kafka's SaslAuthenticationException text, ~100 ms late, then close
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        assert c.handshake("PLAIN") == (0, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        t0 = time.monotonic()
        r = c.authenticate(plain_token("alice", "wrong"))
        took = time.monotonic() - t0
        assert (r.error_code, r.error_message, r.auth_bytes) == (SASL_AUTHENTICATION_FAILED, PLAIN_BAD_CREDENTIALS, b"")
        assert took >= 0.09, f"failure answered after {took * 1000:.0f} ms, before the 100 ms delay"
        c.wait_closed(what="after a failed PLAIN login")
    # SCRAM, unknown user: refused on the first round trip (Kafka looks the user up on client-first)
    with RawConn.to(k, "SECURE", ctx=ctx) as c:
        c.api_versions()
        assert c.handshake("SCRAM-SHA-256")[0] == 0
        r = c.authenticate(ScramClient("SCRAM-SHA-256", "nobody", "x").first())
        assert (r.error_code, r.error_message) == (SASL_AUTHENTICATION_FAILED, generic_scram_message("SCRAM-SHA-256"))
        c.wait_closed(what="after an unknown SCRAM user")
    # SCRAM, wrong password: the first round trip succeeds, the second fails with the same generic text
    with RawConn.to(k, "SECURE", ctx=ctx) as c:
        c.api_versions()
        assert c.handshake("SCRAM-SHA-512")[0] == 0
        sc = ScramClient("SCRAM-SHA-512", "alice", "wrong")
        first = c.authenticate(sc.first())
        assert first.error_code == 0 and first.auth_bytes.startswith(b"r=" + sc.nonce.encode())
        assert re.fullmatch(rb"r=[\x21-\x2b\x2d-\x7e]+,s=[A-Za-z0-9+/=]+,i=8192", first.auth_bytes), first.auth_bytes
        r = c.authenticate(sc.final(first.auth_bytes))
        assert (r.error_code, r.error_message) == (SASL_AUTHENTICATION_FAILED, generic_scram_message("SCRAM-SHA-512"))
        c.wait_closed(what="after a wrong SCRAM password")
    assert auth_events(k) == []


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN", "scram-sha-512", "GSSAPI"])
def test_raw_unsupported_mechanism(server, mechanism):
    k = server
    with RawConn.to(k, "ONLY512", ctx=tls_context(None)) as c:
        c.api_versions()
        t0 = time.monotonic()
        err, mechs = c.handshake(mechanism)
        took = time.monotonic() - t0
        assert (err, mechs) == (UNSUPPORTED_SASL_MECHANISM, ["SCRAM-SHA-512"])
        assert took >= 0.09, f"UNSUPPORTED_SASL_MECHANISM after {took * 1000:.0f} ms, Kafka delays it by 100 ms"
        c.wait_closed(what="after UNSUPPORTED_SASL_MECHANISM")


# ----------------------------------------------------------------------------------------------
# Session expiry and re-authentication (KIP-368)

LIFETIME_MS = 3000


@pytest.fixture
def reauth_server(kgate_factory, pki):
    return secure_kgate(kgate_factory, [
        sasl_plaintext("SASL", host="localhost"),
        sasl_ssl("SECURE", pki.certs, host="localhost"),
    ], security={"users_file": str(pki.users_file), "connections_max_reauth_ms": LIFETIME_MS})


def test_librdkafka_reauthenticates_across_session_lifetimes(reauth_server, pki):
    k = reauth_server
    create_topic(k.bootstrap, "reauth", 1)
    s = sec(pki, "SECURE", "SCRAM-SHA-512", "alice", pki.passwords["alice"])
    errors, acked = [], []
    base = {"bootstrap.servers": listener_addr(k, "SECURE"), **s.rdkafka(), "error_cb": lambda e: errors.append(str(e))}
    p = Producer({**base, "acks": "all", "linger.ms": 0})
    c = Consumer({**base, "group.id": "reauth-g", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["reauth"])
    consumed = []
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            for m in c.consume(100, 0.2):
                if m.error():
                    errors.append(f"consume: {m.error()}")
                else:
                    consumed.append(m.value().decode())

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    seconds = 3.5 * LIFETIME_MS / 1000   # more than three lifetimes
    t0, i = time.monotonic(), 0
    try:
        while time.monotonic() - t0 < seconds:
            p.produce("reauth", f"r{i}".encode(), on_delivery=lambda e, m: acked.append(e or m.offset()))
            i += 1
            p.poll(0.02)
        assert p.flush(30) == 0
        deadline = time.monotonic() + 20
        while len(consumed) < i and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        t.join(10)
        c.close()
    assert errors == [], errors[:5]
    assert acked == list(range(i)), "delivery errors or offsets out of order"
    assert consumed == [f"r{n}" for n in range(i)]
    events = auth_events(k, "SECURE")
    reauths = [e for e in events if e["reauth"] == "true"]
    assert all(e["principal"] == "User:alice" and e["lifetime"] == str(LIFETIME_MS) for e in events), events
    # every long-lived connection (producer, consumer, coordinator) re-authenticated about 3 times
    per_conn = {}
    for e in reauths:
        per_conn[e["client"]] = per_conn.get(e["client"], 0) + 1
    assert per_conn and max(per_conn.values()) >= 3, f"re-authentications per connection: {per_conn}"
    assert "Disconnecting expired channel" not in k.log_text()
    assert failed_events(k) == []


def test_kafka_python_reauthenticates_across_session_lifetimes(reauth_server, pki):
    from kafka import KafkaProducer
    k = reauth_server
    create_topic(k.bootstrap, "reauth-kp", 1)
    s = sec(pki, "SECURE", "SCRAM-SHA-256", "bob", pki.passwords["bob"])
    p = KafkaProducer(bootstrap_servers=listener_addr(k, "SECURE"), acks="all", linger_ms=0, **s.kafka_python())
    offsets = []
    try:
        t0, i = time.monotonic(), 0
        while time.monotonic() - t0 < 3.5 * LIFETIME_MS / 1000:
            offsets.append(p.send("reauth-kp", f"k{i}".encode()).get(timeout=10).offset)
            i += 1
            time.sleep(0.02)
    finally:
        p.close(10)
    assert offsets == list(range(len(offsets)))
    reauths = [e for e in auth_events(k, "SECURE") if e["reauth"] == "true"]
    assert len(reauths) >= 3 and {e["principal"] for e in reauths} == {"User:bob"}, reauths
    assert "Disconnecting expired channel" not in k.log_text()


def metadata_ok(c):
    r = c.metadata()
    assert r.i32() == 1 and r.i32() == 0, "want one broker, id 0"


@pytest.mark.parametrize("auth_version", [1, 0])
def test_raw_client_that_does_not_reauthenticate_is_disconnected(reauth_server, pki, auth_version):
    k = reauth_server
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        assert c.handshake("PLAIN")[0] == 0
        t_auth = time.monotonic()
        r = c.authenticate(plain_token("alice", pki.passwords["alice"]), version=auth_version)
        assert r.error_code == 0
        # v1 tells the client its session lifetime; v0 cannot, but the session expires all the same
        assert r.session_lifetime_ms == (LIFETIME_MS if auth_version == 1 else None)
        metadata_ok(c)
        time.sleep(LIFETIME_MS / 1000 * 0.5)
        metadata_ok(c)  # still within the lifetime
        time.sleep(max(0.0, t_auth + LIFETIME_MS / 1000 + 0.2 - time.monotonic()))
        c.send_metadata()
        c.wait_closed(what="request after the session expired")
    wait_log(k, r"Disconnecting expired channel: the session of User:alice ended")


def test_raw_reauthentication_extends_the_session(reauth_server, pki):
    k = reauth_server
    pw = pki.passwords["alice"]
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        assert c.handshake("SCRAM-SHA-256")[0] == 0
        sc = ScramClient("SCRAM-SHA-256", "alice", pw)
        first = c.authenticate(sc.first())
        final = c.authenticate(sc.final(first.auth_bytes))
        assert final.error_code == 0 and final.session_lifetime_ms == LIFETIME_MS
        t_auth = time.monotonic()
        time.sleep(LIFETIME_MS / 1000 * 0.6)
        # KIP-368: SaslHandshake + SaslAuthenticate on the authenticated connection, no ApiVersions
        assert c.handshake("SCRAM-SHA-256") == (0, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
        sc2 = ScramClient("SCRAM-SHA-256", "alice", pw)
        first = c.authenticate(sc2.first())
        final = c.authenticate(sc2.final(first.auth_bytes))
        assert final.error_code == 0 and final.session_lifetime_ms == LIFETIME_MS
        sc2.verify_server_final(final.auth_bytes)
        time.sleep(max(0.0, t_auth + LIFETIME_MS / 1000 + 0.3 - time.monotonic()))
        metadata_ok(c)  # past the first lifetime, within the second
    ev = [e for e in auth_events(k, "SASL")]
    assert [(e["principal"], e["mechanism"], e["reauth"]) for e in ev] == [
        ("User:alice", "SCRAM-SHA-256", "false"), ("User:alice", "SCRAM-SHA-256", "true")]


def test_raw_reauthentication_cannot_change_the_principal(reauth_server, pki):
    # Kafka: SaslAuthenticationException "Cannot change principals during re-authentication from User.alice:
    # User.bob" (SaslServerAuthenticator.ReauthInfo.ensurePrincipalUnchanged formats type "." name), sent as
    # SASL_AUTHENTICATION_FAILED, then the connection is closed.
    k = reauth_server
    with RawConn.to(k, "SASL") as c:
        assert sasl_login(c, "PLAIN", "alice", pki.passwords["alice"]).error_code == 0
        time.sleep(1.1)  # Kafka refuses a re-authentication within 1 s of the previous one
        assert c.handshake("PLAIN")[0] == 0
        r = c.authenticate(plain_token("bob", pki.passwords["bob"]))
        assert r.error_code == SASL_AUTHENTICATION_FAILED
        assert r.error_message == "Cannot change principals during re-authentication from User.alice: User.bob", \
            r.error_message
        c.wait_closed(what="after a re-authentication as someone else")
