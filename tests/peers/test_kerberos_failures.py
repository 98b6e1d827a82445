"""Kerberos failures reproduced with real clients, each asserting the text the client shows (and, where the
failure reaches kgate, kgate's log reason). The same setups are diagnosed by `kgate doctor kerberos` in
test_kerberos_doctor.py.

Clients: kcat (librdkafka 2.0.2 + Cyrus SASL), confluent-kafka 2.0.2 and kafka-python + python-gssapi
(.venv-gssapi, krb_client.py). Their texts differ in framing but carry the same MIT krb5 message.
"""
from __future__ import annotations

import re
import socket
import time

import pytest

from krblib import (CLIENT_PRINCIPAL, GSS, REALM, client_creds, client_env, client_text, faketime_env,  # noqa: F401
                    fresh_kdc, gss_auth, gss_failures, gss_kgate, kcat_gss_args, kcat_metadata, kdc, kinit,
                    py_client, run_until, serve_once, start_gss, wait_for)

CLIENTS = ["kcat", "confluent", "kafka-python"]

# What librdkafka reports when the broker answers SaslAuthenticate with SASL_AUTHENTICATION_FAILED.
RDKAFKA_SASL_FAILED = ("SASL authentication error: Authentication failed during authentication due to invalid "
                       "credentials with SASL mechanism GSSAPI")


def client_attempt(client: str, bootstrap: str, env: dict, service_name: str = "kafka",
                   kcat_extra: list[str] | None = None) -> str:
    """One metadata request that is expected to fail; returns everything the client reported."""
    if client == "kcat":
        gss = kcat_extra if kcat_extra is not None else kcat_gss_args(service_name=service_name)
        cp = kcat_metadata(bootstrap, env, gss, timeout_s=3)
        assert cp.returncode != 0, f"kcat -L succeeded:\n{cp.stdout}\n{cp.stderr}"
        return cp.stderr
    res = py_client(client, "metadata", bootstrap, env, service_name=service_name, timeout=4)
    assert not res["ok"], f"{client} got metadata: {res}"
    return client_text(res)


def assert_client_said(client: str, text: str, *needles: str) -> None:
    for n in needles:
        assert n in text, f"{client} did not report {n!r}; it said:\n{text[-4000:]}"


# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_client_dials_host_without_principal(client, kgate_factory, kdc, client_creds):
    """bootstrap 127.0.0.1:PORT while the KDC only has kafka/localhost: the client asks for
    kafka/127.0.0.1@EXAMPLE.COM (librdkafka and kafka-python use the host as given) and the KDC has none."""
    k = gss_kgate(kgate_factory, kdc)
    text = client_attempt(client, f"127.0.0.1:{k.ports[GSS]}", client_creds)
    assert_client_said(client, text, f"Server kafka/127.0.0.1@{REALM} not found in Kerberos database")
    if client != "kafka-python":
        assert_client_said(client, text, "GSSAPI Error: Unspecified GSS failure")
    assert not gss_auth(k), "kgate authenticated a client that had no service ticket"
    k.assert_alive()


def test_kgate_refuses_to_start_when_keytab_lacks_advertised_host(kgate_factory, kgate_bin, fresh_kdc, client_creds,
                                                                  tmp_path):
    """Advertised host 127.0.0.1, keytab with kafka/localhost only: kgate exits 64 before binding, names
    kafka/127.0.0.1@EXAMPLE.COM and the kadmin commands that create it. Running exactly those commands fixes it."""
    k = gss_kgate(kgate_factory, fresh_kdc, host="127.0.0.1", start=False)
    cp = serve_once(kgate_bin, k)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 64, f"kgate serve exit {cp.returncode} (want 64):\n{out}"
    principal = f"kafka/127.0.0.1@{REALM}"
    assert principal in cp.stderr, f"kgate's refusal does not name {principal}:\n{out}"
    assert str(fresh_kdc.kafka_keytab) in cp.stderr, f"kgate's refusal does not name the keytab:\n{out}"
    cmds = re.findall(r'kadmin -q "([^"]+)"', cp.stderr)
    assert any(c.startswith("addprinc") and principal in c for c in cmds) and \
        any(c.startswith(f"ktadd -k {fresh_kdc.kafka_keytab}") and principal in c for c in cmds), \
        f"kgate does not say how to create {principal} (addprinc + ktadd into the keytab):\n{out}"
    with pytest.raises(OSError):  # refused before binding any port
        socket.create_connection(("127.0.0.1", k.ports[GSS]), timeout=1).close()

    # Follow the advice literally (kadmin.local instead of kadmin: same queries), then kgate starts and a
    # client that dials 127.0.0.1 authenticates.
    for c in cmds:
        fresh_kdc.kadmin(c)
    start_gss(k)
    env = kinit(fresh_kdc, tmp_path / "cc")
    cp = kcat_metadata(f"127.0.0.1:{k.ports[GSS]}", env, kcat_gss_args())
    assert cp.returncode == 0, f"kcat -L via 127.0.0.1 after the fix:\n{cp.stderr}"
    ev = gss_auth(k, GSS)
    assert ev and ev[0]["principal"] == "User:client" and ev[0]["identity"] == CLIENT_PRINCIPAL, ev


