"""Differential tests: the same confluent-kafka scenario against Apache Kafka 4.4.0 directly, against kgate's
embedded broker, and against kgate in front of that Kafka; every target must show the client the same
answers (error names per topic, partition and group, the topics Metadata lists, the records delivered and
their offsets). Apache Kafka is the reference: a difference is a kgate bug, or a documented gap removed from
the comparison in `KNOWN` with its reason.
"""
from __future__ import annotations

import time

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from differential import Client, Target, error_name, run_differential
from upstreamlib import upstream_kgate

PARTITIONS = 3


@pytest.fixture(scope="module")
def targets(kafka_factory, module_kgate_factory) -> list[Target]:
    kafka = kafka_factory(nodes=1)
    embedded = module_kgate_factory(broker={"num_partitions": 1})
    upstream = upstream_kgate(module_kgate_factory, kafka.bootstrap(), brokers=2)
    return [Target("kafka", kafka.bootstrap()), Target("embedded", embedded.bootstrap),
            Target("upstream", upstream.bootstrap)]


def topics_scenario(c: Client) -> dict:
    seen = {
        "create": c.create_topic("a", PARTITIONS),
        "create again": c.create_topic("a", PARTITIONS),
        "create invalid name": c.create_topic("bad name!"),
        "create name too long": c.create_topic("x" * 250),
        "create zero partitions": c.create_topic("zero", 0),
        "create replication 3 on one broker": c.create_topic("rf3", 1, 3),
        "create unknown config": c.create_topic("cfg", 1, config={"no.such.config": "1"}),
        "create retention.ms=-2": c.create_topic("ret", 1, config={"retention.ms": "-2"}),
    }
    seen["metadata after create"] = c.metadata_topics()
    seen["delete"] = c.delete_topic("a")
    c.wait_metadata("a", present=False)
    seen["delete again"] = c.delete_topic("a")
    seen["delete never created"] = c.delete_topic("never")
    seen["metadata after delete"] = c.metadata_topics()
    return seen


def produce_consume_scenario(c: Client) -> dict:
    assert c.create_topic("data", PARTITIONS) == "NONE"
    records = [(i % PARTITIONS, f"k{i}".encode(), f"value {i}".encode()) for i in range(90)]
    records.append((0, None, b"no key"))
    records.append((1, b"empty value", b""))
    produced = c.produce("data", records)
    consumed = c.consume("data", PARTITIONS, len(records))
    return {
        "produced": produced,
        "consumed": consumed,
        "earliest": c.offsets("data", PARTITIONS, "earliest"),
        "latest": c.offsets("data", PARTITIONS, "latest"),
    }


def partitions_and_timestamps_scenario(c: Client) -> dict:
    seen = {"create 1 partition": c.create_topic("grow", 1)}
    seen["grow to 3"] = c.create_partitions("grow", 3)
    seen["shrink to 2"] = c.create_partitions("grow", 2)
    seen["same count"] = c.create_partitions("grow", 3)
    seen["grow a missing topic"] = c.create_partitions("never", 2)
    deadline = time.monotonic() + 20
    while c.metadata_topics().get("grow") != 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    seen["metadata after growing"] = c.metadata_topics()
    # Explicit timestamps, out of order within the partition: max_timestamp must find the largest.
    base = 1_700_000_000_000
    stamps = [base + 5_000, base + 1_000, base + 9_000, base + 3_000, base + 7_000]
    seen["produced"] = c.produce("grow", [(1, None, f"t{i}".encode(), ts) for i, ts in enumerate(stamps)])
    for label, ts in (("before all", base), ("between", base + 4_000), ("exact", base + 7_000), ("after all", base + 10_000)):
        seen[f"offset for timestamp {label}"] = c.offsets("grow", 3, "for_timestamp", ts)
    seen["max timestamp"] = c.offsets("grow", 3, "max_timestamp")
    seen["latest"] = c.offsets("grow", 3, "latest")
    return seen


