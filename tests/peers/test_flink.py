"""Apache Flink 2.2.1 with flink-connector-kafka 5.0.0-2.2 (KafkaSink and KafkaSource, kafka-clients 4.2.0)
against kgate's SASL_PLAINTEXT + GSSAPI listener, the way Flink users run it.

java/FlinkKafkaJob.java is compiled by the test against .cache/flink-2.2.1/libs (scripts/install-deps.sh,
sha256-locked in scripts/maven/flink/) and runs as a plain `java` main() in a local MiniCluster, one JVM per
job, with Flink's Java 17 options (env.java.opts.all of Flink's config.yaml). Kerberos is Flink's own keytab
login: the Flink options security.kerberos.login.keytab, .principal, .use-ticket-cache=false and
.contexts=KafkaClient, installed by Flink's SecurityUtils.install (its JaasModule registers a Krb5LoginModule
keytab entry under the KafkaClient JAAS context, which the Kafka clients then use), plus
-Djava.security.krb5.conf for the test KDC. There is no JAAS file, no sasl.jaas.config and no ticket cache
(KRB5* variables are removed from the job's environment), so the records can only have moved if Flink's
login worked; the job prints the JAAS entry Flink installed and the test checks it.

The write job sends COUNT records (key "key-<i mod KEYS>", value "value-<i>", i in order) through a KafkaSink
with AT_LEAST_ONCE delivery into a 3-partition topic; the bounded read job (earliest to the latest offsets seen
at start) prints partition, offset, key and value of each record. Asserted: exactly the records written, none
missing or duplicated (no failures, so at-least-once must not have retried anything into a duplicate), every
partition used, each key on the one partition Kafka's default partitioner (murmur2) picks for it, per partition
the offsets strictly increasing up to the high watermark, and each key's values in the order written; an
independent reader (confluent-kafka on a PLAINTEXT listener) sees the same records at the same offsets; and
kgate's log shows every connection of both jobs authenticated with GSSAPI as client@EXAMPLE.COM, principal
User:client.

Runs on the embedded broker, and with kgate in upstream mode in front of a real Apache Kafka 4.4.0 node.
"""
from __future__ import annotations

import collections
import re
import subprocess
import time
from pathlib import Path

import pytest

from apache_kafka import Listener
from krblib import (CLIENT_PRINCIPAL, GSS, _environ, base_env, gss_auth, gss_failures, gss_kgate,  # noqa: F401
                    kdc, run, unique)
from peerlib import REPO, consume_all, create_topic, free_port, to_toml, watermarks
from seclib import listener_addr
from upstreamlib import free_port_block

FLINK_VERSION = "2.2.1"
FLINK_LIBS = REPO / ".cache" / f"flink-{FLINK_VERSION}" / "libs"
JOB_SOURCE = Path(__file__).resolve().parent / "java" / "FlinkKafkaJob.java"
INSTALL_HINT = "run scripts/install-deps.sh (it resolves Flink and its Kafka connector from Maven Central)"

COUNT, KEYS, PARTITIONS = 3000, 30, 3

# Flink's env.java.opts.all (flink-dist config.yaml), which its launch scripts pass to every JVM on Java 17+.
FLINK_JAVA17_OPTS = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED",
    "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED",
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED",
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/java.net=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens=java.base/java.text=ALL-UNNAMED",
    "--add-opens=java.base/java.time=ALL-UNNAMED",
    "--add-opens=java.base/java.util=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED",
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED",
]

LOG4J2 = """status = error
appender.err.type = Console
appender.err.name = ERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %d{HH:mm:ss.SSS} %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = ERR
# Which security modules Flink installed, and the Kafka clients' logins and connections that fail.
logger.sec.name = org.apache.flink.runtime.security
logger.sec.level = INFO
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
"""


@pytest.fixture(scope="module")
def flink_job(tmp_path_factory) -> Path:
    """java/FlinkKafkaJob.java compiled with the system javac against the Flink jars; a log4j2 config beside."""
    jars = list(FLINK_LIBS.glob("flink-connector-kafka-*.jar")) if FLINK_LIBS.is_dir() else []
    if not jars or not (FLINK_LIBS / f"flink-runtime-{FLINK_VERSION}.jar").exists():
        pytest.fail(f"{FLINK_LIBS} has no Flink {FLINK_VERSION} / flink-connector-kafka jars: {INSTALL_HINT}",
                    pytrace=False)
    out = tmp_path_factory.mktemp("flink-job")
    cp = run(["javac", "-nowarn", "-Xlint:-options", "-d", str(out / "classes"), "-cp", f"{FLINK_LIBS}/*",
              str(JOB_SOURCE)], base_env(), timeout=180)
    assert cp.returncode == 0, f"javac FlinkKafkaJob.java failed:\n{cp.stdout}\n{cp.stderr}"
    (out / "log4j2.properties").write_text(LOG4J2)
    return out