@pytest.mark.parametrize("client", CLIENTS)
def test_stale_kvno(client, kgate_factory, fresh_kdc, tmp_path):
    """The service key is changed in the KDC (kvno 2) after the keytab was exported (kvno 1): tickets are
    encrypted with a key kgate does not have. kgate answers SASL_AUTHENTICATION_FAILED and logs why."""
    k = gss_kgate(kgate_factory, fresh_kdc, protocols=("SASL_PLAINTEXT",))
    assert fresh_kdc.keytab_kvnos(fresh_kdc.kafka_keytab, f"kafka/localhost@{REALM}") == {1}
    fresh_kdc.kadmin(f"cpw -randkey kafka/localhost@{REALM}")
    env = kinit(fresh_kdc, tmp_path / "cc")
    text = client_attempt(client, f"localhost:{k.ports[GSS]}", env)
    if client == "kafka-python":
        assert_client_said(client, text, "SaslAuthenticationFailedError",
                           "Authentication failed during authentication due to invalid credentials with SASL "
                           "mechanism GSSAPI")
    else:
        assert_client_said(client, text, RDKAFKA_SASL_FAILED)
    fails = wait_for(lambda: gss_failures(k, GSS), what="kgate's failed-authentication line")
    reason = fails[0]["reason"]
    assert re.search(r"kvno 2\b.*keytab|key version", reason, re.I), \
        f"kgate's reason does not name the key version problem: {reason}"
    assert "[Kerberos error 44]" in reason or "decrypt" in reason.lower(), reason
    assert not gss_auth(k), "kgate authenticated a ticket it cannot decrypt"
    k.assert_alive()


@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_service_name(client, kgate_factory, kdc, client_creds):
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    text = client_attempt(client, f"localhost:{k.ports[GSS]}", client_creds, service_name="kafak")
    assert_client_said(client, text, f"Server kafak/localhost@{REALM} not found in Kerberos database")
    assert not gss_auth(k)


@pytest.mark.parametrize("client", CLIENTS)
def test_wrong_realm_for_broker_host(client, kgate_factory, kdc, tmp_path):
    """The client's krb5.conf puts the broker host in another realm ([domain_realm] localhost = OTHER.COM):
    it asks its KDC for a cross-realm ticket that does not exist."""
    conf = tmp_path / "krb5-other-realm.conf"
    text = kdc.krb5_conf.read_text()
    assert f"  localhost = {REALM}" in text
    conf.write_text(text.replace(f"  localhost = {REALM}", "  localhost = OTHER.COM"))
    env = kinit(kdc, tmp_path / "cc", krb5_conf=conf)
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    out = client_attempt(client, f"localhost:{k.ports[GSS]}", env)
    assert_client_said(client, out, f"Server krbtgt/OTHER.COM@{REALM} not found in Kerberos database")
    assert not gss_auth(k)


def test_wrong_realm_in_client_principal(kgate_factory, kdc, tmp_path):
    """librdkafka logging in from a keytab (its own kinit) as client@EXAMPLE.ORG: the keytab has
    client@EXAMPLE.COM only."""
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    env = client_env(kdc, tmp_path / "cc")
    gss = kcat_gss_args(kinit_cmd=None, extra={"sasl.kerberos.keytab": str(kdc.client_keytab),
                                                "sasl.kerberos.principal": "client@EXAMPLE.ORG"})
    text = client_attempt("kcat", f"localhost:{k.ports[GSS]}", env, kcat_extra=gss)
    assert_client_said("kcat", text, "Keytab contains no suitable keys for client@EXAMPLE.ORG",
                       "Kerberos ticket refresh failed")
    assert not gss_auth(k)


