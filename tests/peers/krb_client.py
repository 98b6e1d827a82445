"""GSSAPI Kafka clients for tests/peers/test_kerberos_*.py, run with .venv-gssapi/bin/python.

The main venv's confluent-kafka (2.16 wheel) has no GSSAPI, so the Kerberos tests run the GSSAPI-capable
Python peers in a subprocess of the separate venv that scripts/install-deps.sh builds:
confluent-kafka 2.0.2 compiled against Debian's librdkafka (Cyrus SASL GSSAPI) and kafka-python with
python-gssapi. This file imports nothing from the test suite.

    krb_client.py confluent|kafka-python roundtrip --bootstrap B --topic T --group G --value V [--value V ...]
    krb_client.py confluent|kafka-python metadata  --bootstrap B [--timeout S]
      [--protocol SASL_PLAINTEXT|SASL_SSL] [--ca CA.pem] [--service-name kafka]

Credentials come from the environment (KRB5_CONFIG, KRB5CCNAME after kinit), as for any GSSAPI client.
Prints one JSON object on stdout:
    {"client", "action", "ok", "produced": [[partition, offset], ...], "consumed": [value, ...],
     "topics": [...], "errors": [every error/warning the client reported, as text]}
and exits 0 (the test judges the result), 2 on bad arguments.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import traceback


class Grab(logging.Handler):
    """Collects every log message (librdkafka's via confluent-kafka's logger=, kafka-python's own)."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        try:
            self.lines.append(f"{record.levelname} {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a log record that does not format must not kill the client
            self.lines.append(f"{record.levelname} {record.msg!r}")


def rdkafka_conf(a, grab_logger) -> dict:
    c = {
        "bootstrap.servers": a.bootstrap,
        "security.protocol": a.protocol,
        "sasl.mechanisms": "GSSAPI",
        "sasl.kerberos.service.name": a.service_name,
        # The ticket comes from the environment's credential cache (the test ran kinit): librdkafka
        # must not run its own kinit.
        "sasl.kerberos.kinit.cmd": "true",
        "logger": grab_logger,
        "error_cb": lambda err: grab_logger.error("error_cb: %s", err),
    }
    if a.protocol == "SASL_SSL":
        c.update({"ssl.ca.location": a.ca, "enable.ssl.certificate.verification": True,
                  "ssl.endpoint.identification.algorithm": "https"})
    return c


def confluent(a, out: dict, grab: Grab) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer  # noqa: F401

    log = logging.getLogger("rdkafka")
    log.setLevel(logging.DEBUG)
    log.addHandler(grab)
    base = rdkafka_conf(a, log)
    deadline = time.monotonic() + a.timeout
    if a.action == "metadata":
        auth_failed = []

        def on_error(err):
            log.error("error_cb: %s", err)
            if err.code() == KafkaError._AUTHENTICATION:
                auth_failed.append(err)
        p = Producer({**base, "error_cb": on_error})
        # Until metadata arrives, an authentication error is reported, or the time is up.
        while True:
            try:
                md = p.list_topics(timeout=1.0)
                out["topics"] = sorted(md.topics)
                out["ok"] = True
                break
            except KafkaException as e:
                p.poll(0.2)  # librdkafka's log lines and error_cb reach Python only from poll()
                if auth_failed or time.monotonic() > deadline:
                    out["errors"].append(f"list_topics: {e}")
                    break
        p.poll(0.5)
        return

    p = Producer({**base, "acks": "all", "message.timeout.ms": int(a.timeout * 1000)})
    produced = []

    def dr(err, msg):
        if err is not None:
            out["errors"].append(f"delivery: {err}")
        else:
            produced.append([msg.partition(), msg.offset()])

    for v in a.value:
        p.produce(a.topic, v.encode(), on_delivery=dr)
    left = p.flush(a.timeout)
    out["produced"] = produced
    if left:
        out["errors"].append(f"flush: {left} records not delivered")
        return

    c = Consumer({**base, "group.id": a.group, "auto.offset.reset": "earliest", "enable.auto.commit": True,
                  "session.timeout.ms": 10000})
    consumed: list[str] = []
    assigned: list = []
    c.subscribe([a.topic], on_assign=lambda consumer, parts: assigned.extend(parts))
    try:
        while len(consumed) < len(a.value) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    out["errors"].append(f"consume: {m.error()}")
                continue
            consumed.append(m.value().decode())
        out["assigned"] = [[tp.topic, tp.partition] for tp in assigned]
        c.commit(asynchronous=False)
        committed = c.committed([tp for tp in assigned], timeout=10) if assigned else []
        out["committed"] = [[tp.topic, tp.partition, tp.offset] for tp in committed]
    except KafkaException as e:
        out["errors"].append(f"consumer: {e}")
    finally:
        c.close()
    out["consumed"] = consumed
    out["ok"] = consumed == a.value


def kafka_python_fixed_eof_read() -> None:
    """kafka-python 3.0.12 drops a response that arrives in the same read as the connection's EOF (see
    seclib.kafka_python_fixed_eof_read); a broker that answers a failed authentication and then closes
    would show up as "socket disconnected" instead of the error. Deliver the data first."""
    from kafka.net import transport as T
    for cls in (T.KafkaTCPTransport, T.KafkaSSLTransport):
        orig = cls.__dict__["_sock_recv"]

        def patched(self, _orig=orig):
            data, err = _orig(self)
            return (data, None) if data and err else (data, err)
        cls._sock_recv = patched


def kafka_python(a, out: dict, grab: Grab) -> None:
    logging.getLogger("kafka").setLevel(logging.INFO)
    logging.getLogger("kafka").addHandler(grab)
    kafka_python_fixed_eof_read()
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient

    base = {"bootstrap_servers": a.bootstrap, "security_protocol": a.protocol, "sasl_mechanism": "GSSAPI",
            "sasl_kerberos_service_name": a.service_name, "request_timeout_ms": int(a.timeout * 1000),
            "reconnect_backoff_max_ms": 1000, "bootstrap_timeout_ms": int(a.timeout * 1000)}
    if a.protocol == "SASL_SSL":
        base.update(ssl_cafile=a.ca, ssl_check_hostname=True)
    if a.action == "metadata":
        try:
            adm = KafkaAdminClient(**base)
            try:
                out["topics"] = sorted(adm.list_topics())
                out["ok"] = True
            finally:
                adm.close()
        except Exception as e:  # noqa: BLE001 - any failure is the result
            out["errors"].append(f"{type(e).__name__}: {e}")
        return

    p = KafkaProducer(acks="all", **base)
    try:
        futures = [p.send(a.topic, v.encode()) for v in a.value]
        p.flush(a.timeout)
        out["produced"] = [[md.partition, md.offset] for md in (f.get(a.timeout) for f in futures)]
    finally:
        p.close(5)
    c = KafkaConsumer(a.topic, group_id=a.group, auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=int(a.timeout * 1000), **base)
    consumed: list[str] = []
    try:
        deadline = time.monotonic() + a.timeout
        while len(consumed) < len(a.value) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500).values():
                consumed += [r.value.decode() for r in recs]
        out["assigned"] = sorted([tp.topic, tp.partition] for tp in c.assignment())
        c.commit()
        out["committed"] = [[tp.topic, tp.partition, c.committed(tp)] for tp in c.assignment()]
    finally:
        c.close()
    out["consumed"] = consumed
    out["ok"] = consumed == a.value


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("client", choices=["confluent", "kafka-python"])
    ap.add_argument("action", choices=["roundtrip", "metadata"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic")
    ap.add_argument("--group")
    ap.add_argument("--value", action="append", default=[])
    ap.add_argument("--protocol", default="SASL_PLAINTEXT", choices=["SASL_PLAINTEXT", "SASL_SSL"])
    ap.add_argument("--ca")
    ap.add_argument("--service-name", default="kafka")
    ap.add_argument("--timeout", type=float, default=30.0)
    a = ap.parse_args()
    if a.action == "roundtrip" and not (a.topic and a.group and a.value):
        ap.error("roundtrip needs --topic, --group and at least one --value")
    if a.protocol == "SASL_SSL" and not a.ca:
        ap.error("SASL_SSL needs --ca")
    grab = Grab()
    out = {"client": a.client, "action": a.action, "ok": False, "produced": [], "consumed": [], "topics": [],
           "errors": []}
    try:
        (confluent if a.client == "confluent" else kafka_python)(a, out, grab)
    except Exception as e:  # noqa: BLE001 - report, do not crash: the test reads the JSON
        out["errors"].append(f"{type(e).__name__}: {e}")
        out["traceback"] = traceback.format_exc()
    out["log"] = grab.lines
    seen = set()
    for line in grab.lines:  # each distinct warning or error once (numbers aside), in order
        key = re.sub(r"\d+", "#", line)
        if line.split(" ", 1)[0] in ("WARNING", "ERROR", "CRITICAL") and key not in seen:
            seen.add(key)
            out["errors"].append(line)
    if a.client == "confluent":
        import confluent_kafka
        out["version"] = [confluent_kafka.version()[0], confluent_kafka.libversion()[0]]
    else:
        import kafka
        out["version"] = [kafka.__version__]
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