def run_job(job: Path, kdc, work: Path, mode: str, bootstrap: str, topic: str, *args: str,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """One Flink job in its own JVM (the MiniCluster's scratch files under `work`), logged in with the
    client's keytab through Flink's security.kerberos.login.* options."""
    work.mkdir(parents=True, exist_ok=True)
    flink_options = {
        "security.kerberos.login.keytab": str(kdc.client_keytab),
        "security.kerberos.login.principal": CLIENT_PRINCIPAL,
        "security.kerberos.login.use-ticket-cache": "false",
        "security.kerberos.login.contexts": "KafkaClient",
        "io.tmp.dirs": str(work),
    }
    # C1 only and the serial GC: a short job's JVM starts with about half the CPU on two cores.
    cmd = ["java", "-Xmx512m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", *FLINK_JAVA17_OPTS,
           f"-Djava.io.tmpdir={work}", f"-Djava.security.krb5.conf={kdc.krb5_conf}",
           f"-Dlog4j2.configurationFile={job / 'log4j2.properties'}",
           "-cp", f"{job / 'classes'}:{FLINK_LIBS}/*", "FlinkKafkaJob", mode, bootstrap, topic, *args,
           *(f"{k}={v}" for k, v in flink_options.items())]
    t0 = time.monotonic()
    cp = run(cmd, base_env(), timeout=timeout, cwd=work)
    (work / f"{mode}.stdout").write_text(cp.stdout)
    (work / f"{mode}.stderr").write_text(cp.stderr)
    # The job's own lines; a library may add others to stdout (Log4j's status logger, when a Flink thread
    # still logs while the JVM exits: "WARN Unable to register Log4j shutdown hook because JVM is shutting down").
    ours = [line for line in cp.stdout.splitlines()
            if line.startswith(("REC\t", "JAAS KafkaClient ", "WROTE ")) or line == "DONE"]
    assert cp.returncode == 0 and ours and ours[-1] == "DONE", \
        f"Flink {mode} job exited {cp.returncode} after {time.monotonic() - t0:.1f}s; its exceptions:\n" \
        f"{java_causes(cp.stderr)}\nstdout (tail):\n{cp.stdout[-2000:]}\nstderr (tail):\n{cp.stderr[-4000:]}\n" \
        f"(all of it in {work})"
    jaas = re.findall(r"^JAAS KafkaClient (\S+) \{(.*)\}$", cp.stdout, re.M)
    assert len(jaas) == 1 and jaas[0][0] == "com.sun.security.auth.module.Krb5LoginModule", \
        f"Flink's JaasModule did not install one Krb5LoginModule entry for KafkaClient: {jaas}\n{cp.stdout[:2000]}"
    options = dict(kv.split("=", 1) for kv in jaas[0][1].split(", "))
    want = {"useKeyTab": "true", "keyTab": str(kdc.client_keytab), "principal": CLIENT_PRINCIPAL}
    assert {k: options.get(k) for k in want} == want and options.get("useTicketCache", "false") == "false", \
        f"the KafkaClient entry Flink installed is not the keytab login: {options}"
    return cp


def murmur2(data: bytes) -> int:
    """Kafka's Utils.murmur2 (32-bit, seed 0x9747b28c), as unsigned: the Java producer's default partitioner
    puts a keyed record on (murmur2(key) & 0x7fffffff) % partitions."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    n = len(data)
    h = (0x9747B28C ^ n) & mask
    for i in range(0, n - n % 4, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & mask
        k = ((k ^ (k >> 24)) * m) & mask
        h = ((h * m) & mask) ^ k
    tail = n - n % 4
    if n % 4 == 3:
        h ^= data[tail + 2] << 16
    if n % 4 >= 2:
        h ^= data[tail + 1] << 8
    if n % 4 >= 1:
        h = ((h ^ data[tail]) * m) & mask
    h = ((h ^ (h >> 13)) * m) & mask
    return h ^ (h >> 15)


def java_causes(stderr: str) -> str:
    """The distinct exception lines of the Java stack traces ("x.y.SomeException: ..." and "Caused by: ..."),
    so that a failure shows the root cause (e.g. a Kafka client error) rather than the end of a trace."""
    seen: list[str] = []
    for line in stderr.splitlines():
        line = line.strip()
        if re.match(r"(Caused by: )?[\w$.]+(Exception|Error)(: |$)", line):
            line = line.removeprefix("Caused by: ")
            if line not in seen:
                seen.append(line)
    return "\n".join(seen[-12:]) or "(none)"


def expected_records() -> dict[str, list[str]]:
    """key -> its values in the order the write job sends them."""
    out: dict[str, list[str]] = collections.defaultdict(list)
    for i in range(COUNT):
        out[f"key-{i % KEYS}"].append(f"value-{i}")
    return out


def parse_records(stdout: str) -> list[tuple[int, int, str, str]]:
    """(partition, offset, key, value) of the read job's REC lines, in output order."""
    recs = []
    for line in stdout.splitlines():
        if line.startswith("REC\t"):
            fields = line.split("\t")
            assert len(fields) == 5 and fields[1].isdigit() and fields[2].isdigit(), f"malformed line: {line!r}"
            recs.append((int(fields[1]), int(fields[2]), fields[3], fields[4]))
    return recs


def check_records(recs: list[tuple[int, int, str, str]], high: dict[int, int]) -> dict[int, list]:
    """The assertions on what the read job printed (see the module docstring); returns
    {partition: [(offset, key, value)]}."""
    values = collections.Counter(v for _, _, _, v in recs)
    written = {f"value-{i}" for i in range(COUNT)}
    missing = sorted(written - set(values), key=lambda v: int(v.split("-")[1]))
    dups = sorted(v for v, n in values.items() if n > 1)
    extra = sorted(set(values) - written)
    assert not missing and not dups and not extra and len(recs) == COUNT, \
        f"read {len(recs)} records for {COUNT} written: {len(missing)} missing (first {missing[:10]}), " \
        f"{len(dups)} duplicated (first {dups[:10]}), unexpected {extra[:10]}"
    wrong_key = [(k, v) for _, _, k, v in recs if k != f"key-{int(v.split('-')[1]) % KEYS}"]
    assert not wrong_key, f"records with the wrong key for their value: {wrong_key[:10]}"

    by_partition: dict[int, list] = collections.defaultdict(list)
    for p, o, k, v in recs:
        by_partition[p].append((o, k, v))
    assert sorted(by_partition) == list(range(PARTITIONS)), \
        f"records on partitions {sorted(by_partition)}, want all of 0..{PARTITIONS - 1} ({KEYS} keys)"
    for p, rows in by_partition.items():
        offsets = [o for o, _, _ in rows]
        bad = next((i for i in range(1, len(offsets)) if offsets[i] <= offsets[i - 1]), None)
        assert bad is None, \
            f"partition {p}: offsets not strictly increasing at #{bad}: {offsets[max(0, bad - 3):bad + 3]}"
        assert offsets[-1] == high[p] - 1 and len(offsets) == high[p], \
            f"partition {p}: read {len(offsets)} records up to offset {offsets[-1]}, high watermark {high[p]}"

    key_partitions = collections.defaultdict(set)
    key_values = collections.defaultdict(list)
    for p, rows in sorted(by_partition.items()):
        for _, k, v in rows:
            key_partitions[k].add(p)
            key_values[k].append(v)
    split = {k: sorted(ps) for k, ps in key_partitions.items() if len(ps) > 1}
    assert not split, f"keys on more than one partition: {split}"
    misplaced = {k: (ps, (murmur2(k.encode()) & 0x7FFFFFFF) % PARTITIONS) for k, ps in key_partitions.items()
                 if ps != {(murmur2(k.encode()) & 0x7FFFFFFF) % PARTITIONS}}
    assert not misplaced, f"keys not on the partition the producer's default partitioner picks " \
        f"(key: (found on, murmur2 partition)): {misplaced}"
    want = expected_records()
    reordered = [k for k in want if key_values[k] != want[k]]
    assert not reordered, f"{len(reordered)} keys read out of write order, e.g. {reordered[0]}: " \
        f"{key_values[reordered[0]][:8]} vs {want[reordered[0]][:8]}"
    return by_partition


def check_same_as_plain_reader(by_partition: dict[int, list], bootstrap: str, topic: str) -> None:
    """confluent-kafka over PLAINTEXT reads the same (offset, key, value) per partition as the Flink job."""
    plain = consume_all(bootstrap, topic, PARTITIONS)
    for p in range(PARTITIONS):
        got, flink = [(o, (k or b"").decode(), (v or b"").decode()) for o, k, v in plain[p]], by_partition[p]
        first = next((i for i, (a, b) in enumerate(zip(got, flink)) if a != b), min(len(got), len(flink)))
        assert got == flink, f"partition {p}: the PLAINTEXT reader saw {len(got)} records, the Flink job " \
            f"{len(flink)}; first difference at #{first}: {got[first:first + 1]} vs {flink[first:first + 1]}"


def check_gssapi_logins(k, before: int, what: str) -> int:
    """Every GSSAPI authentication on kgate's GSS listener is client@EXAMPLE.COM as User:client, and the job
    (`what`) added at least one; returns the count."""
    events = gss_auth(k, GSS)
    assert len(events) > before, f"kgate logged no GSSAPI authentication for the {what} job:\n{k.log_tail(40)}"
    wrong = [e for e in events if (e["principal"], e["identity"]) != ("User:client", CLIENT_PRINCIPAL)]
    assert not wrong, f"want principal=User:client identity={CLIENT_PRINCIPAL} on every connection, got {wrong}"
    assert not gss_failures(k), f"failed GSSAPI authentications: {gss_failures(k)}"
    return len(events)


def write_then_read(k, kdc, job: Path, tmp_path: Path, admin_bootstrap: str, plain_bootstrap: str) -> None:
    """The whole scenario on kgate `k`: topic through `admin_bootstrap`, Flink jobs through the GSS listener,
    cross-check through `plain_bootstrap`."""
    topic, group = unique("flink"), unique("flink-read")
    create_topic(admin_bootstrap, topic, PARTITIONS)
    bootstrap = listener_addr(k, GSS)
    assert bootstrap.startswith("localhost:"), bootstrap  # the client asks the KDC for kafka/localhost

    w = run_job(job, kdc, tmp_path / "write", "write", bootstrap, topic, str(COUNT), str(KEYS))
    assert f"WROTE {COUNT}" in w.stdout, w.stdout[-2000:]
    n_write = check_gssapi_logins(k, 0, "write")
    high = {p: hi for p, (_, hi) in watermarks(plain_bootstrap, topic, PARTITIONS).items()}
    assert sum(high.values()) == COUNT, f"after the write job the high watermarks are {high}, want {COUNT} in total"

    r = run_job(job, kdc, tmp_path / "read", "read", bootstrap, topic, group)
    check_gssapi_logins(k, n_write, "read")
    by_partition = check_records(parse_records(r.stdout), high)
    check_same_as_plain_reader(by_partition, plain_bootstrap, topic)
    k.assert_alive()


def test_flink_kafka_sink_and_source_over_gssapi(kgate_factory, kdc, flink_job, tmp_path):
    k = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    write_then_read(k, kdc, flink_job, tmp_path, k.bootstrap, k.bootstrap)


@pytest.fixture(scope="module")
def kafka(kafka_factory):
    """One Apache Kafka 4.4.0 node with a PLAINTEXT listener: kgate's upstream."""
    return kafka_factory(nodes=1, listeners=[Listener("CLIENT", "PLAINTEXT")])


def test_flink_through_kgate_in_front_of_apache_kafka(kgate_factory, kdc, kafka, flink_job, tmp_path):
    """The same jobs through kgate in upstream mode: GSSAPI ends at kgate, which forwards to Kafka over
    PLAINTEXT; the independent reader reads Kafka itself."""
    k = kgate_factory(start=False)
    rows = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
             "security_protocol": "PLAINTEXT"}]
    port = free_port()
    rows.append({"name": GSS, "bind": f"127.0.0.1:{port}", "advertised": f"localhost:{port}",
                 "security_protocol": "SASL_PLAINTEXT", "sasl_enabled_mechanisms": ["GSSAPI"]})
    for row in rows:
        row["broker_addresses"] = {"scheme": "port_per_broker", "base_port": free_port_block(3)}
    k.ports, k.hosts = {"PLAINTEXT": k.port, GSS: port}, {"PLAINTEXT": "127.0.0.1", GSS: "localhost"}
    k.config["listeners"] = rows
    k.config["backend"] = {"kind": "upstream", "bootstrap": [kafka.bootstrap("CLIENT")]}
    k.config["kerberos"] = {"keytab": str(kdc.kafka_keytab), "service_name": "kafka", "krb5_conf": str(kdc.krb5_conf)}
    k.config_path.write_text(to_toml(k.config))
    (k.workdir / "rcache").mkdir(exist_ok=True)
    with _environ(KRB5RCACHEDIR=str(k.workdir / "rcache")):
        k.start()
    write_then_read(k, kdc, flink_job, tmp_path, k.bootstrap, kafka.bootstrap("CLIENT"))
