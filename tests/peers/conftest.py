"""Fixtures for the peer tests: a kgate binary (built once), and a factory of kgate servers.

    def test_x(kgate):             # one server with the default config, already accepting
        kgate.bootstrap            # "127.0.0.1:PORT"
        kgate.stop() / kgate.kill9() / kgate.restart() / kgate.log_path

    def test_y(kgate_factory):     # custom config: kgate_factory(network={"socket_request_max_bytes": 1 << 20})

At teardown every server still running is killed by PID, and the test fails if any server's stderr
log contains "panicked".
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from apache_kafka import KafkaCluster
from peerlib import REPO, Kgate


def _build_release() -> str:
    cp = subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "kgate", "--message-format=json"],
                        cwd=REPO, capture_output=True, text=True, timeout=1800)
    if cp.returncode != 0:
        pytest.exit(f"cargo build --release failed:\n{cp.stderr[-5000:]}", returncode=1)
    for line in cp.stdout.splitlines():
        try:
            m = json.loads(line)
        except ValueError:
            continue
        if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kgate":
            return m["executable"]
    pytest.exit("cargo build succeeded but reported no kgate executable", returncode=1)


@pytest.fixture(scope="session")
def kgate_bin() -> str:
    """$KGATE_BIN (set by scripts/test.sh), else `cargo build --release` now."""
    path = os.environ.get("KGATE_BIN") or _build_release()
    if not os.access(path, os.X_OK):
        pytest.exit(f"kgate binary {path} is not executable", returncode=1)
    return path


def _kgate_servers(kgate_bin: str, root: Path):
    """A factory of kgate servers under `root`; at the end every one is stopped and the test (or module)
    fails if any server's log shows a panic."""
    servers: list[Kgate] = []

    def make(start: bool = True, rlimit_as: int | None = None, **overrides) -> Kgate:
        k = Kgate(kgate_bin, Path(root) / f"kgate{len(servers)}", overrides, rlimit_as=rlimit_as)
        servers.append(k)
        if start:
            k.start()
        return k

    yield make
    problems = []
    for k in servers:
        k.cleanup()
        text = k.log_text()
        if "panicked" in text:
            at = text.index("panicked")
            problems.append(f"{k.log_path} contains a panic:\n{text[max(0, at - 500):at + 2500]}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def kgate_factory(kgate_bin, tmp_path):
    yield from _kgate_servers(kgate_bin, tmp_path)


@pytest.fixture(scope="module")
def module_kgate_factory(kgate_bin, tmp_path_factory):
    """kgate_factory for servers that a whole test module shares (e.g. beside one Apache Kafka cluster)."""
    yield from _kgate_servers(kgate_bin, tmp_path_factory.mktemp("kgate"))


@pytest.fixture(scope="module")
def kafka_factory(tmp_path_factory):
    """Apache Kafka 4.4.0 clusters (apache_kafka.KafkaCluster, started) shared by a test module, stopped by
    PID at its end; their logs stay under pytest's temporary directory."""
    clusters: list[KafkaCluster] = []

    def make(**kw) -> KafkaCluster:
        c = KafkaCluster(tmp_path_factory.mktemp("kafka"), **kw)
        clusters.append(c)
        return c.start()

    yield make
    for c in clusters:
        c.stop()


@pytest.fixture
def kgate(kgate_factory) -> Kgate:
    return kgate_factory()


def pytest_report_header(config):
    return [f"kgate peer tests; KGATE_BIN={os.environ.get('KGATE_BIN', '(cargo build --release)')}"]
