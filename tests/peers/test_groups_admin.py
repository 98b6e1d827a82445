"""Group administration through confluent-kafka's AdminClient (ListGroups, DescribeGroups, OffsetFetch,
DeleteGroups) and a raw OffsetDelete v0 request."""
import struct
import time

from confluent_kafka import (Consumer, ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaError, KafkaException,
                             Producer, TopicPartition)

from peerlib import admin, create_topic, kstr, raw_call

GROUP_SUBSCRIBED_TO_TOPIC = 86
NON_EMPTY_GROUP = 68


def offset_delete(bootstrap, group, topic, partitions):
    body = kstr(group) + struct.pack(">i", 1) + kstr(topic) + struct.pack(">i", len(partitions)) + \
        b"".join(struct.pack(">i", p) for p in partitions)
    r = raw_call(bootstrap, 47, 0, body)
    top_error = r.i16()
    r.i32()  # throttle_time_ms
    out = {}
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            p = r.i32()
            out[(name, p)] = r.i16()
    assert r.remaining() == 0, f"{r.remaining()} unparsed bytes in OffsetDelete response"
    return top_error, out


def group_offsets(a, group, topic, parts):
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(parts)])
    res = a.list_consumer_group_offsets([req])[group].result(30)
    return {tp.partition: tp.offset for tp in res.topic_partitions}


def test_group_admin_list_describe_offsets_delete(kgate):
    topic, group = "ga", "ga-g"
    create_topic(kgate.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(topic, f"{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0

    c = Consumer({"bootstrap.servers": kgate.bootstrap, "group.id": group, "client.id": "ga-client",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "partition.assignment.strategy": "range"})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < 10 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 10
    c.commit(asynchronous=False)
    a = admin(kgate.bootstrap)
    try:
        listed = {g.group_id: g for g in a.list_consumer_groups().result(30).valid}
        assert group in listed, sorted(listed)
        assert listed[group].state == ConsumerGroupState.STABLE, listed[group].state
        assert not listed[group].is_simple_consumer_group

        desc = a.describe_consumer_groups([group])[group].result(30)
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert len(desc.members) == 1
        (mem,) = desc.members
        assert mem.client_id == "ga-client"
        assert sorted((tp.topic, tp.partition) for tp in mem.assignment.topic_partitions) == \
            [(topic, 0), (topic, 1)]
        assert desc.coordinator.id == 0

        # a group with members cannot be deleted, nor can offsets of a subscribed topic
        try:
            a.delete_consumer_groups([group])[group].result(30)
            raise AssertionError("DeleteGroups succeeded on a group with an active member")
        except KafkaException as e:
            assert e.args[0].code() == NON_EMPTY_GROUP, e
        top, per = offset_delete(kgate.bootstrap, group, topic, [0])
        assert (top, per) == (0, {(topic, 0): GROUP_SUBSCRIBED_TO_TOPIC}), (top, per)
    finally:
        c.close()

    assert group_offsets(a, group, topic, 2) == {0: 5, 1: 5}
    top, per = offset_delete(kgate.bootstrap, group, topic, [0])
    assert (top, per) == (0, {(topic, 0): 0}), (top, per)
    assert group_offsets(a, group, topic, 2) == {0: -1001, 1: 5}

    listed = {g.group_id: g for g in a.list_consumer_groups().result(30).valid}
    assert listed[group].state == ConsumerGroupState.EMPTY, listed[group].state
    a.delete_consumer_groups([group])[group].result(30)
    assert group not in {g.group_id for g in a.list_consumer_groups().result(30).valid}
    assert group_offsets(a, group, topic, 2) == {0: -1001, 1: -1001}
    try:
        a.delete_consumer_groups(["ga-never-existed"])["ga-never-existed"].result(30)
        raise AssertionError("DeleteGroups of an unknown group succeeded")
    except KafkaException as e:
        assert e.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND, e
