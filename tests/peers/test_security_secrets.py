"""Secrets never reach kgate's logs or files: one server (logging at debug, kgate at trace) goes through
the password-using flows of this suite, good and bad: CLI provisioning and password change, PLAIN and
SCRAM from kcat, confluent-kafka and kafka-python, raw legacy (v0) PLAIN, authzid tricks, a
re-authentication with a wrong password, and AdminClient upserts. Then its whole stderr log, the users
file and every other file under its work directory are scanned for every password used (and base64 of it)."""
import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from peerlib import create_topic, kcat
from seclib import (ClientSec, RawConn, ScramClient, auth_events, capture_logs, failed_events, find_secrets,
                    kafka_python_fixed_eof_read, listener_addr, new_password, plain_token, provision, sasl_login,
                    sasl_plaintext, sasl_ssl, secure_kgate, tls_context, users_add)


def test_no_secret_in_logs_or_files(kgate_factory, kgate_bin, tmp_path, monkeypatch):
    monkeypatch.setenv("RUST_LOG", "debug,kgate=trace")
    pki = provision(kgate_bin, tmp_path / "pki")
    used = list(pki.passwords.values())

    def pw(label):
        p = new_password(label)
        used.append(p)
        return p

    k = secure_kgate(kgate_factory, [sasl_plaintext("SASL"), sasl_ssl("SECURE", pki.certs)],
                     security={"users_file": str(pki.users_file), "super_users": ["User:admin"],
                               "connections_max_reauth_ms": 2000})
    create_topic(k.bootstrap, "s", 1)
    sasl = listener_addr(k, "SASL")
    secure = listener_addr(k, "SECURE")
    alice, bob, admin = pki.passwords["alice"], pki.passwords["bob"], pki.passwords["admin"]

    # CLI: change bob's password while the server runs
    bob2 = pw("bob2")
    users_add(kgate_bin, pki.users_file, "bob", bob2)
    time.sleep(2.5)  # the users file is re-read every 2 s

    def sec(protocol, mechanism, user, password):
        return ClientSec(protocol, mechanism, user, password, ca=pki.certs.ca)

    # confluent-kafka: good and bad
    for s, bootstrap, good in [
        (sec("SASL_PLAINTEXT", "PLAIN", "alice", alice), sasl, True),
        (sec("SASL_SSL", "SCRAM-SHA-256", "bob", bob2), secure, True),
        (sec("SASL_SSL", "SCRAM-SHA-512", "alice", pw("wrong512")), secure, False),
        (sec("SASL_PLAINTEXT", "PLAIN", "bob", bob), sasl, False),  # bob's old password
        (sec("SASL_PLAINTEXT", "PLAIN", "nobody", pw("nobody")), sasl, False),
    ]:
        errors = []
        p = Producer({"bootstrap.servers": bootstrap, **s.rdkafka(), "message.timeout.ms": 3000,
                      "error_cb": lambda e: errors.append(str(e))})
        delivered = []
        p.produce("s", b"payload", on_delivery=lambda e, m: delivered.append(e is None))
        p.flush(6)
        assert delivered == [good], (s.mechanism, s.user, delivered, errors[:3])

    # kcat
    kcat("-b", secure, *sec("SASL_SSL", "SCRAM-SHA-512", "alice", alice).kcat_args(), "-L", "-m", "5")
    cp = kcat("-b", sasl, *sec("SASL_PLAINTEXT", "PLAIN", "alice", pw("kcatwrong")).kcat_args(), "-L", "-m", "2",
              check=False)
    assert cp.returncode != 0

    # kafka-python
    from kafka import KafkaAdminClient
    a = KafkaAdminClient(bootstrap_servers=secure, **sec("SASL_SSL", "SCRAM-SHA-256", "alice", alice).kafka_python())
    assert "s" in a.list_topics()
    a.close()
    with kafka_python_fixed_eof_read(), capture_logs():
        with pytest.raises(Exception):
            KafkaAdminClient(bootstrap_servers=sasl, bootstrap_timeout_ms=2000, reconnect_backoff_max_ms=300,
                             **sec("SASL_PLAINTEXT", "PLAIN", "alice", pw("kpwrong")).kafka_python()).close()

    # raw: legacy v0 PLAIN (raw token framing), good and bad
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        assert c.handshake("PLAIN", version=0)[0] == 0
        assert c.raw_token(plain_token("alice", alice)) == b""
        c.metadata()
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        assert c.handshake("PLAIN", version=0)[0] == 0
        assert c.raw_token(plain_token("alice", pw("v0wrong"))) is None
    # raw: PLAIN with an authzid other than the user, SCRAM with a=admin
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        c.handshake("PLAIN")
        r = c.authenticate(plain_token("alice", alice, authzid="admin"))
        assert r.error_message == "Authentication failed: Client requested an authorization id that is different " \
                                  "from username", r
    with RawConn.to(k, "SASL") as c:
        c.api_versions()
        c.handshake("SCRAM-SHA-256")
        sc = ScramClient("SCRAM-SHA-256", "alice", alice)
        r = c.authenticate(b"n,a=admin," + sc.client_first_bare.encode())
        assert r.error_code == 58, r
    # raw: re-authentication with a wrong password (connections_max_reauth_ms = 2000)
    with RawConn.to(k, "SASL") as c:
        assert sasl_login(c, "PLAIN", "alice", alice).error_code == 0
        time.sleep(1.1)
        assert c.handshake("PLAIN")[0] == 0
        r = c.authenticate(plain_token("alice", pw("reauthwrong")))
        assert r.error_code == 58
    # raw SCRAM over TLS, good
    with RawConn.to(k, "SECURE", ctx=tls_context(pki.certs.ca)) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "admin", admin).error_code == 0

    # AdminClient: upsert a user with a password (the request carries a salted password)
    s = sec("SASL_SSL", "SCRAM-SHA-512", "admin", admin)
    adm = AdminClient({"bootstrap.servers": secure, **s.rdkafka()})
    erin = pw("erin")
    fs = adm.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), erin.encode())])
    assert fs["erin"].result(15) is None
    time.sleep(0.3)
    with RawConn.to(k, "SASL") as c:
        assert sasl_login(c, "PLAIN", "erin", erin).error_code == 0
    bad = AdminClient({"bootstrap.servers": secure, **sec("SASL_SSL", "SCRAM-SHA-512", "alice", alice).rdkafka()})
    fs = bad.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), pw("frank").encode())])
    with pytest.raises(KafkaException):
        fs["frank"].result(15)

    k.stop()  # flush everything; a clean exit is part of the contract
    # the flows really ran: successes and failures were logged
    assert len(auth_events(k)) >= 8 and len(failed_events(k)) >= 6, (len(auth_events(k)), len(failed_events(k)))
    assert "TRACE" in k.log_text() or "DEBUG" in k.log_text(), "the log level did not apply"

    leaks = []
    files = [k.log_path, pki.users_file] + [p for p in Path(k.workdir).rglob("*") if p.is_file()]
    for f in dict.fromkeys(files):
        text = f.read_bytes().decode("latin-1")
        for hit in find_secrets(text, used):
            leaks.append(f"{f}: {hit[:6]}...")
    assert not leaks, f"passwords found in kgate's files: {leaks}"
    assert len(used) >= 12
