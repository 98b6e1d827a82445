#!/usr/bin/env python3
"""librdkafka's in-process mock Kafka cluster (from the confluent-kafka wheel) as a standalone
PLAINTEXT cluster of N brokers on 127.0.0.1, controlled over stdin:

    down ID     the broker closes its connections and refuses new ones (rd_kafka_mock_broker_set_down)
    up ID       the broker serves again, with its partitions and data intact
    add ID      a new broker joins the cluster (rd_kafka_mock_broker_add)
    leader TOPIC PARTITION ID   moves a partition's leadership
    coordinator group GROUP ID  makes broker ID the group's coordinator

Prints `MOCK_BOOTSTRAP=host:port,...` once ready and `ok <command>` after each command. Stops on
SIGTERM or when stdin closes.
Usage: mock_cluster.py --brokers N [--topic NAME:PARTITIONS ...]"""
import argparse
import ctypes
import glob
import os
import signal
import sys

import confluent_kafka

ap = argparse.ArgumentParser()
ap.add_argument("--brokers", type=int, default=3)
ap.add_argument("--topic", action="append", default=[])
a = ap.parse_args()

libdir = os.path.join(os.path.dirname(confluent_kafka.__file__), "..", "confluent_kafka.libs")
candidates = glob.glob(os.path.join(libdir, "librdkafka*.so*"))
if not candidates:
    sys.exit(f"no librdkafka in {libdir}: the confluent-kafka wheel is expected to bundle it")
lib = ctypes.CDLL(candidates[0])
lib.rd_kafka_conf_new.restype = ctypes.c_void_p
lib.rd_kafka_new.restype = ctypes.c_void_p
lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
lib.rd_kafka_mock_topic_create.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
lib.rd_kafka_mock_broker_set_down.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.rd_kafka_mock_broker_set_up.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.rd_kafka_mock_broker_add.argtypes = [ctypes.c_void_p, ctypes.c_int32]
lib.rd_kafka_mock_partition_set_leader.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
lib.rd_kafka_mock_coordinator_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32]
lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]

errstr = ctypes.create_string_buffer(512)
rk = lib.rd_kafka_new(0, lib.rd_kafka_conf_new(), errstr, 512)  # a producer handle only hosts the mock
if not rk:
    sys.exit("rd_kafka_new failed: " + errstr.value.decode())
mc = lib.rd_kafka_mock_cluster_new(rk, a.brokers)
if not mc:
    sys.exit("rd_kafka_mock_cluster_new failed")
for t in a.topic:
    name, _, parts = t.partition(":")
    lib.rd_kafka_mock_topic_create(mc, name.encode(), int(parts or 1), 1)

def stop(*_):
    # The ports close with the process; nothing else to release.
    os._exit(0)


signal.signal(signal.SIGTERM, stop)
print("MOCK_BOOTSTRAP=" + lib.rd_kafka_mock_cluster_bootstraps(mc).decode(), flush=True)
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    cmd = words[0]
    if cmd == "down":
        rc = lib.rd_kafka_mock_broker_set_down(mc, int(words[1]))
    elif cmd == "up":
        rc = lib.rd_kafka_mock_broker_set_up(mc, int(words[1]))
    elif cmd == "add":
        rc = lib.rd_kafka_mock_broker_add(mc, int(words[1]))
    elif cmd == "leader":
        rc = lib.rd_kafka_mock_partition_set_leader(mc, words[1].encode(), int(words[2]), int(words[3]))
    elif cmd == "coordinator":
        rc = lib.rd_kafka_mock_coordinator_set(mc, words[1].encode(), words[2].encode(), int(words[3]))
    else:
        print(f"error unknown command {cmd}", flush=True)
        continue
    print(f"{'ok' if rc == 0 else 'error ' + str(rc)} {line.strip()}", flush=True)
lib.rd_kafka_mock_cluster_destroy(mc)
lib.rd_kafka_destroy(rk)
