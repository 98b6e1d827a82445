"""Users: `kgate users add|list|remove` round trip, a running kgate picking up changes to the users file
without a restart, and AdminClient's describe/alter_user_scram_credentials for super users (then logging in
as the user created that way) and refused for everybody else."""
import stat
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                   UserScramCredentialUpsertion)

from peerlib import create_topic
from seclib import (CLUSTER_AUTHORIZATION_FAILED, SASL_AUTHENTICATION_FAILED, ClientSec, RawConn, auth_events,
                    listener_addr, new_password, provision, run_cli, sasl_login, sasl_plaintext, sasl_ssl,
                    secure_kgate, tls_context, users_add, users_list, users_remove)


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


@pytest.fixture
def users(kgate_bin, tmp_path):
    """A users file of this test's own: admin (super user) and alice."""
    f = tmp_path / "users.toml"
    pw = {"admin": new_password("admin"), "alice": new_password("alice")}
    for u, p in pw.items():
        users_add(kgate_bin, f, u, p)
    return f, pw


@pytest.fixture
def server(kgate_factory, pki, users):
    f, _ = users
    return secure_kgate(kgate_factory, [sasl_plaintext("SASL"), sasl_ssl("SECURE", pki.certs)],
                        security={"users_file": str(f), "super_users": ["User:admin"]})


def can_login(k, mechanism, user, password):
    with RawConn.to(k, "SASL") as c:
        r = sasl_login(c, mechanism, user, password)
    assert r.error_code in (0, SASL_AUTHENTICATION_FAILED), r
    return r.error_code == 0


def wait_login(k, mechanism, user, password, want: bool, timeout=6.0) -> float:
    t0 = time.monotonic()
    while True:
        if can_login(k, mechanism, user, password) == want:
            return time.monotonic() - t0
        assert time.monotonic() - t0 < timeout, \
            f"{user} {'still cannot' if want else 'can still'} log in with {mechanism} after {timeout}s"
        time.sleep(0.2)


def test_users_cli_round_trip(kgate_bin, tmp_path):
    f = tmp_path / "u" / "users.toml"
    f.parent.mkdir()
    assert users_list(kgate_bin, f) == []
    out = users_add(kgate_bin, f, "alice", "first-password-1")
    assert out == f'added user "alice" to {f}: SCRAM-SHA-256, SCRAM-SHA-512 (8192 iterations)\n'
    out = users_add(kgate_bin, f, "bob", "bob-password-2", mechanism="SCRAM-SHA-256", iterations=4096)
    assert out == f'added user "bob" to {f}: SCRAM-SHA-256 (4096 iterations)\n'
    assert users_list(kgate_bin, f) == [("alice", "SCRAM-SHA-256", 8192), ("alice", "SCRAM-SHA-512", 8192),
                                        ("bob", "SCRAM-SHA-256", 4096)]
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    out = users_add(kgate_bin, f, "alice", "second-password-3", mechanism="SCRAM-SHA-512", iterations=16384)
    assert out.startswith('updated user "alice" in ')
    assert users_list(kgate_bin, f) == [("alice", "SCRAM-SHA-256", 8192), ("alice", "SCRAM-SHA-512", 16384),
                                        ("bob", "SCRAM-SHA-256", 4096)]
    users_remove(kgate_bin, f, "alice", mechanism="SCRAM-SHA-256")
    assert users_list(kgate_bin, f) == [("alice", "SCRAM-SHA-512", 16384), ("bob", "SCRAM-SHA-256", 4096)]
    users_remove(kgate_bin, f, "bob")
    assert users_list(kgate_bin, f) == [("alice", "SCRAM-SHA-512", 16384)]
    text = f.read_text()
    for pw in ("first-password-1", "bob-password-2", "second-password-3"):
        assert pw not in text
    # refusals, with sysexits codes
    cp = run_cli(kgate_bin, "users", "remove", "nobody", "--users-file", str(f), check=False)
    assert cp.returncode == 1 and "nobody" in cp.stderr, (cp.returncode, cp.stderr)
    cp = run_cli(kgate_bin, "users", "add", "carol", "--password-stdin", "--iterations", "1000", "--users-file",
                 str(f), input="pw-carol-000\n", check=False)
    assert cp.returncode != 0 and "1000" in cp.stderr, (cp.returncode, cp.stderr)
    cp = run_cli(kgate_bin, "users", "add", "carol", "--password-stdin", "--users-file", str(f), input="\n",
                 check=False)
    assert cp.returncode == 64 and "empty" in cp.stderr, (cp.returncode, cp.stderr)
    cp = run_cli(kgate_bin, "users", "add", "carol", "--users-file", str(f), input="pw-carol-000\n", check=False)
    assert cp.returncode == 64 and "--password-stdin" in cp.stderr  # stdin is not a terminal
    assert users_list(kgate_bin, f) == [("alice", "SCRAM-SHA-512", 16384)]


