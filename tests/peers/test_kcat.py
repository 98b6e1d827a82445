"""kcat 1.7.1 (Debian, librdkafka 2.0.2): metadata, keyed produce, consume, offsets."""
import json
import re
import zlib

from peerlib import create_topic, kcat, to_toml


def metadata(bootstrap, topic=None):
    args = ["-b", bootstrap, "-L", "-J", "-m", "15"]
    if topic:
        args += ["-t", topic]
    return json.loads(kcat(*args).stdout)


def test_metadata_lists_broker_and_topic(kgate):
    create_topic(kgate.bootstrap, "meta-t", partitions=3)
    md = metadata(kgate.bootstrap)
    assert md["brokers"] == [{"id": 0, "name": kgate.bootstrap}], md["brokers"]
    assert md["controllerid"] == 0, md
    topics = {t["topic"]: t for t in md["topics"]}
    assert "meta-t" in topics, sorted(topics)
    t = topics["meta-t"]
    assert "error" not in t, t
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p["leader"] == 0 and p["replicas"] == [{"id": 0}] and p["isrs"] == [{"id": 0}], p


def test_metadata_uses_advertised_address(kgate_factory):
    # Bind on 127.0.0.1 but advertise "localhost": metadata must carry the advertised address.
    k = kgate_factory(start=False)
    k.config["listeners"][0]["advertised"] = f"localhost:{k.port}"
    k.config_path.write_text(to_toml(k.config))
    k.start()
    md = metadata(k.bootstrap)
    assert md["brokers"] == [{"id": 0, "name": f"localhost:{k.port}"}], md["brokers"]


def test_produce_keyed_then_consume_exact(kgate):
    topic, n, parts = "kcat-keyed", 500, 3
    create_topic(kgate.bootstrap, topic, partitions=parts)
    lines = [f"key-{i}:value-{i}-{'x' * (i % 37)}" for i in range(n)]
    kcat("-b", kgate.bootstrap, "-P", "-t", topic, "-K", ":", "-X", "acks=all",
         input=("\n".join(lines) + "\n").encode())
    out = kcat("-b", kgate.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q",
               timeout=60).stdout.decode()
    msgs = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(msgs) == n, f"consumed {len(msgs)} records, produced {n}"
    expected = {p: [] for p in range(parts)}
    for line in lines:
        key, value = line.split(":", 1)
        # kcat's default partitioner (consistent_random) puts a keyed record on crc32(key) % partitions
        expected[zlib.crc32(key.encode()) % parts].append((key, value))
    for p in range(parts):
        got = sorted((m for m in msgs if m["partition"] == p), key=lambda m: m["offset"])
        assert [m["offset"] for m in got] == list(range(len(expected[p]))), f"partition {p} offsets"
        assert [(m["key"], m["payload"]) for m in got] == expected[p], f"partition {p} content/order"
        assert all(m["topic"] == topic for m in got)


def test_auto_create_uses_num_partitions(kgate_factory):
    k = kgate_factory(broker={"num_partitions": 2})
    kcat("-b", k.bootstrap, "-P", "-t", "auto-created", "-p", "1", input=b"a\nb\nc\n")
    md = metadata(k.bootstrap, "auto-created")
    (t,) = md["topics"]
    assert t["topic"] == "auto-created" and "error" not in t, t
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1]
    out = kcat("-b", k.bootstrap, "-C", "-t", "auto-created", "-p", "1", "-o", "beginning", "-e", "-q",
               "-f", "%o:%s\\n").stdout.decode()
    assert out.splitlines() == ["0:a", "1:b", "2:c"]


def test_offsets_query_and_relative_consume(kgate):
    topic = "kcat-offsets"
    create_topic(kgate.bootstrap, topic, partitions=1)
    kcat("-b", kgate.bootstrap, "-P", "-t", topic, "-p", "0",
         input="".join(f"m{i}\n" for i in range(42)).encode())
    # ListOffsets: latest (-1) is 42
    q = kcat("-b", kgate.bootstrap, "-Q", "-t", f"{topic}:0:-1").stdout.decode()
    m = re.search(r"\[0\]\s+offset\s+(-?\d+)", q)
    assert m and int(m.group(1)) == 42, q
    # last 5 records via a logical offset relative to the end
    out = kcat("-b", kgate.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "-5", "-e", "-q",
               "-f", "%o:%s\\n").stdout.decode()
    assert out.splitlines() == [f"{i}:m{i}" for i in range(37, 42)]
    # from an absolute offset
    out = kcat("-b", kgate.bootstrap, "-C", "-t", topic, "-p", "0", "-o", "40", "-e", "-q",
               "-f", "%o:%s\\n").stdout.decode()
    assert out.splitlines() == ["40:m40", "41:m41"]
