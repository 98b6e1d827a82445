"""Helpers shared by the peer tests: kgate process control, kcat, raw Kafka frames, client helpers.

Nothing here depends on anything outside this repository; the Python peers come from ./.venv
(scripts/install-deps.sh) and kcat from Debian.
"""
from __future__ import annotations

import ctypes
import json
import logging
import resource
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup(rlimit_as: int | None):
    def setup() -> None:  # runs in the child between fork and exec
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the test process
        if rlimit_as:
            resource.setrlimit(resource.RLIMIT_AS, (rlimit_as, rlimit_as))
    return setup

# ----------------------------------------------------------------------------------------------
# kgate process


_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (the kernel picks it), never one this process was already
    given: the kernel may hand out a just-released port again, and two listeners of one test would collide."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise AssertionError("no fresh free port in 100 tries")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):  # an inline table, e.g. a listener's `tls`
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {v!r} as TOML")


def to_toml(cfg: dict) -> str:
    """Minimal TOML writer: top-level scalars, tables, arrays of tables; nested tables are written inline."""
    out, tables, arrays = [], [], []
    for k, v in cfg.items():
        if isinstance(v, dict):
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            out.append(f"{k} = {_toml_value(v)}")
    for k, rows in arrays:
        for row in rows:
            out.append(f"\n[[{k}]]")
            out += [f"{rk} = {_toml_value(rv)}" for rk, rv in row.items()]
    for k, tbl in tables:
        out.append(f"\n[{k}]")
        out += [f"{tk} = {_toml_value(tv)}" for tk, tv in tbl.items()]
    return "\n".join(out) + "\n"


class Kgate:
    """One `kgate serve --config FILE` process on a private loopback port and data directory."""

    def __init__(self, binary: str, workdir: Path, overrides: dict | None = None, rlimit_as: int | None = None):
        self.binary = binary
        self.rlimit_as = rlimit_as  # address-space limit (bytes), like `ulimit -v` or a strict overcommit policy
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.data_dir = self.workdir / "data"
        self.config_path = self.workdir / "kgate.toml"
        self.log_path = self.workdir / "kgate.stderr.log"
        self.proc: subprocess.Popen | None = None
        self.exit_codes: list[int] = []
        cfg = {
            "data_dir": str(self.data_dir),
            "listeners": [{
                "name": "PLAINTEXT",
                "bind": f"127.0.0.1:{self.port}",
                "advertised": f"127.0.0.1:{self.port}",
                "security_protocol": "PLAINTEXT",
            }],
            "broker": {
                "node_id": 0,
                "auto_create_topics": True,
                "num_partitions": 1,
                "group_initial_rebalance_delay_ms": 0,
            },
            "network": {"socket_request_max_bytes": 104857600},
        }
        for k, v in (overrides or {}).items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
        self.config = cfg
        self.config_path.write_text(to_toml(cfg))

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        """The last n lines, or the start of a panic/abort report if there is one."""
        text = self.log_text()
        for marker in ("panicked", "memory allocation of", "fatal runtime error"):
            at = text.rfind(marker)
            if at >= 0:
                return text[max(0, at - 300):at + 2500]
        return "\n".join(text.splitlines()[-n:])

    def start(self, ready_timeout: float = 20.0) -> "Kgate":
        assert not self.running(), "kgate already running"
        env = dict(os.environ)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== test harness: starting kgate at {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--config", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.workdir, env=env,
                preexec_fn=_child_setup(self.rlimit_as))
        deadline = time.monotonic() + ready_timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                raise AssertionError(f"kgate exited with {rc} during startup; log:\n{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"kgate did not accept on {self.bootstrap} within {ready_timeout}s; log:\n"
                                     f"{self.log_tail()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, and require a clean exit 0 (graceful stop is part of the contract)."""
        assert self.running(), f"kgate is not running; log:\n{self.log_tail()}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"kgate did not exit within {timeout}s of SIGTERM; log:\n{self.log_tail()}")
        self.exit_codes.append(rc)
        assert rc == 0, f"kgate exited with {rc} after SIGTERM (want 0); log:\n{self.log_tail()}"

    def kill9(self) -> None:
        assert self.running(), f"kgate is not running; log:\n{self.log_tail()}"
        self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait(10))

    def restart(self) -> "Kgate":
        """Graceful stop (if running) and start again on the same port and data dir."""
        if self.running():
            self.stop()
        return self.start()

    def cleanup(self) -> None:
        if self.running():
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def assert_alive(self) -> None:
        assert self.running(), f"kgate died (exit {self.proc.poll()}); log:\n{self.log_tail()}"


