"""kgate's ACL decisions against Apache Kafka 4.4.0's StandardAuthorizer, binding for binding.

The same bindings go to a Kafka node (CreateAcls through the AdminClient, as kafka-acls does) and into a kgate
policy file (policies/acls.toml's format, one table per binding). Kafka is then asked, as each user over
SASL/PLAIN, for the operations it authorizes on every topic and on the cluster (Metadata's and
DescribeCluster's authorizedOperations, which Kafka computes with its authorizer for that principal and
address); `kgate acls check` is asked the same for every operation. The answers must be identical. The
bindings cover LITERAL, PREFIXED and the LITERAL "*" wildcard, User:*, a host-restricted binding that applies
and one that does not, DENY over ALLOW, DENY READ leaving DESCRIBE, implied operations (READ/WRITE/ALTER ->
DESCRIBE, ALTER_CONFIGS -> DESCRIBE_CONFIGS, ALL) and super users.
"""
from __future__ import annotations

import subprocess
import time

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AclBinding, AdminClient, NewTopic

from apache_kafka import Listener
from peerlib import to_toml

USERS = {"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret", "root": "root-secret"}
TOPICS = ["orders", "orders-eu", "secret-x", "public", "pay.in", "pay.out", "payments"]
TOPIC_OPS = ["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"]
CLUSTER_OPS = ["CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"]

# (permission, resource type, pattern, name, principal, host, operation)
BINDINGS = [
    ("ALLOW", "TOPIC", "LITERAL", "orders", "User:alice", "*", "READ"),
    ("ALLOW", "TOPIC", "PREFIXED", "orders", "User:alice", "*", "WRITE"),
    ("DENY", "TOPIC", "LITERAL", "orders-eu", "User:alice", "*", "WRITE"),
    ("ALLOW", "TOPIC", "LITERAL", "*", "User:*", "*", "DESCRIBE"),
    ("DENY", "TOPIC", "PREFIXED", "secret", "User:*", "*", "ALL"),
    ("ALLOW", "TOPIC", "LITERAL", "public", "User:bob", "*", "ALTER_CONFIGS"),
    ("ALLOW", "TOPIC", "PREFIXED", "pay.", "User:bob", "*", "ALL"),
    ("DENY", "TOPIC", "LITERAL", "pay.in", "User:bob", "127.0.0.1", "READ"),
    ("ALLOW", "TOPIC", "LITERAL", "payments", "User:carol", "10.0.0.9", "CREATE"),
    ("ALLOW", "TOPIC", "LITERAL", "payments", "User:carol", "127.0.0.1", "DELETE"),
    ("ALLOW", "CLUSTER", "LITERAL", "kafka-cluster", "User:alice", "*", "IDEMPOTENT_WRITE"),
    ("ALLOW", "CLUSTER", "LITERAL", "kafka-cluster", "User:bob", "*", "ALTER"),
    ("ALLOW", "CLUSTER", "LITERAL", "kafka-cluster", "User:*", "*", "DESCRIBE_CONFIGS"),
    ("DENY", "CLUSTER", "LITERAL", "kafka-cluster", "User:carol", "*", "DESCRIBE_CONFIGS"),
    ("ALLOW", "CLUSTER", "LITERAL", "kafka-cluster", "User:alice", "*", "DESCRIBE"),
    ("ALLOW", "CLUSTER", "LITERAL", "kafka-cluster", "User:carol", "127.0.0.1", "DESCRIBE"),
]


@pytest.fixture(scope="module")
def kafka(kafka_factory):
    cluster = kafka_factory(nodes=1, authorizer=True, super_users=("User:root",),
                            plain_users={u: p for u, p in USERS.items()},
                            listeners=[Listener("PLAIN", "SASL_PLAINTEXT", ("PLAIN",))])
    admin = AdminClient(cluster.admin_config())
    for name, fut in admin.create_topics([NewTopic(t, 1, 1) for t in TOPICS]).items():
        fut.result(30)
    # librdkafka calls the cluster resource type (code 4) BROKER.
    acls = [AclBinding("BROKER" if rt == "CLUSTER" else rt, name, pattern, principal, host, op, perm)
            for perm, rt, pattern, name, principal, host, op in BINDINGS]
    for fut in admin.create_acls(acls, request_timeout=30).values():
        fut.result(30)
    deadline = time.monotonic() + 20  # ACLs reach the broker's authorizer through the metadata log
    while len(admin.describe_acls(_any_filter(), request_timeout=30).result(30)) < len(BINDINGS):
        assert time.monotonic() < deadline, "Kafka does not list every binding created"
        time.sleep(0.2)
    return cluster