def test_running_server_reloads_the_users_file(server, users, kgate_bin):
    k = server
    f, pw = users
    carol = new_password("carol")
    assert not can_login(k, "SCRAM-SHA-256", "carol", carol)
    users_add(kgate_bin, f, "carol", carol)
    took = wait_login(k, "SCRAM-SHA-256", "carol", carol, want=True)
    assert took < 5, f"new user usable after {took:.1f}s"
    assert can_login(k, "SCRAM-SHA-512", "carol", carol) and can_login(k, "PLAIN", "carol", carol)
    # an authenticated connection survives the change below (Kafka does not re-check live sessions)
    live = RawConn.to(k, "SASL")
    assert sasl_login(live, "PLAIN", "carol", carol).error_code == 0
    # new password: the old one stops working, the new one works
    carol2 = new_password("carol2")
    users_add(kgate_bin, f, "carol", carol2)
    wait_login(k, "PLAIN", "carol", carol, want=False)
    assert can_login(k, "SCRAM-SHA-512", "carol", carol2)
    # removed: nobody gets in as carol
    users_remove(kgate_bin, f, "carol")
    wait_login(k, "SCRAM-SHA-512", "carol", carol2, want=False)
    assert not can_login(k, "PLAIN", "carol", carol2)
    r = live.metadata()
    assert r.i32() == 1
    live.close()
    assert can_login(k, "SCRAM-SHA-256", "alice", pw["alice"])  # others untouched
    assert "users file reloaded" in k.log_text()


def admin_client(k, pki, user, password):
    s = ClientSec("SASL_SSL", "SCRAM-SHA-512", user, password, ca=pki.certs.ca)
    return AdminClient({"bootstrap.servers": listener_addr(k, "SECURE"), **s.rdkafka()})


def infos(desc):
    return sorted((i.mechanism.name, i.iterations) for i in desc.scram_credential_infos)


