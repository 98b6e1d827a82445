"""Hostile or broken input on secured listeners, one case per test, while a confluent-kafka producer on the
PLAINTEXT listener of the same server keeps producing (peerlib.BackgroundProducer: no delivery error, no
stall, exact content). After each test kgate is alive and a new SCRAM client authenticates and produces."""
import os
import random
import struct
import threading
import time

import pytest
from confluent_kafka import Producer

from peerlib import BackgroundProducer, consume_all, create_topic
from seclib import (ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED, ClientSec, RawConn, ScramClient, ServerClosed,
                    auth_events, client_hello, failed_events, generic_scram_message, listener_addr, plain_token,
                    provision, sasl_login, sasl_plaintext, sasl_ssl, secure_kgate, ssl_listener, tls_context,
                    wait_log, PLAIN_BAD_CREDENTIALS)

MAX_REQUEST = 1 << 20
MAX_SASL = 524288
DELAY = 0.1


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


def fresh_sasl_client(k, pki, topic):
    s = ClientSec("SASL_SSL", "SCRAM-SHA-512", "alice", pki.passwords["alice"], ca=pki.certs.ca)
    errors = []
    p = Producer({"bootstrap.servers": listener_addr(k, "SECURE"), **s.rdkafka(), "acks": "all",
                  "message.timeout.ms": 15000, "error_cb": lambda e: errors.append(str(e))})
    for i in range(10):
        p.produce(topic, f"fresh-{i}".encode())
    assert p.flush(20) == 0 and not errors, f"fresh SASL_SSL producer failed: {errors[:3]}"
    got = [v for _, _, v in consume_all(k.bootstrap, topic, 1, timeout=20)[0]]
    assert got[-10:] == [f"fresh-{i}".encode() for i in range(10)]


@pytest.fixture
def guarded(kgate_factory, pki):
    k = secure_kgate(kgate_factory, [
        ssl_listener("TLS", pki.certs, client_auth="none"),
        sasl_plaintext("SASL"),
        sasl_ssl("SECURE", pki.certs),
    ], security={"users_file": str(pki.users_file), "failed_authentication_delay_ms": int(DELAY * 1000),
                 "sasl_server_max_receive_size": MAX_SASL},
        network={"socket_request_max_bytes": MAX_REQUEST})
    bg = BackgroundProducer(k.bootstrap, "bystander", rate=1000).start()
    time.sleep(0.3)
    try:
        yield k
        time.sleep(0.3)
        k.assert_alive()
        fresh_sasl_client(k, pki, f"fresh-{time.time_ns()}")
        bg.stop()
        bg.verify(max_gap=2.0)
        k.assert_alive()
    finally:
        bg.abort()


def connect(k, listener, tls=False, pki=None, **kw):
    return RawConn.to(k, listener, ctx=tls_context(pki.certs.ca) if tls else None, **kw)


def handshake(c, mechanism):
    err, apis = c.api_versions()
    assert err == 0
    assert c.handshake(mechanism)[0] == 0


def expect_failed(c, token, message, what):
    """One SaslAuthenticate that must fail with SASL_AUTHENTICATION_FAILED(message), after the delay, then close."""
    t0 = time.monotonic()
    r = c.authenticate(token)
    took = time.monotonic() - t0
    assert (r.error_code, r.error_message) == (SASL_AUTHENTICATION_FAILED, message), f"{what}: {r}"
    assert took >= DELAY * 0.9, f"{what}: answered after {took * 1000:.0f} ms, before the failed-auth delay"
    c.wait_closed(what=what)


# ----------------------------------------------------------------------------------------------
# wrong protocol on the port


@pytest.mark.parametrize("listener", ["TLS", "SECURE"])
def test_plaintext_kafka_on_tls_port(guarded, listener):
    k = guarded
    with connect(k, listener) as c:
        c.send(18, 0, b"")  # ApiVersions v0, no TLS
        c.wait_closed(what=f"plaintext ApiVersions on {listener}", allow_tls_alert=True)
    wait_log(k, rf"TLS handshake failed: .* listener={listener}")
    assert auth_events(k) == []


@pytest.mark.parametrize("listener", ["PLAINTEXT", "SASL"])
def test_tls_client_hello_on_plaintext_port(guarded, listener):
    k = guarded
    hello = client_hello("localhost")
    # 0x16 0x03 0x01 ... read as a Kafka size prefix is ~369 MB: over both limits
    assert struct.unpack(">i", hello[:4])[0] > MAX_REQUEST
    with connect(k, listener) as c:
        c.send_raw(hello)
        c.wait_closed(what=f"ClientHello on {listener}")
    # PLAINTEXT: an oversized frame; SASL: Kafka's "invalid receive size" authentication failure.
    wait_log(k, rf"(closing connection: |Failed authentication with ).* listener={listener}")


