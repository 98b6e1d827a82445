"""`kgate doctor listeners` against real brokers on loopback: a healthy 3-broker cluster behind kgate, and
each classic mistake reproduced for real (only loopback addresses: a "bad" advertised address is a closed
port on 127.0.0.x or a name under .invalid). The doctor must name the mistake, and exit 0 only when every
endpoint a client would use works."""
from __future__ import annotations

import json
import subprocess

import pytest

from peerlib import free_port
from seclib import provision, sasl_ssl, secure_kgate
from upstreamlib import MockCluster, free_port_block, upstream_kgate


def doctor(kgate_bin: str, *args: str) -> tuple[int, dict]:
    cp = subprocess.run([kgate_bin, "doctor", "listeners", "--timeout", "3", "--json", *args],
                        capture_output=True, text=True, timeout=120)
    assert cp.returncode in (0, 1), f"exit {cp.returncode}: {cp.stderr}"
    report = json.loads(cp.stdout)
    assert report["ok"] == (cp.returncode == 0)
    return cp.returncode, {s["name"]: s for s in report["steps"]}


@pytest.fixture
def mock3():
    m = MockCluster(3, topics=("spread:6",))
    yield m
    m.stop()


def test_a_healthy_cluster_behind_kgate_passes(kgate_factory, kgate_bin, mock3):
    k = upstream_kgate(kgate_factory, mock3.bootstrap)
    code, steps = doctor(kgate_bin, "--bootstrap", k.bootstrap)
    assert code == 0, steps
    for i in (1, 2, 3):
        assert steps[f"broker {i}"]["status"] == "ok"
        assert f"127.0.0.1:{k.base_port + i}" in steps[f"broker {i}"]["detail"]
    assert steps["coordinator"]["status"] == "ok"
    # Human output too: one line per check and the summary.
    cp = subprocess.run([kgate_bin, "doctor", "listeners", "--bootstrap", k.bootstrap], capture_output=True,
                        text=True, timeout=60)
    assert cp.returncode == 0 and "all 6 checks passed" in cp.stdout, cp.stdout


def test_advertised_address_that_does_not_answer_and_its_coordinator(kgate_factory, kgate_bin):
    """The broker advertises 127.0.0.3:<closed>: bootstrap works, the advertised listener does not."""
    k = kgate_factory(start=False)
    closed = free_port()
    k.config["listeners"][0]["advertised"] = f"127.0.0.3:{closed}"
    k.config_path.write_text(__import__("peerlib").to_toml(k.config))
    k.start()
    code, steps = doctor(kgate_bin, "--bootstrap", k.bootstrap)
    assert code == 1
    assert steps["bootstrap"]["status"] == "ok"
    broker = steps["broker 0"]
    assert broker["status"] == "fail" and f"cannot connect to 127.0.0.3:{closed}" in broker["detail"], broker
    assert "bootstrap server answered" in broker["why"] and "advertised.listeners" in broker["fix"]
    assert steps["coordinator"]["status"] == "fail" and "not reachable" in steps["coordinator"]["detail"]


def test_advertised_name_that_does_not_resolve(kgate_factory, kgate_bin):
    k = kgate_factory(start=False)
    k.config["listeners"][0]["advertised"] = f"broker-0.kafka.invalid:{k.port}"
    k.config_path.write_text(__import__("peerlib").to_toml(k.config))
    k.start()
    code, steps = doctor(kgate_bin, "--bootstrap", k.bootstrap)
    assert code == 1
    assert steps["broker 0"]["status"] == "fail"
    assert "broker-0.kafka.invalid does not resolve" in steps["broker 0"]["detail"]
    assert "resolvable" in steps["broker 0"]["fix"]


def test_closed_bootstrap_port(kgate_bin):
    code, steps = doctor(kgate_bin, "--bootstrap", f"127.0.0.1:{free_port()}")
    assert code == 1
    assert steps["bootstrap"]["status"] == "fail" and "Connection refused" in steps["bootstrap"]["detail"]
    assert list(steps) == ["bootstrap"]