# ----------------------------------------------------------------------------------------------
# kcat


def kcat(*args: str, input: bytes | None = None, timeout: float = 60.0, check: bool = True,
         env: dict | None = None) -> subprocess.CompletedProcess:
    """Run kcat with a hard timeout; with check=True a non-zero exit fails the test with its stderr."""
    try:
        cp = subprocess.run(["kcat", *args], input=input, capture_output=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"kcat {' '.join(args)} timed out after {timeout}s; stderr:\n"
                             f"{(e.stderr or b'').decode(errors='replace')[-3000:]}")
    if check:
        assert cp.returncode == 0, (f"kcat {' '.join(args)} exited {cp.returncode}; stderr:\n"
                                    f"{cp.stderr.decode(errors='replace')[-3000:]}")
    return cp


# ----------------------------------------------------------------------------------------------
# Raw Kafka frames (request header v1)


def request_frame(api_key: int, api_version: int, correlation_id: int, client_id: str | None = "peer-test",
                  body: bytes = b"") -> bytes:
    if client_id is None:
        cid = struct.pack(">h", -1)
    else:
        raw = client_id.encode()
        cid = struct.pack(">h", len(raw)) + raw
    payload = struct.pack(">hhi", api_key, api_version, correlation_id) + cid + body
    return struct.pack(">i", len(payload)) + payload


def raw_connect(bootstrap: str, timeout: float = 5.0) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes | None:
    """n bytes, or None if the peer closed first (EOF/reset)."""
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


def recv_frame(s: socket.socket) -> bytes | None:
    hdr = recv_exact(s, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack(">i", hdr)
    assert 0 <= n < 64 << 20, f"bad response size prefix {n}"
    body = recv_exact(s, n)
    assert body is not None, f"connection closed in the middle of a {n}-byte response"
    return body


def assert_closed_by_server(s: socket.socket, timeout: float = 10.0, what: str = "") -> None:
    """The server must close the connection (EOF or RST) without sending a response."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    got = b""
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"{what}: server kept the connection open for {timeout}s (want close)")
        if not chunk:
            assert got == b"", f"{what}: server sent {len(got)} bytes before closing: {got[:64]!r}"
            return
        got += chunk
    raise AssertionError(f"{what}: server did not close within {timeout}s (received {got[:64]!r})")


# ----------------------------------------------------------------------------------------------
# confluent-kafka helpers


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap: str, name: str, partitions: int = 1, config: dict | None = None,
                 timeout: float = 30.0) -> None:
    a = admin(bootstrap)  # keep the handle alive until the future resolves
    fs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=timeout, request_timeout=timeout)
    fs[name].result(timeout)
    wait_topic(bootstrap, name, partitions)


def wait_topic(bootstrap: str, name: str, partitions: int, timeout: float = 20.0) -> None:
    """Metadata lists the topic with the given partition count and a leader for each."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        md = a.list_topics(topic=name, timeout=10)
        t = md.topics.get(name)
        last = t
        if t is not None and t.error is None and len(t.partitions) == partitions and \
                all(p.leader >= 0 for p in t.partitions.values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions: {last!r} "
                         f"{getattr(last, 'error', None)}")


def watermarks(bootstrap: str, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm-probe", "enable.auto.commit": False})
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in range(partitions)}
    finally:
        c.close()


def consume_all(bootstrap: str, topic: str, partitions: int = 1, timeout: float = 60.0,
                extra: dict | None = None) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """Read every record of every partition (up to the high watermark when called) via assign().
    Returns {partition: [(offset, key, value), ...]} in fetch order."""
    hw = {p: high for p, (_, high) in watermarks(bootstrap, topic, partitions).items()}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.time_ns()}",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest", **(extra or {})})
    out: dict[int, list] = {p: [] for p in range(partitions)}
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(partitions) if hw[p] > 0])
        done = {p for p in range(partitions) if hw[p] == 0}
        deadline = time.monotonic() + timeout
        while len(done) < partitions:
            assert time.monotonic() < deadline, (
                f"timed out reading {topic}: got { {p: len(v) for p, v in out.items()} } of {hw}")
            for m in c.consume(10000, 0.5):
                if m.error():
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(f"consume error: {m.error()}")
                out[m.partition()].append((m.offset(), m.key(), m.value()))
                if m.offset() >= hw[m.partition()] - 1:
                    done.add(m.partition())
    finally:
        c.close()
    return out


