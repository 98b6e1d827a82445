"""The differential harness: one scripted client scenario run against Apache Kafka directly and against kgate
(the embedded broker, and kgate in front of that same Kafka), and what the client saw compared.

    targets = [Target("kafka", kafka.bootstrap()), Target("embedded", k.bootstrap), Target("upstream", u.bootstrap)]
    seen = run_differential(scenario, targets)   # fails, listing every difference, unless all saw the same

A scenario is a function `scenario(client: Client) -> dict`: it acts through `client` (a confluent-kafka
client bound to one target, with its own names so that targets sharing a cluster never collide) and returns
its observations: error names per topic/partition/group, which topics Metadata shows, the records delivered.
Observations must use the scenario's own logical names (`client.topic("a")` maps "a" to the real name; the
harness maps real names back in error texts). The authorization, quota and request-log tests add their own
scenarios and targets (a principal, a listener) on the same harness.
"""
from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec


@dataclasses.dataclass
class Target:
    name: str                  # "kafka", "embedded", "upstream"...
    bootstrap: str
    settings: dict = dataclasses.field(default_factory=dict)   # extra librdkafka settings (security)


def error_name(err) -> str:
    """A KafkaError / KafkaException / None as Kafka's error name ("NONE" for success)."""
    if err is None:
        return "NONE"
    if isinstance(err, KafkaException):
        err = err.args[0]
    if isinstance(err, KafkaError):
        return err.name()
    raise TypeError(f"not a Kafka error: {err!r}")