@pytest.mark.parametrize("listener", ["TLS", "SECURE"])
def test_garbage_on_tls_port(guarded, listener):
    k = guarded
    rnd = random.Random(20261121)
    for n in (1, 7, 300, 20000):
        data = bytes(rnd.randrange(256) for _ in range(n))
        with connect(k, listener) as c:
            try:
                c.send_raw(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            c.wait_closed(what=f"{n} garbage bytes on {listener}", allow_tls_alert=True)
    # and garbage inside a good TLS session on the SASL_SSL listener (as the first SASL packet)
    with RawConn.to(k, "SECURE", ctx=tls_context(None)) as c:
        c.send_raw(b"\x00\x00\x00\x10" + bytes(rnd.randrange(256) for _ in range(16)))
        c.wait_closed(what="garbage after the TLS handshake", allow_tls_alert=True)
    assert auth_events(k) == []


# ----------------------------------------------------------------------------------------------
# the SASL state machine


@pytest.mark.parametrize("tls", [False, True], ids=["SASL_PLAINTEXT", "SASL_SSL"])
def test_request_before_authentication(guarded, pki, tls):
    # Kafka: IllegalSaslStateException before any response is built: no answer, closed after the delay
    k = guarded
    with connect(k, "SECURE" if tls else "SASL", tls=tls, pki=pki) as c:
        c.send_metadata()
        took = c.wait_closed(what="Metadata before authentication")
        assert took >= DELAY * 0.9, f"closed after {took * 1000:.0f} ms: Kafka waits the failed-auth delay"
    with connect(k, "SECURE" if tls else "SASL", tls=tls, pki=pki) as c:  # also after ApiVersions
        assert c.api_versions()[0] == 0
        c.send_metadata()
        assert c.wait_closed(what="Metadata after ApiVersions, before authentication") >= DELAY * 0.9
    assert any("Unexpected Kafka request of type Metadata during SASL handshake." in e["reason"]
               for e in failed_events(k))
    assert auth_events(k) == []


def test_authenticate_before_handshake(guarded):
    k = guarded
    with connect(k, "SASL") as c:
        c.send_authenticate(plain_token("alice", "whatever"))
        took = c.wait_closed(what="SaslAuthenticate before SaslHandshake")
        assert took >= DELAY * 0.9
    with connect(k, "SASL") as c:
        c.api_versions()
        c.send_authenticate(ScramClient("SCRAM-SHA-256", "alice", "x").first())
        assert c.wait_closed(what="SaslAuthenticate after ApiVersions, before SaslHandshake") >= DELAY * 0.9
    assert auth_events(k) == []


def test_api_versions_twice_before_authentication(guarded):
    k = guarded
    with connect(k, "SASL") as c:
        assert c.api_versions()[0] == 0
        c.send(18, 0, b"")
        c.wait_closed(what="second ApiVersions during SASL")


def test_request_during_authentication_gets_illegal_sasl_state(guarded):
    # After SaslHandshake v1 only SaslAuthenticate is valid. Kafka (SaslServerAuthenticator.handleSaslToken)
    # answers anything else with that request type's error response, ILLEGAL_SASL_STATE (34), then closes.
    k = guarded
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        r = c.call(17, 1, struct.pack(">h", 5) + b"PLAIN")  # SaslHandshake again
        assert r.i16() == ILLEGAL_SASL_STATE
        c.wait_closed(what="SaslHandshake during authentication")
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        try:
            r = c.call(18, 0, b"")  # ApiVersions v0: error_code, api_keys
        except ServerClosed:
            pytest.fail("ApiVersions during SASL authentication: kgate closed without a response; Kafka answers "
                        "ApiVersions v0 with error_code ILLEGAL_SASL_STATE (34) and no api keys, then closes")
        assert (r.i16(), r.i32(), r.remaining()) == (ILLEGAL_SASL_STATE, 0, 0)
        c.wait_closed(what="ApiVersions during authentication")


def test_sasl_requests_after_authentication_are_illegal_but_harmless(guarded, pki):
    # KafkaApis answers a SaslHandshake / SaslAuthenticate on an authenticated connection (no re-auth
    # configured) with ILLEGAL_SASL_STATE; the connection stays usable.
    k = guarded
    with connect(k, "SASL") as c:
        assert sasl_login(c, "SCRAM-SHA-256", "alice", pki.passwords["alice"]).error_code == 0
        err, _ = c.handshake("SCRAM-SHA-256")
        assert err == ILLEGAL_SASL_STATE
        r = c.authenticate(b"n,,n=alice,r=abc")
        assert (r.error_code, r.error_message) == (
            ILLEGAL_SASL_STATE, "SaslAuthenticate request received after successful authentication")
        r = c.metadata()
        assert r.i32() == 1 and r.i32() == 0


# ----------------------------------------------------------------------------------------------
# broken SCRAM


@pytest.mark.parametrize("token", [b"", b"n,,", b"n,,n=alice", b"n,,n=alice,r=", b"y,,n=alice,r=abc",
                                   b"n,,r=abc,n=alice", b"\xff\xfe"],
                         ids=["empty", "gs2-only", "no-nonce", "empty-nonce", "cbind-y", "swapped", "binary"])
def test_truncated_or_malformed_client_first(guarded, token):
    k = guarded
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        expect_failed(c, token, generic_scram_message("SCRAM-SHA-256"), f"client-first {token!r}")
    assert any("invalid client-first message" in e["reason"] for e in failed_events(k)), failed_events(k)
    assert auth_events(k) == []


def test_reordered_scram_messages(guarded, pki):
    # client-final sent first (built from a real exchange on another connection)
    k = guarded
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-512")
        sc = ScramClient("SCRAM-SHA-512", "alice", pki.passwords["alice"])
        first = c.authenticate(sc.first())
        final = sc.final(first.auth_bytes)
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-512")
        expect_failed(c, final, generic_scram_message("SCRAM-SHA-512"), "client-final as the first message")
    assert auth_events(k) == []


def test_wrong_nonce_in_client_final(guarded, pki):
    k = guarded
    for how in ("client-only", "altered"):
        with connect(k, "SASL") as c:
            handshake(c, "SCRAM-SHA-256")
            sc = ScramClient("SCRAM-SHA-256", "alice", pki.passwords["alice"])
            first = c.authenticate(sc.first())
            combined = first.auth_bytes.decode().split(",")[0][2:]
            nonce = sc.nonce if how == "client-only" else combined[:-1] + ("A" if combined[-1] != "A" else "B")
            # a correct proof for the wrong nonce: only the nonce check can refuse it
            expect_failed(c, sc.final(first.auth_bytes, nonce_override=nonce),
                          generic_scram_message("SCRAM-SHA-256"), f"client-final with {how} nonce")
    reasons = [e["reason"] for e in failed_events(k)]
    assert reasons == ["mechanism SCRAM-SHA-256: Invalid client nonce in the final client message."] * 2, reasons
    assert auth_events(k) == []


def test_bad_proof(guarded, pki):
    k = guarded
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-512")
        sc = ScramClient("SCRAM-SHA-512", "alice", pki.passwords["alice"])
        first = c.authenticate(sc.first())
        expect_failed(c, sc.final(first.auth_bytes, proof_override=bytes(64)),
                      generic_scram_message("SCRAM-SHA-512"), "all-zero proof")
    assert [e["reason"] for e in failed_events(k)] == [
        'mechanism SCRAM-SHA-512: Invalid client credentials: wrong password for user "alice"']
    # a proof of the wrong length: Kafka's xor throws IllegalArgumentException, so no response, just a close
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-512")
        sc = ScramClient("SCRAM-SHA-512", "alice", pki.passwords["alice"])
        first = c.authenticate(sc.first())
        c.send_authenticate(sc.final(first.auth_bytes, proof_override=bytes(32)))
        c.wait_closed(what="32-byte proof for SCRAM-SHA-512")
    assert auth_events(k) == []


def test_replayed_client_final_on_a_new_connection(guarded, pki):
    k = guarded
    pw = pki.passwords["alice"]
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        sc = ScramClient("SCRAM-SHA-256", "alice", pw)
        first = c.authenticate(sc.first())
        captured = sc.final(first.auth_bytes)
        r = c.authenticate(captured)
        assert r.error_code == 0
        sc.verify_server_final(r.auth_bytes)
    # the attacker replays the same client-first (same client nonce) and the captured client-final
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        replay = ScramClient("SCRAM-SHA-256", "alice", "unknown to the attacker", nonce=sc.nonce)
        first2 = c.authenticate(replay.first())
        assert first2.error_code == 0 and first2.auth_bytes != first.auth_bytes, "server nonce was reused"
        expect_failed(c, captured, generic_scram_message("SCRAM-SHA-256"), "replayed client-final")
    assert [e["reason"] for e in failed_events(k)] == [
        "mechanism SCRAM-SHA-256: Invalid client nonce in the final client message."]
    assert len(auth_events(k)) == 1


def test_oversized_sasl_token(guarded):
    k = guarded
    # before the handshake, as the first packet
    with connect(k, "SASL") as c:
        c.send_raw(struct.pack(">i", MAX_SASL + 1) + b"\x00" * 64)
        c.wait_closed(what="a 524289-byte first packet")
    # a SaslAuthenticate whose frame is over sasl_server_max_receive_size, sent in full
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        token = b"n,,n=alice,r=" + b"x" * MAX_SASL
        try:
            c.send_authenticate(token)
        except (BrokenPipeError, ConnectionResetError):
            pass
        c.wait_closed(what=f"SaslAuthenticate with a {len(token)}-byte token")
    # below the limit the same junk is read and refused as a SCRAM message, not for its size
    with connect(k, "SASL") as c:
        handshake(c, "SCRAM-SHA-256")
        expect_failed(c, b"y,,n=alice,r=" + b"x" * 500_000, generic_scram_message("SCRAM-SHA-256"),
                      "500 kB client-first")
    # on an authenticated connection the normal limit applies again
    assert auth_events(k) == []


def test_parallel_failed_logins_do_not_delay_a_good_client(guarded, pki):
    k = guarded
    create_topic(k.bootstrap, "prompt", 1)
    results, barrier = [], threading.Barrier(51)

    def bad(i):
        try:
            with connect(k, "SASL", timeout=20) as c:
                mech = "PLAIN" if i % 2 else "SCRAM-SHA-512"
                barrier.wait(10)
                handshake(c, mech)
                if mech == "PLAIN":
                    r = c.authenticate(plain_token("alice", f"guess-{i}"))
                    results.append((mech, r.error_code, r.error_message))
                else:
                    sc = ScramClient(mech, "alice", f"guess-{i}")
                    first = c.authenticate(sc.first())
                    r = c.authenticate(sc.final(first.auth_bytes, proof_override=os.urandom(64)))
                    results.append((mech, r.error_code, r.error_message))
                c.wait_closed(what="after a failed login")
        except Exception as e:  # reported below
            results.append(("exception", None, repr(e)))

    threads = [threading.Thread(target=bad, args=(i,), daemon=True) for i in range(50)]
    for t in threads:
        t.start()
    barrier.wait(10)
    # meanwhile: a correct raw SCRAM login, then a confluent-kafka SCRAM-SHA-512 producer
    t0 = time.monotonic()
    with connect(k, "SECURE", tls=True, pki=pki) as c:
        assert sasl_login(c, "SCRAM-SHA-512", "bob", pki.passwords["bob"]).error_code == 0
    raw_latency = time.monotonic() - t0
    s = ClientSec("SASL_SSL", "SCRAM-SHA-512", "bob", pki.passwords["bob"], ca=pki.certs.ca)
    acked = []
    t1 = time.monotonic()
    p = Producer({"bootstrap.servers": listener_addr(k, "SECURE"), **s.rdkafka(), "acks": "all", "linger.ms": 0})
    p.produce("prompt", b"on time", on_delivery=lambda e, m: acked.append((e, time.monotonic())))
    assert p.flush(10) == 0
    client_latency = acked[0][1] - t1
    for t in threads:
        t.join(30)
    assert acked[0][0] is None
    assert len(results) == 50, f"{len(results)} of 50 failed logins finished"
    assert sorted(set(results)) == [
        ("PLAIN", SASL_AUTHENTICATION_FAILED, PLAIN_BAD_CREDENTIALS),
        ("SCRAM-SHA-512", SASL_AUTHENTICATION_FAILED, generic_scram_message("SCRAM-SHA-512"))], sorted(set(results))
    print(f"raw login {raw_latency*1000:.0f} ms, producer first ack {client_latency*1000:.0f} ms")
    assert raw_latency < 0.75, f"a correct SCRAM login took {raw_latency * 1000:.0f} ms during 50 failed logins"
    assert client_latency < 1.5, f"producer's first ack took {client_latency * 1000:.0f} ms during 50 failed logins"
    assert len(failed_events(k, "SASL")) == 50
    assert {e["principal"] for e in auth_events(k)} == {"User:bob"}
