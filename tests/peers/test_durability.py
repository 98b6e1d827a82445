"""Durability: what kgate acknowledged (acks=all) survives kill -9, and a graceful stop loses nothing."""
import threading
import time

import pytest
from confluent_kafka import Producer

from peerlib import consume_all, create_topic, watermarks


def _no_retry_producer(bootstrap, **extra):
    # No idempotence and no retries: a record is either acknowledged once or reported failed, so the
    # log may only hold acknowledged records plus records that were in flight when kgate died.
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                     "retries": 0, "message.timeout.ms": 5000, "request.timeout.ms": 5000,
                     "reconnect.backoff.ms": 100, **extra})


def test_kill9_one_by_one_acked_records_survive(kgate):
    topic = "dur-sync"
    create_topic(kgate.bootstrap, topic, 1)
    acked, failed, sent, bad_offsets = [], [], [], []
    stop = threading.Event()

    def run():
        p = _no_retry_producer(kgate.bootstrap, **{"linger.ms": 0})
        i = 0
        while not stop.is_set() and i < 1_000_000:
            res = []
            p.produce(topic, str(i).encode(), on_delivery=lambda err, msg: res.append((err, msg)))
            sent.append(i)
            p.flush(15)
            if res and res[0][0] is None:
                if res[0][1].offset() != len(acked):
                    bad_offsets.append((i, res[0][1].offset()))
                acked.append(i)
            else:
                failed.append((i, res[0][0] if res else "no delivery report"))
                break
            i += 1

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while len(acked) < 500 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.01)
    assert len(acked) >= 500, f"only {len(acked)} records acknowledged before the kill; failed={failed}"
    kgate.kill9()
    t.join(30)
    stop.set()
    assert not t.is_alive(), "producer thread did not finish after the kill"
    assert failed, "the producer never noticed that kgate was killed"
    assert not bad_offsets, f"(record, acknowledged offset) not consecutive: {bad_offsets[:5]}"
    kgate.start()
    log = [int(v) for _, _, v in consume_all(kgate.bootstrap, topic, 1)[0]]
    assert log[:len(acked)] == acked, "acknowledged records lost, duplicated or reordered after kill -9"
    assert log[len(acked):] in ([], [failed[0][0]]), f"unexpected records after the acked ones: {log[len(acked):]}"


def test_kill9_pipelined_acked_records_survive(kgate):
    topic, parts = "dur-pipe", 3
    create_topic(kgate.bootstrap, topic, parts)
    acked, failures = {q: [] for q in range(parts)}, []
    nacked = [0]
    stop = threading.Event()

    def dr(err, msg):
        if err is None:
            acked[msg.partition()].append((msg.offset(), int(msg.value())))
            nacked[0] += 1
        else:
            failures.append(int(msg.value()))

    def run():
        p = _no_retry_producer(kgate.bootstrap, **{"linger.ms": 2, "batch.num.messages": 500})
        i = 0
        while not stop.is_set() and i < 5_000_000:
            try:
                p.produce(topic, str(i).encode(), partition=i % parts, on_delivery=dr)
                i += 1
            except BufferError:
                p.poll(0.01)
            if i % 1000 == 0:
                p.poll(0)
        p.flush(20)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    deadline = time.monotonic() + 60
    while nacked[0] < 30_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert nacked[0] >= 30_000, f"only {nacked[0]} acknowledged in 60 s"
    kgate.kill9()
    time.sleep(0.5)
    stop.set()
    t.join(40)
    assert not t.is_alive()
    kgate.start()
    log = consume_all(kgate.bootstrap, topic, parts, timeout=120)
    for q in range(parts):
        vals = [int(v) for _, _, v in log[q]]
        assert all(v % parts == q for v in vals), f"partition {q} holds records of another partition"
        assert vals == sorted(set(vals)), f"partition {q}: duplicates or reordering after kill -9"
        missing = {v for _, v in acked[q]} - set(vals)
        assert not missing, f"partition {q}: {len(missing)} acknowledged records lost, e.g. {sorted(missing)[:5]}"
        # an acknowledged record is found exactly at its acknowledged offset
        at = {o: int(v) for o, _, v in log[q]}
        wrong = [(o, v) for o, v in acked[q] if at.get(o) != v]
        assert not wrong, f"partition {q}: acknowledged offsets now hold other records: {wrong[:5]}"
    # and the log keeps growing from where it is after recovery
    hw = watermarks(kgate.bootstrap, topic, parts)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": "all"})
    offs = []
    for q in range(parts):
        p.produce(topic, b"after-restart", partition=q, on_delivery=lambda e, m: offs.append((m.partition(), m.offset(), e)))
    assert p.flush(30) == 0
    assert sorted(offs) == [(q, hw[q][1], None) for q in range(parts)]


@pytest.mark.parametrize("acks", ["0", "1", "all"])
def test_graceful_stop_keeps_everything(kgate, acks):
    topic, parts, n = f"dur-graceful-{acks}", 3, 20_000
    create_topic(kgate.bootstrap, topic, parts)
    p = Producer({"bootstrap.servers": kgate.bootstrap, "acks": acks, "linger.ms": 5})
    errors = []
    for i in range(n):
        while True:
            try:
                p.produce(topic, str(i).encode(), partition=i % parts,
                          on_delivery=lambda e, m: e is not None and errors.append(e))
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(60) == 0 and not errors, errors[:3]
    if acks == "0":
        time.sleep(1.0)  # acks=0: no response to wait for; give the broker time to read the requests
    kgate.stop()  # SIGTERM: must exit 0
    kgate.start()
    log = consume_all(kgate.bootstrap, topic, parts)
    for q in range(parts):
        assert [(o, int(v)) for o, _, v in log[q]] == [(k, q + k * parts) for k in range(len(range(q, n, parts)))], \
            f"partition {q} differs after a graceful restart (acks={acks})"
