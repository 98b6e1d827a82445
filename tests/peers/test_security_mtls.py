"""mTLS on SSL listeners with confluent-kafka and kcat: the principal comes from the client certificate
(`kgate certs dev --client alice`: subject CN=alice,OU=kgate-dev,O=kgate) through
security.ssl_principal_mapping_rules; no certificate (or one from another CA) with client_auth=required is
refused in the handshake; client_auth=requested without a certificate is User:ANONYMOUS."""
import json
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ScramMechanism, UserScramCredentialDeletion

from peerlib import create_topic, kcat
from seclib import (CLUSTER_AUTHORIZATION_FAILED, ClientSec, RawConn, auth_events, cert_events, listener_addr,
                    provision, secure_kgate, ssl_listener, tls_context, users_list)

RULE = "RULE:^CN=(.*?),OU=.*$/$1/"
N = 200


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


def mtls_server(kgate_factory, pki, rules, client_auth="required", super_users=()):
    return secure_kgate(kgate_factory, [ssl_listener("MTLS", pki.certs, client_auth=client_auth, host="localhost")],
                        security={"users_file": str(pki.users_file), "super_users": list(super_users),
                                  "ssl_principal_mapping_rules": rules})


def sec_for(pki, who):
    cert, key = (None, None) if who is None else (pki.other.client(who) if who == "mallory" else pki.certs.client(who))
    return ClientSec("SSL", ca=pki.certs.ca, verify_hostname=True, cert=cert, key=key)