def topic_configs_scenario(c: Client) -> dict:
    """DescribeConfigs of a topic created with two overrides: value, source, default, read-only, sensitive."""
    from confluent_kafka.admin import ConfigResource
    assert c.create_topic("cfg", 1, config={"retention.ms": "3600000", "max.message.bytes": "2000000"}) == "NONE"
    resource = ConfigResource("TOPIC", c.topic("cfg"))
    configs = c.admin.describe_configs([resource], request_timeout=30)[resource].result(30)
    keys = ["retention.ms", "max.message.bytes", "cleanup.policy", "segment.bytes", "retention.bytes", "segment.ms"]
    return {k: [configs[k].value, str(configs[k].source), configs[k].is_default, configs[k].is_read_only,
                configs[k].is_sensitive] if k in configs else "absent" for k in keys}


def group_state(c: Client, group: str) -> dict:
    fut = c.admin.describe_consumer_groups([c.group(group)], request_timeout=30)[c.group(group)]
    try:
        d = fut.result(30)
    except Exception as e:  # noqa: BLE001 - the error name is the observation
        return {"error": error_name(e)}
    return {"state": d.state.name, "members": len(d.members), "protocol_type": "consumer" if d.is_simple_consumer_group
            is False else "simple", "assigned": sorted(tp.partition for m in d.members for tp in m.assignment.topic_partitions)}


def committed(c: Client, group: str, topic: str) -> dict:
    req = ConsumerGroupTopicPartitions(c.group(group), [TopicPartition(c.topic(topic), p) for p in range(PARTITIONS)])
    fut = c.admin.list_consumer_group_offsets([req], request_timeout=30)[c.group(group)]
    try:
        return {tp.partition: tp.offset for tp in fut.result(30).topic_partitions}
    except Exception as e:  # noqa: BLE001
        return {"error": error_name(e)}


def delete_group(c: Client, group: str) -> str:
    try:
        c.admin.delete_consumer_groups([c.group(group)], request_timeout=30)[c.group(group)].result(30)
    except Exception as e:  # noqa: BLE001
        return error_name(e)
    return "NONE"


def groups_scenario(c: Client) -> dict:
    from confluent_kafka import Consumer
    assert c.create_topic("events", PARTITIONS) == "NONE"
    c.produce("events", [(i % PARTITIONS, None, f"e{i}".encode()) for i in range(30)])
    seen = {"before any member": group_state(c, "g")}
    consumer = Consumer(c.conf(**{"group.id": c.group("g"), "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False, "partition.assignment.strategy": "range"}))
    try:
        consumer.subscribe([c.topic("events")])
        got, deadline = 0, time.monotonic() + 60
        while got < 30 and time.monotonic() < deadline:
            got += sum(1 for m in consumer.consume(100, 1.0) if not m.error())
        assert got == 30, f"{c.target.name}: consumed {got} of 30"
        consumer.commit(asynchronous=False)
        seen["one member"] = group_state(c, "g")
        seen["committed"] = committed(c, "g", "events")
        seen["delete while a member is in"] = delete_group(c, "g")
    finally:
        consumer.close()
    deadline = time.monotonic() + 30
    while group_state(c, "g").get("state") != "EMPTY" and time.monotonic() < deadline:
        time.sleep(0.2)
    seen["after the member left"] = group_state(c, "g")
    seen["committed after leave"] = committed(c, "g", "events")
    seen["delete empty"] = delete_group(c, "g")
    seen["after delete"] = group_state(c, "g")
    seen["committed after delete"] = committed(c, "g", "events")
    seen["delete unknown"] = delete_group(c, "never")
    return seen


@pytest.mark.parametrize("scenario", [topics_scenario, produce_consume_scenario, partitions_and_timestamps_scenario,
                                      topic_configs_scenario, groups_scenario],
                         ids=lambda s: s.__name__)
def test_same_answers_as_apache_kafka(targets, scenario):
    seen = run_differential(scenario, targets)
    assert seen["kafka"], "the scenario observed nothing"


def test_the_harness_reports_every_difference(targets):
    """A scenario whose answers depend on the target must fail the comparison, naming each difference."""
    def differs(c: Client) -> dict:
        return {"same": 1, "name": c.target.name, "nested": {"list": [1, c.target.name == "kafka"]}}

    with pytest.raises(AssertionError) as failure:
        run_differential(differs, targets)
    text = str(failure.value)
    for fragment in ("name: kafka saw 'kafka', embedded saw 'embedded'", "name: kafka saw 'kafka', upstream saw 'upstream'",
                     "nested.list[1]: kafka saw True, embedded saw False"):
        assert fragment in text, text
    assert "same" not in text, text
