"""kafka-python 3.0 (pure Python client): admin, produce, consume, consumer group with commits."""
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from peerlib import wait_topic


def kp_create_topic(bootstrap, name, parts):
    a = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kp-admin", request_timeout_ms=30000)
    try:
        a.create_topics([NewTopic(name, num_partitions=parts, replication_factor=1)])
        assert name in a.list_topics()
    finally:
        a.close()
    wait_topic(bootstrap, name, parts)


def kp_produce(bootstrap, topic, n):
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futs = [(i, p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())) for i in range(n)]
        p.flush(30)
        metas = [(i, f.get(timeout=30)) for i, f in futs]
    finally:
        p.close(10)
    by_part = {}
    for i, md in metas:
        by_part.setdefault(md.partition, []).append((md.offset, f"k{i}".encode(), f"v{i}".encode()))
    for q, recs in by_part.items():
        recs.sort()
        assert [o for o, _, _ in recs] == list(range(len(recs))), f"partition {q}: offsets not dense"
        assert [int(v[1:]) for _, _, v in recs] == sorted(int(v[1:]) for _, _, v in recs), "order"
    return by_part


def test_kafka_python_produce_consume(kgate):
    topic, n, parts = "kp-basic", 1000, 2
    kp_create_topic(kgate.bootstrap, topic, parts)
    expected = kp_produce(kgate.bootstrap, topic, n)
    assert sum(len(v) for v in expected.values()) == n

    c = KafkaConsumer(bootstrap_servers=kgate.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        tps = [TopicPartition(topic, q) for q in range(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = {q: [] for q in range(parts)}
        deadline = time.monotonic() + 60
        while sum(len(v) for v in got.values()) < n and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=500).items():
                got[tp.partition] += [(r.offset, r.key, r.value) for r in recs]
        assert c.end_offsets(tps) == {TopicPartition(topic, q): len(expected.get(q, [])) for q in range(parts)}
        assert c.beginning_offsets(tps) == {tp: 0 for tp in tps}
    finally:
        c.close()
    for q in range(parts):
        assert got[q] == expected.get(q, []), f"partition {q} differs"


def test_kafka_python_group_commit_and_resume(kgate):
    topic, group, n, parts = "kp-group", "kp-group-g", 1000, 2
    kp_create_topic(kgate.bootstrap, topic, parts)
    expected = kp_produce(kgate.bootstrap, topic, n)

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=kgate.bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=100, consumer_timeout_ms=5000)

    c = consumer()
    first = []
    try:
        deadline = time.monotonic() + 60
        while len(first) < 600 and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=500).items():
                first += [(tp.partition, r.offset, r.value) for r in recs]
        assert len(first) >= 600
        c.commit()  # commits the consumed positions of all assigned partitions
        positions = {tp.partition: c.position(tp) for tp in c.assignment()}
        committed = {q: c.committed(TopicPartition(topic, q)) for q in range(parts)}
        assert committed == positions, (committed, positions)
    finally:
        c.close(autocommit=False)

    c = consumer()
    second = []
    try:
        deadline = time.monotonic() + 60
        while len(first) + len(second) < n and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=500).items():
                second += [(tp.partition, r.offset, r.value) for r in recs]
        # nothing more arrives
        assert all(not recs for recs in c.poll(timeout_ms=1500).values())
        # explicit commit with metadata round-trips
        c.commit({TopicPartition(topic, 0): OffsetAndMetadata(3, "meta-x", -1)})
        assert c.committed(TopicPartition(topic, 0)) == 3
        assert c.committed(TopicPartition(topic, 0), metadata=True).metadata == "meta-x"
    finally:
        c.close(autocommit=False)
    firsts = {(p, o) for p, o, _ in first}
    seconds = {(p, o) for p, o, _ in second}
    assert not firsts & seconds, f"{len(firsts & seconds)} records re-delivered after commit"
    assert len(first) + len(second) == n
    for q in range(parts):
        end = len(expected.get(q, []))
        assert [o for p, o, _ in second if p == q] == list(range(positions.get(q, 0), end)), \
            f"partition {q} did not resume exactly at the committed offset {positions.get(q)}"
        assert sorted(o for p, o, _ in first + second if p == q) == list(range(end))