def roundtrip_confluent(bootstrap, sec, topic, group):
    errors = []
    base = {"bootstrap.servers": bootstrap, **sec.rdkafka(), "error_cb": lambda e: errors.append(str(e))}
    p = Producer({**base, "acks": "all"})
    values = [f"{topic}-{i}" for i in range(N)]
    for v in values:
        p.produce(topic, v.encode())
    assert p.flush(30) == 0, errors[:5]
    c = Consumer({**base, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 60
        while len(got) < N and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                assert not m.error(), m.error()
                got.append(m.value().decode())
        c.commit(asynchronous=False)
    finally:
        c.close()
    assert got == values
    assert not errors, errors[:5]


def roundtrip_kcat(bootstrap, sec, topic, group):
    values = [f"{topic}-{i}" for i in range(N)]
    kcat("-b", bootstrap, *sec.kcat_args(), "-P", "-t", topic, "-X", "acks=all",
         input=("\n".join(values) + "\n").encode())
    out = kcat("-b", bootstrap, *sec.kcat_args(), "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", "-J",
               topic, timeout=90)
    assert [json.loads(line)["payload"] for line in out.stdout.decode().splitlines() if line.strip()] == values


ROUNDTRIPS = {"confluent": roundtrip_confluent, "kcat": roundtrip_kcat}


@pytest.mark.parametrize("client", list(ROUNDTRIPS))
@pytest.mark.parametrize("rules,alice,bob", [
    ([RULE, "DEFAULT"], "User:alice", "User:bob"),
    (["DEFAULT"], "User:CN=alice,OU=kgate-dev,O=kgate", "User:CN=bob,OU=kgate-dev,O=kgate"),
], ids=["rule", "default"])
def test_client_certificate_principal(kgate_factory, pki, client, rules, alice, bob):
    k = mtls_server(kgate_factory, pki, rules)
    bootstrap = listener_addr(k, "MTLS")
    assert bootstrap.startswith("localhost:")
    create_topic(k.bootstrap, "mtls", 1)
    ROUNDTRIPS[client](bootstrap, sec_for(pki, "alice"), "mtls", f"g-{client}")
    principals = {e["principal"] for e in cert_events(k, "MTLS")}
    assert principals == {alice}, cert_events(k)
    # a different certificate gives a different principal (it is read from the certificate)
    with RawConn("127.0.0.1", k.ports["MTLS"], ctx=tls_context(pki.certs.ca, cert=pki.certs.client("bob")[0],
                                                                 key=pki.certs.client("bob")[1]),
                 server_hostname="localhost") as c:
        assert c.api_versions()[0] == 0
    deadline = time.monotonic() + 5
    while bob not in {e["principal"] for e in cert_events(k)} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {e["principal"] for e in cert_events(k)} == {alice, bob}
    assert auth_events(k) == []  # no SASL on this listener


@pytest.mark.parametrize("client", ["confluent", "kcat"])
@pytest.mark.parametrize("who", [None, "mallory"], ids=["no-cert", "untrusted-cert"])
def test_required_client_certificate_refuses_handshake(kgate_factory, pki, client, who):
    k = mtls_server(kgate_factory, pki, [RULE, "DEFAULT"])
    bootstrap = listener_addr(k, "MTLS")
    sec = sec_for(pki, who)
    if client == "kcat":
        cp = kcat("-b", bootstrap, *sec.kcat_args(), "-L", "-m", "4", check=False, timeout=30)
        assert cp.returncode != 0
        text = cp.stderr.decode(errors="replace")
    else:
        errors = []
        a = AdminClient({"bootstrap.servers": bootstrap, **sec.rdkafka(), "error_cb": lambda e: errors.append(str(e))})
        with pytest.raises(KafkaException):
            a.list_topics(timeout=4)
        a.poll(0.5)
        text = "\n".join(errors)
    if who is None:
        # TLS 1.3: the server's certificate_required alert (116)
        assert "certificate required" in text, text[-2000:]
        log_reason = "TLS handshake failed: peer sent no certificates"
    else:
        # Every dev CA has the subject "CN=kgate development CA,OU=kgate-dev,O=kgate", so mallory's certificate
        # names the trusted CA as its issuer and fails on the signature: alert decrypt_error (51).
        assert "alert decrypt error" in text, text[-2000:]
        log_reason = "TLS handshake failed: invalid peer certificate: BadSignature"
    assert log_reason in k.log_text(), k.log_tail()
    assert cert_events(k) == []
    k.assert_alive()


def test_requested_client_auth_without_certificate_is_anonymous(kgate_factory, pki):
    # super_users = [User:ANONYMOUS] makes the principal observable: describing SCRAM users needs a super user.
    k = mtls_server(kgate_factory, pki, [RULE, "DEFAULT"], client_auth="requested", super_users=["User:ANONYMOUS"])
    bootstrap = listener_addr(k, "MTLS")
    create_topic(k.bootstrap, "anon", 1)
    roundtrip_confluent(bootstrap, sec_for(pki, None), "anon", "g-anon")
    assert cert_events(k) == [], "no certificate was sent, yet kgate logged a certificate principal"

    anon = AdminClient({"bootstrap.servers": bootstrap, **sec_for(pki, None).rdkafka()})
    desc = anon.describe_user_scram_credentials().result(15)
    assert sorted(desc) == ["admin", "alice", "bob"]

    # alice's certificate on the same listener: User:alice, who is not a super user. (Not through
    # confluent-kafka's describe: librdkafka 2.16 crashes on any request-level error in that response, see
    # seclib.LIBRDKAFKA_DESCRIBE_SCRAM_CRASH; alter has per-user errors and works.)
    alice = AdminClient({"bootstrap.servers": bootstrap, **sec_for(pki, "alice").rdkafka()})
    fs = alice.alter_user_scram_credentials([UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)])
    with pytest.raises(KafkaException) as ei:
        fs["bob"].result(15)
    assert ei.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED == CLUSTER_AUTHORIZATION_FAILED
    cert, key = pki.certs.client("alice")
    with RawConn("127.0.0.1", k.ports["MTLS"], ctx=tls_context(pki.certs.ca, cert=cert, key=key),
                 server_hostname="localhost") as c:
        d = c.describe_user_scram_credentials(None)
        assert d["error_code"] == CLUSTER_AUTHORIZATION_FAILED and d["results"] == [], d
    assert {e["principal"] for e in cert_events(k, "MTLS")} == {"User:alice"}
    assert ("bob", "SCRAM-SHA-256", 8192) in users_list(k.binary, pki.users_file)  # nothing was deleted
