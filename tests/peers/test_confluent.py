"""confluent-kafka (librdkafka 2.16): idempotent producer, consumer groups, offset persistence, admin."""
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (ConfigResource, ConfigSource, NewPartitions, NewTopic, ResourceType)

from peerlib import admin, assert_offsets_dense, consume_all, create_topic, wait_topic, watermarks


def test_idempotent_producer_100k_then_exact_consume(kgate):
    topic, n, parts = "idem-100k", 100_000, 3
    create_topic(kgate.bootstrap, topic, parts)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "queue.buffering.max.messages": 200_000})
    reports, errors = [], []

    def dr(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            reports.append((msg.partition(), msg.offset(), msg.value()))

    for i in range(n):
        while True:
            try:
                p.produce(topic, f"{i:07d}".encode(), on_delivery=dr)
                break
            except BufferError:
                p.poll(0.05)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(120) == 0, "records still in flight 120 s after the last produce"
    assert errors == [], f"{len(errors)} delivery errors, first: {errors[:3]}"
    assert len(reports) == n

    acked = {q: sorted((o, v) for pp, o, v in reports if pp == q) for q in range(parts)}
    for q in range(parts):
        offs = [o for o, _ in acked[q]]
        assert offs == list(range(len(offs))), f"partition {q}: acknowledged offsets not dense"
        vals = [int(v) for _, v in acked[q]]
        assert vals == sorted(vals), f"partition {q}: idempotent producer order not preserved"
    assert sum(len(a) for a in acked.values()) == n
    assert {q: hw for q, (lo, hw) in watermarks(kgate.bootstrap, topic, parts).items()} == \
        {q: len(acked[q]) for q in range(parts)}

    got = consume_all(kgate.bootstrap, topic, parts, timeout=120)
    for q in range(parts):
        assert [(o, v) for o, _, v in got[q]] == acked[q], f"partition {q}: consumed records differ"


class Member(threading.Thread):
    """A consumer-group member: eager assignor, commit synchronously after each batch and in on_revoke,
    so that every received record is committed before its partition can move: duplicates must be 0."""

    def __init__(self, name, bootstrap, group, topic, log):
        super().__init__(name=name, daemon=True)
        self.log = log  # shared list of (member, partition, offset, value)
        self.errors = []
        self.assignments = []  # history of assigned partition sets
        self.stop_flag = threading.Event()
        self.topic = topic
        self.c = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "client.id": name,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "roundrobin",
            "session.timeout.ms": 30000, "heartbeat.interval.ms": 500, "max.poll.interval.ms": 60000,
        })

    def commit(self, where):
        try:
            self.c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:
                self.errors.append(f"{self.name}: commit in {where} failed: {e}")

    def on_assign(self, consumer, partitions):
        self.assignments.append(sorted(tp.partition for tp in partitions))

    def on_revoke(self, consumer, partitions):
        self.commit("on_revoke")

    def on_lost(self, consumer, partitions):
        self.errors.append(f"{self.name}: lost its partitions {sorted(tp.partition for tp in partitions)} "
                           "(session expired or fenced by the coordinator)")

    def run(self):
        try:
            self.c.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke, on_lost=self.on_lost)
            pending = 0
            while not self.stop_flag.is_set():
                m = self.c.poll(0.1)
                if m is not None:
                    if m.error():
                        if m.error().code() != KafkaError._PARTITION_EOF:
                            self.errors.append(f"{self.name}: consume error {m.error()}")
                    else:
                        self.log.append((self.name, m.partition(), m.offset(), m.value()))
                        pending += 1
                if pending and (pending >= 200 or m is None):
                    self.commit("batch")
                    pending = 0
            if pending:
                self.commit("final")
        except Exception as e:  # noqa: BLE001 - surface anything to the test
            self.errors.append(f"{self.name}: {e!r}")
        finally:
            self.c.close()


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def test_consumer_group_rebalance_no_loss_no_duplicates(kgate):
    topic, group, parts, n, rate = "grp6", "grp6-g", 6, 24_000, 3000
    create_topic(kgate.bootstrap, topic, parts)
    log = []
    acked, perrors = [], []
    prod_done = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": "all", "linger.ms": 5})

        def dr(err, msg):
            if err is not None:
                perrors.append(str(err))
            else:
                acked.append((msg.partition(), msg.offset(), msg.value()))

        t0 = time.monotonic()
        for i in range(n):
            p.produce(topic, f"{i}".encode(), key=f"k{i % 97}".encode(), on_delivery=dr)
            ahead = i / rate - (time.monotonic() - t0)
            if ahead > 0:
                p.poll(ahead)
            elif i % 1000 == 0:
                p.poll(0)
        p.flush(60)
        prod_done.set()

    a = Member("member-a", kgate.bootstrap, group, topic, log)
    b = Member("member-b", kgate.bootstrap, group, topic, log)
    a.start()
    b.start()
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    members = [a, b]
    try:
        _wait(lambda: len(log) >= 3000 and a.assignments and b.assignments, 60, "first 3000 records")
        c = Member("member-c", kgate.bootstrap, group, topic, log)
        members.append(c)
        c.start()
        _wait(lambda: any(c.assignments) and len(log) >= 9000, 60, "member-c to get partitions")
        a.stop_flag.set()
        a.join(30)
        assert not a.is_alive(), "member-a did not close"
        _wait(prod_done.is_set, 60, "producer")
        _wait(lambda: len({(p, o) for _, p, o, _ in log}) >= len(acked), 60,
              f"consumers to see all {n} records")
    finally:
        for m in members:
            m.stop_flag.set()
        for m in members:
            m.join(30)
    assert perrors == [], perrors[:5]
    assert len(acked) == n
    errors = [e for m in members for e in m.errors]
    assert errors == [], errors

    produced = {(p, o): v for p, o, v in acked}
    seen = [(p, o) for _, p, o, _ in log]
    dups = len(seen) - len(set(seen))
    assert set(seen) == set(produced), (f"lost {len(set(produced) - set(seen))}, "
                                        f"unexpected {len(set(seen) - set(produced))}")
    if dups:
        by_rec = {}
        for name, p, o, _ in log:
            by_rec.setdefault((p, o), []).append(name)
        twice = sorted((k, v) for k, v in by_rec.items() if len(v) > 1)
        hist = {m.name: m.assignments for m in members}
        raise AssertionError(f"{dups} records delivered twice despite commit-before-revoke: "
                             f"{twice[:10]} ...; assignment history {hist}")
    assert all(produced[(p, o)] == v for _, p, o, v in log), "consumed value differs from produced"
    for m in members:  # each member sees each partition's offsets in increasing order
        for q in range(parts):
            offs = [o for name, p, o, _ in log if name == m.name and p == q]
            assert offs == sorted(offs), f"{m.name} partition {q}: offsets went backwards"
    assert sorted(q for q in b.assignments[-1] + c.assignments[-1]) == list(range(parts)), (
        f"after member-a left, b={b.assignments[-1]} c={c.assignments[-1]} do not cover all partitions")
    assert any(len(x) == 2 for x in c.assignments), f"3 members never shared 6 partitions: {c.assignments}"

    hw = watermarks(kgate.bootstrap, topic, parts)
    probe = Consumer({"bootstrap.servers": kgate.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        committed = probe.committed([TopicPartition(topic, q) for q in range(parts)], timeout=10)
    finally:
        probe.close()
    assert {tp.partition: tp.offset for tp in committed} == {q: hw[q][1] for q in range(parts)}


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_committed_offsets_survive_restart(kgate, how):
    topic, group = f"resume-{how}", f"resume-{how}-g"
    create_topic(kgate.bootstrap, topic, 2)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce(topic, f"p0-{i}".encode(), partition=0)
        p.produce(topic, f"p1-{i}".encode(), partition=1)
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": kgate.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < 20 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 20
    c.commit(offsets=[TopicPartition(topic, 0, 37), TopicPartition(topic, 1, 11)], asynchronous=False)
    c.close()

    if how == "sigterm":
        kgate.stop()
    else:
        kgate.kill9()
    kgate.start()

    c = Consumer({"bootstrap.servers": kgate.bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest"})
    try:
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [(tp.partition, tp.offset) for tp in committed] == [(0, 37), (1, 11)]
        c.subscribe([topic])
        recs = {0: [], 1: []}
        deadline = time.monotonic() + 60
        while len(recs[0]) + len(recs[1]) < 63 + 89 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                recs[m.partition()].append((m.offset(), m.value().decode()))
        extra = c.poll(1.0)
        assert extra is None or extra.error(), f"unexpected extra record {extra.offset()}"
    finally:
        c.close()
    assert recs[0] == [(i, f"p0-{i}") for i in range(37, 100)]
    assert recs[1] == [(i, f"p1-{i}") for i in range(11, 100)]


def _err_code(fut, timeout=30):
    try:
        fut.result(timeout)
    except KafkaException as e:
        return e.args[0].code()
    return KafkaError.NO_ERROR


def test_admin_topics_configs_partitions(kgate):
    a = admin(kgate.bootstrap)
    fs = a.create_topics([
        NewTopic("adm-a", num_partitions=2, replication_factor=1,
                 config={"retention.ms": "3600000", "cleanup.policy": "delete"}),
        NewTopic("adm-b", num_partitions=1, replication_factor=1),
    ], operation_timeout=30)
    for name, f in fs.items():
        f.result(30)
    wait_topic(kgate.bootstrap, "adm-a", 2)
    wait_topic(kgate.bootstrap, "adm-b", 1)

    again = a.create_topics([NewTopic("adm-a", num_partitions=2, replication_factor=1)])
    assert _err_code(again["adm-a"]) == KafkaError.TOPIC_ALREADY_EXISTS

    res = ConfigResource(ResourceType.TOPIC, "adm-a")
    entries = a.describe_configs([res])[res].result(30)
    assert entries["retention.ms"].value == "3600000"
    src = entries["retention.ms"].source
    assert getattr(src, "value", src) == ConfigSource.DYNAMIC_TOPIC_CONFIG.value, src
    assert not entries["retention.ms"].is_default
    assert entries["cleanup.policy"].value == "delete"

    # grow to 5 partitions, then a record on the new partition 4 round-trips
    a.create_partitions([NewPartitions("adm-a", 5)])["adm-a"].result(30)
    wait_topic(kgate.bootstrap, "adm-a", 5)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": "all"})
    p.produce("adm-a", b"on-new-partition", partition=4)
    assert p.flush(30) == 0
    assert [v for _, _, v in consume_all(kgate.bootstrap, "adm-a", 5)[4]] == [b"on-new-partition"]
    # shrinking is invalid
    assert _err_code(a.create_partitions([NewPartitions("adm-a", 3)])["adm-a"]) == \
        KafkaError.INVALID_PARTITIONS

    a.delete_topics(["adm-b"], operation_timeout=30)["adm-b"].result(30)
    deadline = time.monotonic() + 15
    while "adm-b" in a.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    topics = a.list_topics(timeout=10).topics
    assert "adm-b" not in topics and "adm-a" in topics
    assert len(topics["adm-a"].partitions) == 5
    assert _err_code(a.delete_topics(["adm-never-existed"])["adm-never-existed"]) == \
        KafkaError.UNKNOWN_TOPIC_OR_PART

    cluster = a.describe_cluster().result(30)
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(0, "127.0.0.1", kgate.port)]
    assert cluster.controller.id == 0
    assert cluster.cluster_id, "empty cluster id"


def test_admin_rejects_invalid_topic_configs(kgate):
    a = admin(kgate.bootstrap)
    fs = a.create_topics([
        NewTopic("bad-cfg-key", 1, 1, config={"no.such.config": "1"}),
        NewTopic("bad-cfg-value", 1, 1, config={"retention.ms": "not-a-number"}),
        NewTopic("bad-partitions", num_partitions=0, replication_factor=1),
        NewTopic("bad-replication", num_partitions=1, replication_factor=3),
    ])
    codes = {name: _err_code(f) for name, f in fs.items()}
    assert codes == {
        "bad-cfg-key": KafkaError.INVALID_CONFIG,
        "bad-cfg-value": KafkaError.INVALID_CONFIG,
        "bad-partitions": KafkaError.INVALID_PARTITIONS,
        "bad-replication": KafkaError.INVALID_REPLICATION_FACTOR,
    }
    assert not {"bad-cfg-key", "bad-cfg-value", "bad-partitions", "bad-replication"} & \
        set(a.list_topics(timeout=10).topics)


def test_transactions_are_refused(kgate):
    # "Refused" as librdkafka sees it: init_transactions() fails promptly with a non-retriable error,
    # rather than retrying a "coordinator not available" answer until its own timeout.
    p = Producer({"bootstrap.servers": kgate.bootstrap, "transactional.id": "txn-1",
                  "transaction.timeout.ms": 10000})
    t0 = time.monotonic()
    with pytest.raises(KafkaException) as exc:
        p.init_transactions(30)
    err = exc.value.args[0]
    took = time.monotonic() - t0
    assert took < 10 and not err.retriable(), \
        f"init_transactions: {err.name()} ({err.str()}) retriable={err.retriable()} after {took:.1f}s"
    kgate.assert_alive()
