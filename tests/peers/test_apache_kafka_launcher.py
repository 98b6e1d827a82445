"""The Apache Kafka 4.4.0 launcher itself (tests/peers/apache_kafka.py), which every differential test leans on:
a single node with SASL_SSL (SCRAM-SHA-512, users written at format time) and SASL_PLAINTEXT (PLAIN) client
listeners and the StandardAuthorizer with super users. A user without ACLs is refused with Kafka's
TOPIC_AUTHORIZATION_FAILED and the denial is in kafka-authorizer.log; after kafka-acls grants it, it produces
and consumes; a wrong password fails authentication; the super user needs no ACL.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from apache_kafka import ACLS, ADMIN_PASSWORD, ADMIN_USER, Listener
from seclib import certs_dev

ALICE, ALICE_PASSWORD = "alice", "alice-secret"
BOB, BOB_PASSWORD = "bob", "bob-secret"


@pytest.fixture(scope="module")
def secure(kafka_factory, kgate_bin, tmp_path_factory):
    certs = certs_dev(kgate_bin, tmp_path_factory.mktemp("certs"))
    cluster = kafka_factory(nodes=1, certs=certs, authorizer=True, scram_users={ALICE: ALICE_PASSWORD},
                            plain_users={BOB: BOB_PASSWORD},
                            listeners=[Listener("SCRAM_SSL", "SASL_SSL", ("SCRAM-SHA-512",), host="localhost"),
                                       Listener("PLAIN", "SASL_PLAINTEXT", ("PLAIN",), host="localhost")])
    cluster.ca = certs.ca
    return cluster


def scram(cluster, user: str = ALICE, password: str = ALICE_PASSWORD) -> dict:
    return {"bootstrap.servers": cluster.bootstrap("SCRAM_SSL"), "security.protocol": "SASL_SSL",
            "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
            "ssl.ca.location": cluster.ca}


def plain(cluster, user: str, password: str) -> dict:
    return {"bootstrap.servers": cluster.bootstrap("PLAIN"), "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanisms": "PLAIN", "sasl.username": user, "sasl.password": password}


def produce_one(conf: dict, topic: str) -> str:
    """Kafka's error name for one acks=all record."""
    result = []
    p = Producer({**conf, "acks": "all", "message.timeout.ms": 15000})
    p.produce(topic, b"v", on_delivery=lambda err, msg: result.append(err.name() if err else "NONE"))
    p.flush(30)
    return result[0] if result else "NO DELIVERY REPORT"


def test_authorizer_denies_then_acls_grant(secure):
    admin = AdminClient(secure.admin_config())
    admin.create_topics([NewTopic("guarded", 1, 1)])["guarded"].result(30)
    assert produce_one(scram(secure), "guarded") == "TOPIC_AUTHORIZATION_FAILED"
    deadline = time.monotonic() + 10
    while "User:alice" not in secure.node(1).authorizer_log_path.read_text():
        assert time.monotonic() < deadline, "no denial for User:alice in kafka-authorizer.log"
        time.sleep(0.2)
    denied = [line for line in secure.node(1).authorizer_log_path.read_text().splitlines()
              if "User:alice" in line and "Denied" in line]
    assert denied, "kafka-authorizer.log has no 'Denied' line for User:alice"

    cp = secure.tool(ACLS, "--bootstrap-server", secure.bootstrap("INTERNAL"), "--command-config",
                     str(secure.admin_properties()), "--add", "--allow-principal", "User:alice", "--producer",
                     "--consumer", "--topic", "guarded", "--group", "alice-g")
    assert cp.returncode == 0, f"kafka-acls --add failed:\n{cp.stdout}\n{cp.stderr}"
    deadline = time.monotonic() + 20
    while (answer := produce_one(scram(secure), "guarded")) != "NONE":
        assert answer == "TOPIC_AUTHORIZATION_FAILED" and time.monotonic() < deadline, answer
        time.sleep(0.5)
    c = Consumer({**scram(secure), "group.id": "alice-g", "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition("guarded", 0, 0)])
        msg = c.poll(20)
        assert msg is not None and msg.error() is None and msg.value() == b"v", msg
    finally:
        c.close()


def test_wrong_password_and_plain_users(secure):
    errors = []
    p = Producer({**scram(secure, ALICE, "wrong"), "error_cb": errors.append})
    deadline = time.monotonic() + 20
    while not any(e.code() == KafkaError._AUTHENTICATION for e in errors) and time.monotonic() < deadline:
        p.poll(0.2)
    assert any(e.code() == KafkaError._AUTHENTICATION and "invalid credentials" in e.str() for e in errors), errors
    # bob is a PLAIN user without ACLs; the admin is a super user on the same listener.
    assert produce_one(plain(secure, BOB, BOB_PASSWORD), "guarded") == "TOPIC_AUTHORIZATION_FAILED"
    assert produce_one(plain(secure, ADMIN_USER, ADMIN_PASSWORD), "guarded") == "NONE"