def test_admin_client_manages_users_as_super_user(server, pki, users, kgate_bin):
    k = server
    f, pw = users
    a = admin_client(k, pki, "admin", pw["admin"])
    all_users = a.describe_user_scram_credentials().result(15)
    assert {u: infos(d) for u, d in all_users.items()} == {
        "admin": [("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 8192)],
        "alice": [("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 8192)]}
    fs = a.describe_user_scram_credentials(["alice", "ghost"])
    assert infos(fs["alice"].result(15)) == [("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 8192)]
    with pytest.raises(KafkaException) as ei:
        fs["ghost"].result(15)
    assert ei.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    assert "Attempt to describe a user credential that does not exist: ghost" in str(ei.value)

    # create dave (SCRAM-SHA-256 only, 4096 iterations), then dave logs in with a real client
    dave = new_password("dave")
    fs = a.alter_user_scram_credentials([UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), dave.encode())])
    assert fs["dave"].result(15) is None
    assert infos(a.describe_user_scram_credentials(["dave"])["dave"].result(15)) == [("SCRAM_SHA_256", 4096)]
    assert ("dave", "SCRAM-SHA-256", 4096) in users_list(kgate_bin, f), "not written to the users file"
    create_topic(k.bootstrap, "by-dave", 1)
    s = ClientSec("SASL_SSL", "SCRAM-SHA-256", "dave", dave, ca=pki.certs.ca)
    errors = []
    p = Producer({"bootstrap.servers": listener_addr(k, "SECURE"), **s.rdkafka(), "acks": "all",
                  "error_cb": lambda e: errors.append(str(e))})
    p.produce("by-dave", b"hello from dave")
    assert p.flush(15) == 0 and not errors, errors
    assert ("User:dave", "SCRAM-SHA-256") in {(e["principal"], e["mechanism"]) for e in auth_events(k)}
    assert not can_login(k, "SCRAM-SHA-512", "dave", dave)  # no SHA-512 credential was created

    # Kafka's validation of upsertions
    fs = a.alter_user_scram_credentials([
        UserScramCredentialUpsertion("erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 1000), b"pw-erin-1"),
        UserScramCredentialUpsertion("frank", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 20000), b"pw-fr-2"),
    ])
    for user, text in (("erin", "Too few iterations"), ("frank", "Too many iterations")):
        with pytest.raises(KafkaException) as ei:
            fs[user].result(15)
        assert ei.value.args[0].code() == KafkaError.UNACCEPTABLE_CREDENTIAL and text in str(ei.value), ei.value

    # delete dave: he can no longer log in
    fs = a.alter_user_scram_credentials([UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)])
    assert fs["dave"].result(15) is None
    wait_login(k, "SCRAM-SHA-256", "dave", dave, want=False, timeout=3)
    assert all(u != "dave" for u, _, _ in users_list(kgate_bin, f))


def test_admin_client_as_normal_user_is_refused(server, pki, users, kgate_bin):
    k = server
    f, pw = users
    a = admin_client(k, pki, "alice", pw["alice"])
    fs = a.alter_user_scram_credentials([
        UserScramCredentialUpsertion("mallory", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"pw-m-123"),
        UserScramCredentialDeletion("admin", ScramMechanism.SCRAM_SHA_512)])
    for user in ("mallory", "admin"):
        with pytest.raises(KafkaException) as ei:
            fs[user].result(15)
        assert ei.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED == CLUSTER_AUTHORIZATION_FAILED
    assert [u for u, _, _ in users_list(kgate_bin, f)] == ["admin", "admin", "alice", "alice"]
    assert can_login(k, "SCRAM-SHA-512", "admin", pw["admin"])
    # describe: raw (librdkafka crashes on a request-level error in this response, see seclib)
    with RawConn.to(k, "SECURE", ctx=tls_context(pki.certs.ca)) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "alice", pw["alice"]).error_code == 0
        d = c.describe_user_scram_credentials(None)
        assert d["error_code"] == CLUSTER_AUTHORIZATION_FAILED, d
        assert all(r["credentials"] == [] for r in d["results"]), "credentials leaked to a non-super user"


def test_describe_refusal_is_kafkas_response(server, pki, users):
    # Apache Kafka (KafkaApis.handleDescribeUserScramCredentialsRequest -> DescribeUserScramCredentialsRequest
    # .getErrorResponse(CLUSTER_AUTHORIZATION_FAILED.exception)): request-level error 31 with a null message
    # (ApiError.fromThrowable drops the generic "Cluster authorization failed."), and one result per requested
    # user carrying the same error (user name left empty).
    k = server
    _, pw = users
    with RawConn.to(k, "SASL") as c:
        assert sasl_login(c, "PLAIN", "alice", pw["alice"]).error_code == 0
        d = c.describe_user_scram_credentials(["admin", "alice"])
    assert d == {"throttle_ms": 0, "error_code": 31, "error_message": None, "results": [
        {"user": "", "error_code": 31, "error_message": None, "credentials": []},
        {"user": "", "error_code": 31, "error_message": None, "credentials": []}]}, d