def _any_filter():
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)
    return AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                            AclPermissionType.ANY)


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    tables = {"allow": [], "deny": []}
    for perm, rt, pattern, name, principal, host, op in BINDINGS:
        table = {"principals": [principal], "hosts": [host], "operations": [op]}
        if rt == "CLUSTER":
            table["cluster"] = True
        else:
            table["topics" if pattern == "LITERAL" else "topic_prefixes"] = [name]
        tables[perm.lower()].append(table)
    path = tmp_path_factory.mktemp("policy") / "acls.toml"
    path.write_text(to_toml(tables))
    return path


def kafka_view(kafka, user: str) -> dict:
    """What Kafka's authorizer grants `user` (connected from 127.0.0.1): per topic the authorized operations,
    or the error when the topic may not even be described; and the cluster's authorized operations."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap("PLAIN"), "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]})
    view = {}
    futures = admin.describe_topics(TopicCollection(TOPICS), include_authorized_operations=True, request_timeout=30)
    for topic, fut in futures.items():
        try:
            d = fut.result(30)
            view[topic] = sorted(op.name for op in d.authorized_operations)
        except Exception as e:  # noqa: BLE001 - the error name is the observation
            view[topic] = e.args[0].name()
    cluster = admin.describe_cluster(include_authorized_operations=True, request_timeout=30).result(30)
    # Kafka fills the cluster's bitfield only for a principal with DESCRIBE on the cluster (else 0, which
    # librdkafka gives as None).
    view["<cluster>"] = sorted(op.name for op in cluster.authorized_operations or [])
    return view


def kgate_allows(kgate_bin: str, policy, user: str, op: str, resource: list[str]) -> bool:
    cp = subprocess.run([kgate_bin, "acls", "check", "--acls-file", str(policy), "--principal", f"User:{user}",
                         "--operation", op, *resource, "--host", "127.0.0.1", "--super-user", "User:root",
                         "--super-user", "User:admin"], capture_output=True, text=True, timeout=30)
    assert cp.returncode in (0, 1), f"kgate acls check failed ({cp.returncode}):\n{cp.stdout}{cp.stderr}"
    return cp.returncode == 0


def kgate_view(kgate_bin: str, policy, user: str) -> dict:
    view = {}
    for topic in TOPICS:
        allowed = sorted(op for op in TOPIC_OPS if kgate_allows(kgate_bin, policy, user, op, ["--topic", topic]))
        # Kafka does not describe a topic the principal may not DESCRIBE: it answers the error instead.
        view[topic] = allowed if "DESCRIBE" in allowed else "TOPIC_AUTHORIZATION_FAILED"
    cluster = sorted(op for op in CLUSTER_OPS if kgate_allows(kgate_bin, policy, user, op, ["--cluster"]))
    view["<cluster>"] = cluster if "DESCRIBE" in cluster else []
    return view


@pytest.mark.parametrize("user", sorted(USERS))
def test_kgate_decides_as_kafkas_standard_authorizer(kafka, policy, kgate_bin, user):
    expected = kafka_view(kafka, user)
    # The scenario must exercise both answers, or it proves nothing.
    if user != "root":
        assert any(isinstance(v, list) and v for v in expected.values()), expected
        assert expected["secret-x"] == "TOPIC_AUTHORIZATION_FAILED", expected
    got = kgate_view(kgate_bin, policy, user)
    assert got == expected, f"User:{user}: kgate differs from Kafka:\n kgate {got}\n Kafka {expected}"