def assert_offsets_dense(records: list[tuple[int, object, object]], what: str) -> None:
    offs = [r[0] for r in records]
    assert offs == list(range(len(offs))), f"{what}: offsets not 0..{len(offs) - 1}: first bad at " + str(
        next((i, o) for i, o in enumerate(offs) if o != i))


class BackgroundProducer:
    """A confluent-kafka producer (acks=all, idempotent) producing sequence numbers at a steady rate to
    a single-partition topic in a thread. verify() requires: zero delivery errors, every produced record
    acknowledged at offsets 0..n-1, no stall (gap between delivery reports) longer than max_gap, and the
    topic's content exactly equal to what was produced."""

    def __init__(self, bootstrap: str, topic: str, rate: int = 1000):
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.produced = 0
        self.acked: list[tuple[int, int]] = []  # (offset, seq)
        self.ack_times: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bg-producer-{topic}", daemon=True)
        self._p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                            "linger.ms": 2, "message.timeout.ms": 30000},
                           logger=logging.getLogger(f"bg-producer.{topic}"))

    def _dr(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acked.append((msg.offset(), int(msg.value())))
            self.ack_times.append(time.monotonic())

    def start(self) -> "BackgroundProducer":
        create_topic(self.bootstrap, self.topic, 1)
        self._thread.start()
        # wait for the first acknowledgement so the producer is really flowing
        deadline = time.monotonic() + 20
        while not self.acked and not self.errors and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.acked, f"background producer got no acknowledgement in 20s; errors={self.errors[:5]}"
        return self

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - t0) * self.rate)
            while self.produced < due:
                self._p.produce(self.topic, str(self.produced).encode(), on_delivery=self._dr)
                self.produced += 1
            self._p.poll(0.005)

    def abort(self) -> None:
        """Stop producing without waiting for outstanding records (used when a test already failed)."""
        self._stop.set()
        self._thread.join(10)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        left = self._p.flush(30)
        assert left == 0, f"background producer: {left} records still unacknowledged 30s after stop"

    def verify(self, max_gap: float = 2.0) -> None:
        assert not self.errors, f"background producer saw {len(self.errors)} delivery errors: {self.errors[:5]}"
        assert len(self.acked) == self.produced, f"acked {len(self.acked)} of {self.produced}"
        assert self.produced >= self.rate, f"only {self.produced} records produced; rate too low to judge"
        acked = sorted(self.acked)
        assert [o for o, _ in acked] == list(range(self.produced)), "acknowledged offsets not dense 0..n-1"
        assert [s for _, s in acked] == list(range(self.produced)), "records acknowledged out of order"
        gaps = [b - a for a, b in zip(self.ack_times, self.ack_times[1:])]
        worst = max(gaps, default=0.0)
        assert worst < max_gap, f"background producer stalled: {worst:.2f}s without an acknowledgement"
        got = consume_all(self.bootstrap, self.topic, 1)[0]
        assert [(o, int(v)) for o, _, v in got] == acked, "topic content differs from what was acknowledged"


def kstr(s: str | None) -> bytes:
    """Kafka (non-compact) nullable STRING."""
    if s is None:
        return struct.pack(">h", -1)
    raw = s.encode()
    return struct.pack(">h", len(raw)) + raw


class Reader:
    """Sequential big-endian reader for (non-flexible) Kafka responses; asserts on truncation."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, fmt: str):
        n = struct.calcsize(fmt)
        assert self.pos + n <= len(self.data), f"response truncated at byte {self.pos} (need {n} more)"
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += n
        return v

    def i16(self) -> int:
        return self._take(">h")

    def i32(self) -> int:
        return self._take(">i")

    def i64(self) -> int:
        return self._take(">q")

    def string(self) -> str | None:
        n = self.i16()
        if n < 0:
            return None
        assert self.pos + n <= len(self.data), "string runs past the end of the response"
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def remaining(self) -> int:
        return len(self.data) - self.pos


def raw_call(bootstrap: str, api_key: int, api_version: int, body: bytes, correlation_id: int = 4242) -> Reader:
    """One request on a fresh connection; returns a Reader positioned after the (v0) response header."""
    with raw_connect(bootstrap) as s:
        s.sendall(request_frame(api_key, api_version, correlation_id, "peer-test", body))
        resp = recv_frame(s)
    assert resp is not None, f"server closed the connection instead of answering api {api_key} v{api_version}"
    r = Reader(resp)
    assert r.i32() == correlation_id, "correlation id mismatch"
    return r
