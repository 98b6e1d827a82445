"""Real GSSAPI clients against kgate's Kerberos listeners: kcat (librdkafka 2.0.2 + Cyrus SASL),
confluent-kafka 2.0.2 (built against Debian's librdkafka) and kafka-python with python-gssapi each
authenticate as client@EXAMPLE.COM over SASL_PLAINTEXT and SASL_SSL, produce, and consume in a consumer
group. kgate must log the principal the rules make of the Kerberos identity.

Every test would fail if kgate accepted the wrong identity, mapped it wrongly, lost or altered a record,
or did not serve the group: the values are compared exactly, the group's committed offset is read back
over the PLAINTEXT listener, and the authentication log lines are matched field by field.
"""
from __future__ import annotations

import pytest

from krblib import (CLIENT_PRINCIPAL, LISTENER_FOR, certs, client_creds, committed_offset, gss_auth,  # noqa: F401
                    gss_failures, gss_kgate, kcat_roundtrip, kdc, py_client, unique)
from seclib import listener_addr

CLIENTS = ["kcat", "confluent", "kafka-python"]
PROTOCOLS = ["SASL_PLAINTEXT", "SASL_SSL"]

SHORT_RULE = "RULE:[1:$1@$0](.*@EXAMPLE.COM)s/@.*//"
# Maps to something else. (RULE:[1:$1@$0](client@EXAMPLE.COM)s/client/svc-client/ would keep the realm:
# "svc-client@EXAMPLE.COM" is a non-simple name, which Kafka, and kgate, refuse: see test_kerberos_failures.)
SVC_RULE = "RULE:[1:$1@$0](client@EXAMPLE.COM)s/client@.*/svc-client/"


def roundtrip(client: str, k, protocol: str, env: dict, ca: str) -> tuple[str, str, list[str], list[str]]:
    """Produce 5 values through the GSSAPI listener of `protocol`, consume them in a new group; returns
    (topic, group, values sent, values consumed)."""
    listener = LISTENER_FOR[protocol]
    bootstrap = listener_addr(k, listener)  # localhost:PORT, the advertised host: kafka/localhost
    assert bootstrap.startswith("localhost:")
    topic, group = unique(f"krb-{client}"), unique(f"krb-{client}-group")
    values = [f"{client}|{protocol}|{i}|{topic}" for i in range(5)]
    if client == "kcat":
        got = kcat_roundtrip(bootstrap, topic, group, values, env, protocol, ca)
    else:
        res = py_client(client, "roundtrip", bootstrap, env, protocol=protocol,
                        ca=ca if protocol == "SASL_SSL" else None, topic=topic, group=group, values=values)
        assert res["produced"] == [[0, i] for i in range(5)], f"{client}: produced {res['produced']}; errors:\n" + \
            "\n".join(res["errors"][:20])
        assert res.get("assigned") == [[topic, 0]], f"{client}: group assignment {res.get('assigned')}"
        got = res["consumed"]
        if client == "confluent":
            assert res["version"] == ["2.0.2", "2.0.2"], f"not the GSSAPI build of confluent-kafka: {res['version']}"
    return topic, group, values, got


def check_principal(k, protocol: str, principal: str) -> None:
    listener = LISTENER_FOR[protocol]
    events = gss_auth(k, listener)
    assert events, f"kgate logged no GSSAPI authentication on {listener}; log tail:\n{k.log_tail(30)}"
    wrong = [e for e in events if (e["principal"], e["identity"]) != (principal, CLIENT_PRINCIPAL)]
    assert not wrong, f"want principal={principal} identity={CLIENT_PRINCIPAL} on every connection, got {wrong}"
    others = [e for e in gss_auth(k) if e["listener"] != listener]
    assert not others, f"authentications on other listeners: {others}"
    assert not gss_failures(k), f"failed authentications: {gss_failures(k)}"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("client", CLIENTS)
def test_gssapi_produce_consume_group(client, protocol, kgate_factory, kdc, client_creds, certs):
    """Default rules (DEFAULT): client@EXAMPLE.COM in the default realm becomes User:client."""
    k = gss_kgate(kgate_factory, kdc, certs=certs)
    topic, group, values, got = roundtrip(client, k, protocol, client_creds, certs.ca)
    assert got == values, f"{client} over {protocol}: consumed {got}, produced {values}"
    assert committed_offset(k, group, topic) == len(values), f"group {group} did not commit offset {len(values)}"
    check_principal(k, protocol, "User:client")
    k.assert_alive()


@pytest.mark.parametrize("rule,principal", [(SHORT_RULE, "User:client"), (SVC_RULE, "User:svc-client")],
                         ids=["short-name", "svc-client"])
@pytest.mark.parametrize("client", CLIENTS)
def test_gssapi_principal_to_local_rules(client, rule, principal, kgate_factory, kdc, client_creds, certs):
    """[kerberos] principal_to_local_rules decide the principal (first match wins; no DEFAULT needed)."""
    protocol = "SASL_SSL" if principal == "User:svc-client" else "SASL_PLAINTEXT"
    k = gss_kgate(kgate_factory, kdc, certs=certs, rules=[rule])
    topic, group, values, got = roundtrip(client, k, protocol, client_creds, certs.ca)
    assert got == values, f"{client}: consumed {got}, produced {values}"
    assert committed_offset(k, group, topic) == len(values)
    check_principal(k, protocol, principal)