def test_only_the_coordinator_is_unreachable(kgate_factory, kgate_bin, mock3):
    """Broker 3 is advertised at 127.0.0.3:P, which nothing answers (kgate listens on 127.0.0.1:P); the
    group's coordinator is broker 3. Brokers 1 and 2 pass, broker 3 and the coordinator fail."""
    mock3.command("coordinator group payments 3")
    k = kgate_factory(start=False)
    base = free_port_block(5)
    listeners = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
                  "broker_addresses": {"scheme": "port_per_broker", "base_port": base,
                                       "brokers": {"3": f"127.0.0.3:{base + 4}"}}}]
    k = upstream_kgate(lambda start: k, mock3.bootstrap, listeners=listeners)
    code, steps = doctor(kgate_bin, "--bootstrap", k.bootstrap, "--group", "payments")
    assert code == 1
    assert steps["broker 1"]["status"] == "ok" and steps["broker 2"]["status"] == "ok"
    assert steps["broker 3"]["status"] == "fail" and f"127.0.0.3:{base + 4}" in steps["broker 3"]["detail"]
    coordinator = steps["coordinator"]
    assert coordinator["status"] == "fail" and "broker 3" in coordinator["detail"], coordinator
    assert "Timed out waiting for a node assignment" in coordinator["why"]


@pytest.fixture(scope="module")
def pki(kgate_bin, tmp_path_factory):
    return provision(kgate_bin, tmp_path_factory.mktemp("pki"))


def test_tls_name_and_sasl_are_checked(kgate_factory, kgate_bin, pki, tmp_path):
    k = secure_kgate(kgate_factory, [sasl_ssl("SECURE", pki.certs_lh, host="localhost")],
                     security={"users_file": str(pki.users_file)})
    port = k.ports["SECURE"]
    good = tmp_path / "alice.pass"
    good.write_text(pki.passwords["alice"] + "\n")
    bad = tmp_path / "bad.pass"
    bad.write_text("not-the-password\n")
    common = ["--security-protocol", "SASL_SSL", "--sasl-mechanism", "SCRAM-SHA-512", "--username", "alice",
              "--ca", pki.certs_lh.ca]
    code, steps = doctor(kgate_bin, "--bootstrap", f"localhost:{port}", *common, "--password-file", str(good))
    assert code == 0, steps
    assert "SASL SCRAM-SHA-512" in steps["bootstrap"]["detail"]
    code, steps = doctor(kgate_bin, "--bootstrap", f"localhost:{port}", *common, "--password-file", str(bad))
    assert code == 1 and "SASL" in steps["bootstrap"]["detail"], steps
    assert "--password-file" in steps["bootstrap"]["fix"]
    # 127.0.0.1 is not in the certificate (SAN localhost only).
    code, steps = doctor(kgate_bin, "--bootstrap", f"127.0.0.1:{port}", *common, "--password-file", str(good))
    assert code == 1 and "TLS" in steps["bootstrap"]["detail"], steps
    assert "subjectAltName" in steps["bootstrap"]["fix"]
    # Wrong protocol: plaintext against the TLS listener.
    code, steps = doctor(kgate_bin, "--bootstrap", f"localhost:{port}")
    assert code == 1 and steps["bootstrap"]["status"] == "fail"


def test_bad_usage_exits_64(kgate_bin):
    for args in (["--bootstrap", "nohost"], ["--bootstrap", "127.0.0.1:9", "--security-protocol", "SSL"],
                 ["--bootstrap", "127.0.0.1:9", "--security-protocol", "SASL_PLAINTEXT"]):
        cp = subprocess.run([kgate_bin, "doctor", "listeners", *args], capture_output=True, text=True, timeout=30)
        assert cp.returncode == 64, (args, cp.stderr)
        assert "kgate doctor listeners:" in cp.stderr