@pytest.mark.parametrize("client", CLIENTS)
def test_missing_ticket(client, kgate_factory, kdc, tmp_path):
    """No kinit: the ticket cache does not exist."""
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    cache = tmp_path / "never-kinit.ccache"
    env = client_env(kdc, cache)
    text = client_attempt(client, f"localhost:{k.ports[GSS]}", env)
    assert_client_said(client, text, f"No Kerberos credentials available (default cache: FILE:{cache})")
    assert not gss_auth(k)


@pytest.fixture(scope="module")
def expired_creds(kdc, tmp_path_factory) -> dict:
    """A ticket cache whose TGT (2 s lifetime) has expired."""
    env = kinit(kdc, tmp_path_factory.mktemp("expired") / "cc", lifetime="2s")
    time.sleep(3)
    return env


@pytest.mark.parametrize("client", CLIENTS)
def test_expired_ticket(client, kgate_factory, kdc, expired_creds):
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    text = client_attempt(client, f"localhost:{k.ports[GSS]}", expired_creds)
    assert_client_said(client, text, "Ticket expired")
    assert not gss_auth(k)


@pytest.mark.parametrize("client", ["kcat", "kafka-python"])
def test_clock_skew(client, kgate_factory, kdc, tmp_path):
    """The client's clock is an hour ahead (libfaketime, like `faketime -f +1h`); the TGT was obtained
    with the real clock. The KDC refuses the service-ticket request: "Clock skew too great".
    librdkafka under libfaketime 0.9.10 never returns from its timed waits after the first attempt (kcat
    hangs), so kcat is read until the error appears and then killed by its PID; confluent-kafka has the
    same librdkafka/Cyrus code path as kcat and is not run under libfaketime."""
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    env = kinit(kdc, tmp_path / "cc")
    bootstrap = f"localhost:{k.ports[GSS]}"
    if client == "kcat":
        text = run_until(["kcat", "-b", bootstrap, *kcat_gss_args(), "-L", "-m", "5"], {**env, **faketime_env("+1h")},
                         r"Clock skew too great", timeout=30, workdir=tmp_path)
        assert_client_said(client, text, "GSSAPI Error: Unspecified GSS failure", "Clock skew too great")
    else:
        res = py_client(client, "metadata", bootstrap, env, timeout=4, wrapper_env=faketime_env("+1h"))
        assert not res["ok"], res
        assert_client_said(client, client_text(res), "Clock skew too great")
    assert not gss_auth(k)


@pytest.mark.parametrize("rules,reason", [
    # Keeps the realm: "svc-client@EXAMPLE.COM" is not a simple name (Kafka's KerberosShortNamer refuses it).
    (["RULE:[1:$1@$0](client@EXAMPLE.COM)s/client/svc-client/"],
     "Non-simple name svc-client@EXAMPLE.COM after auth_to_local rule"),
    # No rule applies (and no DEFAULT): Kafka's NoMatchingRule.
    (["RULE:[1:$1@$0](.*@OTHER.COM)s/@.*//"], "No rules apply to client@EXAMPLE.COM"),
], ids=["non-simple-name", "no-matching-rule"])
def test_principal_to_local_rule_failure(rules, reason, kgate_factory, kdc, client_creds):
    """A Kerberos login that the rules cannot map fails the authentication, as in Kafka."""
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",), rules=rules)
    text = client_attempt("kcat", f"localhost:{k.ports[GSS]}", client_creds)
    assert_client_said("kcat", text, RDKAFKA_SASL_FAILED)
    fails = wait_for(lambda: gss_failures(k, GSS), what="kgate's failed-authentication line")
    assert "Failed to set name for 'client@EXAMPLE.COM' based on Kerberos authentication rules" in fails[0]["reason"]
    assert reason in fails[0]["reason"], fails[0]["reason"]
    assert not gss_auth(k)

