"""The `kgate serve` command line contract: config errors (exit 64), defaults, graceful SIGTERM."""
import json
import signal
import socket
import subprocess
import time

from peerlib import kcat, to_toml


def run_serve(kgate_bin, cfg_text, tmp_path, timeout=20):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(cfg_text)
    return subprocess.run([kgate_bin, "serve", "--config", str(cfg)], capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path, stdin=subprocess.DEVNULL)


def base_config(tmp_path, port):
    return {
        "data_dir": str(tmp_path / "data"),
        "listeners": [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{port}", "security_protocol": "PLAINTEXT"}],
        "broker": {"node_id": 0, "auto_create_topics": True, "num_partitions": 1,
                   "group_initial_rebalance_delay_ms": 0},
        "network": {"socket_request_max_bytes": 104857600},
    }


def test_unknown_config_key_exits_64(kgate_bin, tmp_path):
    cfg = base_config(tmp_path, 1)
    cfg["broker"]["no_such_setting"] = 5
    cp = run_serve(kgate_bin, to_toml(cfg), tmp_path)
    assert cp.returncode == 64, f"exit {cp.returncode}; stderr:\n{cp.stderr}"
    assert "no_such_setting" in cp.stderr, cp.stderr


def test_invalid_config_lists_every_problem(kgate_bin, tmp_path):
    cfg = base_config(tmp_path, 1)
    cfg["listeners"] = [
        {"name": "PLAINTEXT", "bind": "not-an-address", "security_protocol": "PLAINTEXT"},
        {"name": "OTHER", "bind": "127.0.0.1:99999", "security_protocol": "PLAINTEXT"},
    ]
    cp = run_serve(kgate_bin, to_toml(cfg), tmp_path)
    assert cp.returncode == 64, f"exit {cp.returncode}; stderr:\n{cp.stderr}"
    assert "not-an-address" in cp.stderr and "99999" in cp.stderr, \
        f"both bad bind addresses must be reported:\n{cp.stderr}"


def test_malformed_toml_exits_64(kgate_bin, tmp_path):
    cp = run_serve(kgate_bin, "data_dir = \n[[listeners\n", tmp_path)
    assert cp.returncode == 64, f"exit {cp.returncode}; stderr:\n{cp.stderr}"


def test_advertised_defaults_to_bind_and_sigterm_exits_0(kgate_factory):
    k = kgate_factory(start=False)
    del k.config["listeners"][0]["advertised"]
    k.config_path.write_text(to_toml(k.config))
    k.start()
    md = json.loads(kcat("-b", k.bootstrap, "-L", "-J").stdout)
    assert md["brokers"] == [{"id": 0, "name": k.bootstrap}]
    k.stop()


def test_serve_without_config_uses_defaults(kgate_bin, tmp_path):
    with socket.socket() as probe:
        busy = probe.connect_ex(("127.0.0.1", 9092)) == 0
    assert not busy, "127.0.0.1:9092 is already in use; this test needs it (kgate serve's default port)"
    log = open(tmp_path / "stderr.log", "wb")
    proc = subprocess.Popen([kgate_bin, "serve"], cwd=tmp_path, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"kgate serve exited {proc.returncode}: " + \
                (tmp_path / "stderr.log").read_text()[-2000:]
            try:
                socket.create_connection(("127.0.0.1", 9092), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "kgate serve did not listen on 127.0.0.1:9092"
                time.sleep(0.05)
        kcat("-b", "127.0.0.1:9092", "-P", "-t", "defaults", "-p", "0", input=b"hello\n")
        out = kcat("-b", "127.0.0.1:9092", "-C", "-t", "defaults", "-p", "0", "-o", "beginning", "-e", "-q",
                   "-f", "%o:%s\\n").stdout.decode()
        assert out.splitlines() == ["0:hello"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()
    data = tmp_path / "data"
    assert data.is_dir() and any(data.rglob("*")), "no data written under ./data"
    assert "panicked" not in (tmp_path / "stderr.log").read_text()