class Client:
    """A scenario's view of one target: confluent-kafka clients and per-target names."""

    def __init__(self, target: Target, run: str):
        self.target = target
        self.run = run
        self._names: dict[str, str] = {}
        self._admin: AdminClient | None = None

    def conf(self, **extra) -> dict:
        return {"bootstrap.servers": self.target.bootstrap, "log_level": 3, **self.target.settings, **extra}

    def topic(self, logical: str) -> str:
        return self._names.setdefault(logical, f"{logical}-{self.run}-{self.target.name}")

    group = topic

    def logical(self, text: str) -> str:
        """`text` with every real name put back to its logical one."""
        for logical, real in self._names.items():
            text = text.replace(real, logical)
        return text

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient(self.conf())
        return self._admin

    # -- admin actions: each returns Kafka's error name

    def create_topic(self, logical: str, partitions: int = 1, replication: int = 1,
                     config: dict | None = None) -> str:
        name = self.topic(logical)
        fut = self.admin.create_topics([NewTopic(name, partitions, replication, config=config or {})],
                                       request_timeout=30)[name]
        try:
            fut.result(30)
        except KafkaException as e:
            return error_name(e)
        self.wait_metadata(logical, present=True)
        return "NONE"

    def delete_topic(self, logical: str) -> str:
        name = self.topic(logical)
        try:
            self.admin.delete_topics([name], request_timeout=30)[name].result(30)
        except KafkaException as e:
            return error_name(e)
        return "NONE"

    def metadata_topics(self) -> dict[str, int]:
        """The scenario's topics that Metadata (all topics) lists, with their partition counts."""
        md = self.admin.list_topics(timeout=20)
        mine = {real: logical for logical, real in self._names.items()}
        return {mine[t]: len(m.partitions) for t, m in md.topics.items() if t in mine}

    def wait_metadata(self, logical: str, present: bool, timeout: float = 20.0) -> None:
        """Kafka's metadata is eventually consistent: wait until the topic is (or is no longer) listed."""
        deadline = time.monotonic() + timeout
        while (logical in self.metadata_topics()) != present:
            assert time.monotonic() < deadline, \
                f"{self.target.name}: topic {logical} {'not listed' if present else 'still listed'} after {timeout}s"
            time.sleep(0.1)

    def offsets(self, logical: str, partitions: int, spec: str, timestamp: int | None = None) -> dict[int, int | str]:
        """ListOffsets `spec` ("earliest", "latest", "max_timestamp", or "for_timestamp" with `timestamp`) per
        partition: the offset, or the error name."""
        name = self.topic(logical)
        make = getattr(OffsetSpec, spec)
        want = {TopicPartition(name, p): make(timestamp) if timestamp is not None else make()
                for p in range(partitions)}
        out: dict[int, int | str] = {}
        for tp, fut in self.admin.list_offsets(want, request_timeout=30).items():
            try:
                out[tp.partition] = fut.result(30).offset
            except KafkaException as e:
                out[tp.partition] = error_name(e)
        return out

    # -- data

    def create_partitions(self, logical: str, total: int) -> str:
        from confluent_kafka.admin import NewPartitions
        name = self.topic(logical)
        try:
            self.admin.create_partitions([NewPartitions(name, total)], request_timeout=30)[name].result(30)
        except KafkaException as e:
            return error_name(e)
        return "NONE"

    def produce(self, logical: str, records: list[tuple], **settings) -> list[tuple]:
        """Produces (partition, key, value[, timestamp ms]) records with acks=all, in order; returns per record
        (partition, offset, error name)."""
        name = self.topic(logical)
        results: list = [None] * len(records)

        def report(i):
            def cb(err, msg):
                results[i] = (msg.partition(), msg.offset() if err is None else -1, error_name(err))
            return cb

        p = Producer(self.conf(**{"acks": "all", "linger.ms": 5, "enable.idempotence": True, **settings}))
        for i, (partition, key, value, *timestamp) in enumerate(records):
            p.produce(name, value, key=key, partition=partition, on_delivery=report(i),
                      **({"timestamp": timestamp[0]} if timestamp else {}))
            p.poll(0)
        assert p.flush(60) == 0, f"{self.target.name}: records unacknowledged after 60 s"
        return results

    def consume(self, logical: str, partitions: int, count: int, group: str | None = None,
                timeout: float = 60.0) -> dict[int, list[tuple[int, bytes | None, bytes]]]:
        """`count` records from the beginning: per partition [(offset, key, value)]. With `group`, subscribes
        in that group and commits; else assigns every partition."""
        name = self.topic(logical)
        conf = self.conf(**{"group.id": self.group(group) if group else f"assign-{uuid.uuid4().hex[:8]}",
                            "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c = Consumer(conf)
        out: dict[int, list] = {p: [] for p in range(partitions)}
        got = 0
        try:
            if group:
                c.subscribe([name])
            else:
                c.assign([TopicPartition(name, p, 0) for p in range(partitions)])
            deadline = time.monotonic() + timeout
            while got < count and time.monotonic() < deadline:
                for m in c.consume(500, 1.0):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise AssertionError(f"{self.target.name}: consume error {m.error()}")
                    out[m.partition()].append((m.offset(), m.key(), m.value()))
                    got += 1
            if group:
                c.commit(asynchronous=False)
        finally:
            c.close()
        return out


def run_differential(scenario: Callable[[Client], dict], targets: list[Target],
                     known: dict[str, Callable[[dict], dict]] | None = None) -> dict[str, dict]:
    """Runs `scenario` once per target and requires every target's observations to equal the first's
    (Apache Kafka's). `known` may map a target name to a function that removes an observation the target is
    documented to differ on (the reason lives with the caller). Returns the observations by target."""
    run = uuid.uuid4().hex[:8]
    seen: dict[str, dict] = {}
    for target in targets:
        client = Client(target, run)
        observed = scenario(client)
        observed = json.loads(client.logical(json.dumps(observed, default=_jsonable)))
        if known and target.name in known:
            observed = known[target.name](observed)
        seen[target.name] = observed
    reference = targets[0].name
    problems = []
    for target in targets[1:]:
        problems += [f"{path}: {reference} saw {a!r}, {target.name} saw {b!r}"
                     for path, a, b in _differences(seen[reference], seen[target.name])]
    assert not problems, f"{scenario.__name__}: the clients saw different answers:\n  " + "\n  ".join(problems)
    return seen


def _jsonable(v):
    if isinstance(v, bytes):
        return v.decode(errors="backslashreplace")
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"not JSON: {v!r}")


def _differences(a, b, path: str = "") -> list[tuple[str, object, object]]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [(path, _short(a), _short(b))]


def _short(v):
    text = repr(v)
    return v if len(text) <= 300 else text[:300] + "..."
