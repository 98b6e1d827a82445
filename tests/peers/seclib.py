"""Helpers for the security peer tests (tests/peers/test_security_*.py) and bench/security_bench.py.

Provisioning goes through the real CLI (`kgate certs dev`, `kgate users add|list|remove`, passwords on stdin),
servers get PLAINTEXT + secured listeners (the PLAINTEXT one on `Kgate.port`, so peerlib's helpers and
BackgroundProducer keep working), and the principal a connection ended up with is read from kgate's log:

    authenticated principal=User:alice mechanism="SCRAM-SHA-512" listener=SECURE client=127.0.0.1:4711 ...
    authenticated with a client certificate principal=User:alice client=127.0.0.1:4712 listener=MTLS

The raw side (RawConn, ScramClient) speaks just enough of the protocol to drive the SASL state machine
byte by byte: ApiVersions v0, SaslHandshake v0/v1, SaslAuthenticate v0/v1, Metadata v1, over TCP or TLS.
Nothing here logs or prints a password.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

from peerlib import Kgate, Reader, free_port, kstr, recv_exact, to_toml  # noqa: F401 (to_toml is re-exported)

ALL_MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
SASL_AUTHENTICATION_FAILED = 58
UNSUPPORTED_SASL_MECHANISM = 33
ILLEGAL_SASL_STATE = 34
CLUSTER_AUTHORIZATION_FAILED = 31

# librdkafka (2.16 and master as of 2026-07) crashes the process ("free(): invalid size") when a
# DescribeUserScramCredentials response carries a request-level error: rd_kafka_DescribeUserScramCredentials-
# Response_parse stores an alloca'd copy of ErrorMessage (or the static rd_kafka_err2str text when it is
# empty) in admin_result.errstr, which rd_kafka_op_destroy later rd_free()s. Apache Kafka answers an
# unauthorized describe exactly that way (DescribeUserScramCredentialsRequest.getErrorResponse: request-level
# CLUSTER_AUTHORIZATION_FAILED), so this is a client bug; the tests check that refusal with RawConn.
LIBRDKAFKA_DESCRIBE_SCRAM_CRASH = True

API_METADATA, API_SASL_HANDSHAKE, API_API_VERSIONS, API_SASL_AUTHENTICATE = 3, 17, 18, 36


def generic_scram_message(mechanism: str) -> str:
    """Kafka's text for a SaslException (SaslServerAuthenticator.handleSaslToken)."""
    return f"Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"


PLAIN_BAD_CREDENTIALS = "Authentication failed: Invalid username or password"


# ----------------------------------------------------------------------------------------------
# The CLI: certificates and users


def run_cli(kgate_bin: str, *args: str, input: str | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
    cp = subprocess.run([kgate_bin, *args], input=input, capture_output=True, text=True, timeout=timeout,
                        env={**os.environ, "NO_COLOR": "1"})
    if check:
        # never echo `input` (it holds passwords)
        assert cp.returncode == 0, f"kgate {' '.join(args)} exited {cp.returncode}:\n{cp.stdout}\n{cp.stderr}"
    return cp


@dataclasses.dataclass
class Certs:
    dir: Path

    @property
    def ca(self) -> str:
        return str(self.dir / "ca.pem")

    @property
    def server_cert(self) -> str:
        return str(self.dir / "server.pem")

    @property
    def server_key(self) -> str:
        return str(self.dir / "server.key")

    def client(self, name: str) -> tuple[str, str]:
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}.key")


def certs_dev(kgate_bin: str, out: Path, clients: tuple[str, ...] = (), sans: tuple[str, ...] | None = None) -> Certs:
    args = ["certs", "dev", "--out", str(out)]
    for s in sans or ():
        args += ["--san", s]
    for c in clients:
        args += ["--client", c]
    cp = run_cli(kgate_bin, *args)
    for f in ["ca.pem", "ca.key", "server.pem", "server.key"] + [f"{c}.{e}" for c in clients for e in ("pem", "key")]:
        assert (out / f).is_file(), f"kgate certs dev did not write {f}:\n{cp.stdout}"
    for f in ["ca.key", "server.key"] + [f"{c}.key" for c in clients]:
        mode = (out / f).stat().st_mode & 0o777
        assert mode == 0o600, f"{f} has mode {mode:o}, want 600"
    return Certs(Path(out))


def users_add(kgate_bin: str, users_file: Path, name: str, password: str, mechanism: str | None = None,
              iterations: int | None = None) -> str:
    args = ["users", "add", name, "--password-stdin", "--users-file", str(users_file)]
    if mechanism:
        args += ["--mechanism", mechanism]
    if iterations:
        args += ["--iterations", str(iterations)]
    cp = run_cli(kgate_bin, *args, input=password + "\n")
    assert password not in cp.stdout + cp.stderr, "kgate users add printed the password"
    return cp.stdout


def users_list(kgate_bin: str, users_file: Path) -> list[tuple[str, str, int]]:
    """[(user, mechanism, iterations)] from `kgate users list` (header USER MECHANISM ITERATIONS)."""
    out = run_cli(kgate_bin, "users", "list", "--users-file", str(users_file)).stdout
    lines = out.splitlines()
    if not lines or not lines[0].split()[:3] == ["USER", "MECHANISM", "ITERATIONS"]:
        return []
    rows = []
    for line in lines[1:]:
        parts = line.split()
        if len(parts) == 3 and parts[2].isdigit():
            rows.append((parts[0], parts[1], int(parts[2])))
    return rows


def users_remove(kgate_bin: str, users_file: Path, name: str, mechanism: str | None = None) -> str:
    args = ["users", "remove", name, "--users-file", str(users_file)]
    if mechanism:
        args += ["--mechanism", mechanism]
    return run_cli(kgate_bin, *args).stdout


def new_password(label: str) -> str:
    """A password that cannot appear in a log by accident."""
    return f"{label}-{secrets.token_urlsafe(12)}-pw"


@dataclasses.dataclass
class Pki:
    """What a test module provisions once with the CLI."""
    root: Path
    certs: Certs            # default SANs (localhost, 127.0.0.1), client certs alice and bob
    certs_lh: Certs         # --san localhost only: connecting to 127.0.0.1 must fail hostname checks
    other: Certs            # an unrelated CA
    users_file: Path
    passwords: dict[str, str]


def provision(kgate_bin: str, root: Path, users: tuple[str, ...] = ("alice", "bob", "admin")) -> Pki:
    root = Path(root)
    certs = certs_dev(kgate_bin, root / "certs", clients=("alice", "bob"))
    certs_lh = certs_dev(kgate_bin, root / "certs-lh", sans=("localhost",))
    other = certs_dev(kgate_bin, root / "certs-other", clients=("mallory",))
    users_file = root / "users.toml"
    passwords = {}
    for u in users:
        passwords[u] = new_password(u)
        out = users_add(kgate_bin, users_file, u, passwords[u])
        assert f'added user "{u}"' in out, out
    assert (users_file.stat().st_mode & 0o777) == 0o600, "users file is not 0600"
    return Pki(root, certs, certs_lh, other, users_file, passwords)


# ----------------------------------------------------------------------------------------------
# Servers with secured listeners


def sasl_plaintext(name: str = "SASL", mechanisms=ALL_MECHANISMS, host: str = "localhost") -> dict:
    return {"name": name, "security_protocol": "SASL_PLAINTEXT", "sasl_enabled_mechanisms": list(mechanisms),
            "_host": host}


def sasl_ssl(name: str, certs: Certs, mechanisms=ALL_MECHANISMS, host: str = "localhost",
             client_auth: str | None = None) -> dict:
    tls = {"cert": certs.server_cert, "key": certs.server_key}
    if client_auth:
        tls.update(client_ca=certs.ca, client_auth=client_auth)
    return {"name": name, "security_protocol": "SASL_SSL", "sasl_enabled_mechanisms": list(mechanisms),
            "tls": tls, "_host": host}


def ssl_listener(name: str, certs: Certs, client_auth: str = "required", host: str = "localhost",
                 client_ca: str | None = None) -> dict:
    tls = {"cert": certs.server_cert, "key": certs.server_key, "client_auth": client_auth}
    if client_auth != "none":
        tls["client_ca"] = client_ca or certs.ca
    return {"name": name, "security_protocol": "SSL", "tls": tls, "_host": host}


def secure_kgate(kgate_factory, listeners: list[dict], security: dict | None = None, broker: dict | None = None,
                 network: dict | None = None, start: bool = True) -> Kgate:
    """A kgate with PLAINTEXT on k.port (k.bootstrap) plus `listeners`; k.ports[name] and
    listener_addr(k, name[, host]) give the others."""
    k = kgate_factory(start=False)
    rows = [{"name": "PLAINTEXT", "bind": f"127.0.0.1:{k.port}", "advertised": f"127.0.0.1:{k.port}",
             "security_protocol": "PLAINTEXT"}]
    k.ports = {"PLAINTEXT": k.port}
    k.hosts = {"PLAINTEXT": "127.0.0.1"}
    for spec in listeners:
        spec = dict(spec)
        host = spec.pop("_host", "localhost")
        port = free_port()
        row = {"name": spec.pop("name"), "bind": f"127.0.0.1:{port}", "advertised": f"{host}:{port}"}
        row.update(spec)
        rows.append(row)
        k.ports[row["name"]] = port
        k.hosts[row["name"]] = host
    k.config["listeners"] = rows
    if security is not None:
        k.config["security"] = security
    if broker:
        k.config["broker"].update(broker)
    if network:
        k.config["network"].update(network)
    k.config_path.write_text(to_toml(k.config))
    if start:
        k.start()
    return k


def listener_addr(k: Kgate, name: str, host: str | None = None) -> str:
    return f"{host or k.hosts[name]}:{k.ports[name]}"


# ----------------------------------------------------------------------------------------------
# kgate's log

AUTH_RE = re.compile(r'authenticated principal=(?P<principal>\S+) (?:identity=(?P<identity>\S+) )?'
                     r'mechanism="(?P<mechanism>[^"]+)" '
                     r'listener=(?P<listener>\S+) client=(?P<client>\S+) reauthentication=(?P<reauth>\w+) '
                     r'session_lifetime_ms=(?P<lifetime>-?\d+)')
CERT_RE = re.compile(r'authenticated with a client certificate principal=(?P<principal>.+?) '
                     r'client=(?P<client>\S+) listener=(?P<listener>\S+)')
FAILED_RE = re.compile(r'Failed authentication with (?P<ip>\S+) \((?P<reason>.*)\) client=(?P<client>\S+) '
                       r'listener=(?P<listener>\S+)')


def auth_events(k: Kgate, listener: str | None = None) -> list[dict]:
    ev = [m.groupdict() for m in AUTH_RE.finditer(k.log_text())]
    return [e for e in ev if listener is None or e["listener"] == listener]


def cert_events(k: Kgate, listener: str | None = None) -> list[dict]:
    ev = [m.groupdict() for m in CERT_RE.finditer(k.log_text())]
    return [e for e in ev if listener is None or e["listener"] == listener]


def failed_events(k: Kgate, listener: str | None = None) -> list[dict]:
    ev = [m.groupdict() for m in FAILED_RE.finditer(k.log_text())]
    return [e for e in ev if listener is None or e["listener"] == listener]


def wait_log(k: Kgate, pattern: str, timeout: float = 10.0, count: int = 1) -> list[str]:
    """Waits until `pattern` (a regex) matches at least `count` times in the log; returns the matches."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        found = [m.group(0) for m in rx.finditer(k.log_text())]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"kgate's log has {len(found)} (want {count}) lines matching {pattern!r} "
                                 f"after {timeout}s; tail:\n{k.log_tail(25)}")
        time.sleep(0.05)


# ----------------------------------------------------------------------------------------------
# Client settings for the three peers


@dataclasses.dataclass
class ClientSec:
    protocol: str                    # PLAINTEXT | SSL | SASL_PLAINTEXT | SASL_SSL
    mechanism: str | None = None
    user: str | None = None
    password: str | None = None
    ca: str | None = None
    verify_hostname: bool = True
    cert: str | None = None
    key: str | None = None

    def rdkafka(self) -> dict:
        """librdkafka properties (confluent-kafka and kcat -X)."""
        c = {"security.protocol": self.protocol}
        if self.mechanism:
            c.update({"sasl.mechanism": self.mechanism, "sasl.username": self.user, "sasl.password": self.password})
        if self.protocol in ("SSL", "SASL_SSL"):
            c["ssl.ca.location"] = self.ca
            c["enable.ssl.certificate.verification"] = "true"
            c["ssl.endpoint.identification.algorithm"] = "https" if self.verify_hostname else "none"
            if self.cert:
                c.update({"ssl.certificate.location": self.cert, "ssl.key.location": self.key})
        return c

    def kcat_args(self) -> list[str]:
        out = []
        for k, v in self.rdkafka().items():
            out += ["-X", f"{'sasl.mechanisms' if k == 'sasl.mechanism' else k}={v}"]
        return out

    def kafka_python(self) -> dict:
        c = {"security_protocol": self.protocol}
        if self.mechanism:
            c.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.user, sasl_plain_password=self.password)
        if self.protocol in ("SSL", "SASL_SSL"):
            c.update(ssl_cafile=self.ca, ssl_check_hostname=self.verify_hostname)
            if self.cert:
                c.update(ssl_certfile=self.cert, ssl_keyfile=self.key)
        return c


@contextlib.contextmanager
def kafka_python_fixed_eof_read():
    """kafka-python 3.0.12 loses a response that arrives in the same read as the connection's EOF:
    KafkaTCPTransport._read_from_sock gets (data, err) from _sock_recv and aborts on err without passing
    `data` on. A broker that answers a failed authentication and then closes (Apache Kafka does exactly
    that, after connection.failed.authentication.delay.ms) therefore shows up in kafka-python as
    "socket disconnected" instead of SaslAuthenticationFailedError, depending on timing. This patches the
    client (only inside the block) to deliver the data first; the next read sees the EOF again."""
    from kafka.net import transport as T
    saved = {}
    for cls in (T.KafkaTCPTransport, T.KafkaSSLTransport):
        orig = cls.__dict__["_sock_recv"]
        saved[cls] = orig

        def patched(self, _orig=orig):
            data, err = _orig(self)
            return (data, None) if data and err else (data, err)
        cls._sock_recv = patched
    try:
        yield
    finally:
        for cls, orig in saved.items():
            cls._sock_recv = orig


@contextlib.contextmanager
def capture_logs(name: str = "kafka", level: int = logging.INFO):
    """Collects the formatted messages of logger `name` (kafka-python reports connection errors there)."""
    lines: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    h = Grab(level=logging.DEBUG)
    lg = logging.getLogger(name)
    old = lg.level
    lg.addHandler(h)
    lg.setLevel(level)
    try:
        yield lines
    finally:
        lg.removeHandler(h)
        lg.setLevel(old)


# ----------------------------------------------------------------------------------------------
# Raw Kafka over TCP or TLS


def tls_context(ca: str | None, check_hostname: bool = True, cert: str | None = None,
                key: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def client_hello(server_hostname: str = "localhost") -> bytes:
    """The bytes of a real TLS ClientHello (what a TLS client sends first)."""
    ctx = tls_context(None)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    assert data[:1] == b"\x16" and len(data) > 100, f"not a ClientHello: {data[:16]!r}"
    return data


@dataclasses.dataclass
class AuthResponse:
    error_code: int
    error_message: str | None
    auth_bytes: bytes
    session_lifetime_ms: int | None


class ServerClosed(AssertionError):
    pass


class RawConn:
    """One connection speaking request header v1 (+ TLS when ctx is given)."""

    def __init__(self, host: str, port: int, ctx: ssl.SSLContext | None = None, server_hostname: str | None = None,
                 timeout: float = 10.0, client_id: str = "sec-test"):
        self.client_id = client_id
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.settimeout(timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname or host) if ctx else raw
        self.next_cid = 1
        self.sent_at = 0.0

    @classmethod
    def to(cls, k: Kgate, listener: str, ctx: ssl.SSLContext | None = None, host: str = "127.0.0.1", **kw) -> "RawConn":
        return cls(host, k.ports[listener], ctx=ctx, server_hostname=kw.pop("server_hostname", "localhost"), **kw)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sent_at = time.monotonic()
        self.sock.sendall(data)

    def send(self, api_key: int, version: int, body: bytes) -> int:
        cid = self.next_cid
        self.next_cid += 1
        cidb = self.client_id.encode()
        payload = struct.pack(">hhi", api_key, version, cid) + struct.pack(">h", len(cidb)) + cidb + body
        self.send_raw(struct.pack(">i", len(payload)) + payload)
        return cid

    def recv_frame(self) -> bytes | None:
        try:
            hdr = recv_exact(self.sock, 4)
            if hdr is None:
                return None
            (n,) = struct.unpack(">i", hdr)
            assert 0 <= n < 64 << 20, f"bad size prefix {n}"
            body = recv_exact(self.sock, n)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError):
            return None
        except ssl.SSLError as e:
            if "EOF" in str(e) or "alert" in str(e).lower():
                return None
            raise
        assert body is not None, "connection closed in the middle of a response"
        return body

    def call(self, api_key: int, version: int, body: bytes) -> Reader:
        cid = self.send(api_key, version, body)
        resp = self.recv_frame()
        if resp is None:
            raise ServerClosed(f"server closed the connection instead of answering api {api_key} v{version}")
        r = Reader(resp)
        assert r.i32() == cid, "correlation id mismatch"
        return r

    # -- APIs

    def api_versions(self) -> tuple[int, dict[int, tuple[int, int]]]:
        r = self.call(API_API_VERSIONS, 0, b"")
        err, n = r.i16(), r.i32()
        apis = {}
        for _ in range(n):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            apis[key] = (lo, hi)
        return err, apis

    def handshake(self, mechanism: str, version: int = 1) -> tuple[int, list[str]]:
        r = self.call(API_SASL_HANDSHAKE, version, kstr(mechanism))
        err, n = r.i16(), r.i32()
        return err, [r.string() for _ in range(n)]

    def authenticate(self, token: bytes, version: int = 1) -> AuthResponse:
        r = self.call(API_SASL_AUTHENTICATE, version, struct.pack(">i", len(token)) + token)
        return parse_authenticate(r, version)

    def send_authenticate(self, token: bytes, version: int = 1) -> int:
        return self.send(API_SASL_AUTHENTICATE, version, struct.pack(">i", len(token)) + token)

    def call_flexible(self, api_key: int, version: int, body: bytes) -> Reader:
        """A request with header v2 (flexible versions); returns a Reader after the v1 response header."""
        cid = self.next_cid
        self.next_cid += 1
        cidb = self.client_id.encode()
        payload = struct.pack(">hhi", api_key, version, cid) + struct.pack(">h", len(cidb)) + cidb + b"\0" + body
        self.send_raw(struct.pack(">i", len(payload)) + payload)
        resp = self.recv_frame()
        if resp is None:
            raise ServerClosed(f"server closed the connection instead of answering api {api_key} v{version}")
        r = Reader(resp)
        assert r.i32() == cid, "correlation id mismatch"
        assert uvarint(r) == 0, "unexpected tagged fields in the response header"
        return r

    def describe_user_scram_credentials(self, users: list[str] | None) -> dict:
        """DescribeUserScramCredentials v0 (api 50)."""
        if users is None:
            body = b"\0"  # null array
        else:
            body = uvarint_bytes(len(users) + 1) + b"".join(compact_str(u) + b"\0" for u in users)
        r = self.call_flexible(50, 0, body + b"\0")
        out = {"throttle_ms": r.i32(), "error_code": r.i16(), "error_message": compact_nullable(r), "results": []}
        for _ in range(uvarint(r) - 1):
            res = {"user": compact_nullable(r), "error_code": r.i16(), "error_message": compact_nullable(r),
                   "credentials": []}
            for _ in range(uvarint(r) - 1):
                res["credentials"].append((r._take(">b"), r.i32()))
                assert uvarint(r) == 0
            assert uvarint(r) == 0
            out["results"].append(res)
        assert uvarint(r) == 0 and r.remaining() == 0
        return out

    def metadata(self) -> Reader:
        """Metadata v1 for no topics: brokers, controller."""
        return self.call(API_METADATA, 1, struct.pack(">i", 0))

    def send_metadata(self) -> int:
        return self.send(API_METADATA, 1, struct.pack(">i", 0))

    def raw_token(self, token: bytes) -> bytes | None:
        """SaslHandshake v0 framing: a size-prefixed token, answered by a size-prefixed token."""
        self.send_raw(struct.pack(">i", len(token)) + token)
        return self.recv_frame()

    def wait_closed(self, timeout: float = 10.0, what: str = "", allow_tls_alert: bool = False) -> float:
        """Requires the server to close without sending a Kafka response; returns seconds since the last send.
        With allow_tls_alert, TLS alert records (content type 21) before the close are accepted."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        got = b""
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: server did not close within {timeout}s (received {got[:64]!r})")
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError):
                chunk = b""
            except socket.timeout:
                raise AssertionError(f"{what}: server kept the connection open for {timeout}s (want close)")
            except ssl.SSLError as e:
                # the server refused the TLS session (an alert): closed from the client's point of view
                if allow_tls_alert or "EOF" in str(e):
                    chunk = b""
                else:
                    raise
            if not chunk:
                elapsed = time.monotonic() - self.sent_at
                if allow_tls_alert:
                    assert only_tls_alerts(got), f"{what}: server sent non-alert bytes before closing: {got[:64]!r}"
                else:
                    assert got == b"", f"{what}: server sent {len(got)} bytes before closing: {got[:64]!r}"
                return elapsed
            got += chunk


def uvarint(r: Reader) -> int:
    shift, out = 0, 0
    while True:
        b = r._take(">B")
        out |= (b & 0x7F) << shift
        if not b & 0x80:
            return out
        shift += 7


def uvarint_bytes(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def compact_str(s: str) -> bytes:
    raw = s.encode()
    return uvarint_bytes(len(raw) + 1) + raw


def compact_nullable(r: Reader) -> str | None:
    n = uvarint(r)
    if n == 0:
        return None
    s = r.data[r.pos:r.pos + n - 1].decode()
    r.pos += n - 1
    return s


def only_tls_alerts(data: bytes) -> bool:
    pos = 0
    while pos < len(data):
        if len(data) - pos < 5 or data[pos] != 0x15 or data[pos + 1] != 0x03:
            return False
        (n,) = struct.unpack(">H", data[pos + 3:pos + 5])
        pos += 5 + n
    return pos == len(data)


def parse_authenticate(r: Reader, version: int) -> AuthResponse:
    err = r.i16()
    msg = r.string()
    n = r.i32()
    assert n >= -1
    data = b""
    if n > 0:
        assert r.pos + n <= len(r.data), "auth_bytes run past the end"
        data = r.data[r.pos:r.pos + n]
        r.pos += n
    lifetime = r.i64() if version >= 1 else None
    assert r.remaining() == 0, f"SaslAuthenticate v{version} response has {r.remaining()} trailing bytes"
    return AuthResponse(err, msg, data, lifetime)


# ----------------------------------------------------------------------------------------------
# SCRAM (RFC 5802 / 7677) client


_HASHES = {"SCRAM-SHA-256": hashlib.sha256, "SCRAM-SHA-512": hashlib.sha512}


class ScramClient:
    """A minimal SCRAM client. `salted_cache` (a dict) may keep SaltedPassword per (salt, iterations),
    which RFC 5802 §5.1 allows clients to cache; the bench uses it so the client is not the bottleneck."""

    def __init__(self, mechanism: str, user: str, password: str, nonce: str | None = None,
                 salted_cache: dict | None = None):
        self.mechanism, self.hash = mechanism, _HASHES[mechanism]
        self.user, self.password = user, password
        self.nonce = nonce or secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")
        self.cache = salted_cache
        self.server_signature = b""
        self.client_final_message = b""

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.new(key, msg, self.hash).digest()

    @property
    def client_first_bare(self) -> str:
        name = self.user.replace("=", "=3D").replace(",", "=2C")
        return f"n={name},r={self.nonce}"

    def first(self) -> bytes:
        return ("n,," + self.client_first_bare).encode()

    def salted(self, salt: bytes, iterations: int) -> bytes:
        key = (salt, iterations)
        if self.cache is not None and key in self.cache:
            return self.cache[key]
        sp = hashlib.pbkdf2_hmac(self.hash().name, self.password.encode(), salt, iterations)
        if self.cache is not None:
            self.cache[key] = sp
        return sp

    def final(self, server_first: bytes, nonce_override: str | None = None, proof_override: bytes | None = None) -> bytes:
        fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
        combined, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        assert combined.startswith(self.nonce) and len(combined) > len(self.nonce), \
            f"server nonce {combined!r} does not extend the client nonce"
        nonce = nonce_override if nonce_override is not None else combined
        without_proof = f"c=biws,r={nonce}"
        auth_message = f"{self.client_first_bare},{server_first.decode()},{without_proof}".encode()
        sp = self.salted(salt, iterations)
        client_key = self._hmac(sp, b"Client Key")
        stored_key = self.hash(client_key).digest()
        client_signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature))
        if proof_override is not None:
            proof = proof_override
        self.server_signature = self._hmac(self._hmac(sp, b"Server Key"), auth_message)
        self.client_final_message = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        return self.client_final_message

    def verify_server_final(self, server_final: bytes) -> None:
        assert server_final == b"v=" + base64.b64encode(self.server_signature), \
            f"server-final {server_final!r} does not prove the server knows the credential"


def plain_token(user: str, password: str, authzid: str = "") -> bytes:
    return f"{authzid}\0{user}\0{password}".encode()


def sasl_login(conn: RawConn, mechanism: str, user: str, password: str, api_versions: bool = True,
               salted_cache: dict | None = None) -> AuthResponse:
    """ApiVersions (optional), SaslHandshake v1, SaslAuthenticate v1 until done. Returns the last response
    (error_code 0 on success, with the server-final verified for SCRAM)."""
    if api_versions:
        err, apis = conn.api_versions()
        assert err == 0 and API_SASL_HANDSHAKE in apis and API_SASL_AUTHENTICATE in apis, (err, apis)
    err, mechs = conn.handshake(mechanism)
    if err != 0:
        return AuthResponse(err, f"SaslHandshake error, server mechanisms {mechs}", b"", None)
    if mechanism == "PLAIN":
        return conn.authenticate(plain_token(user, password))
    sc = ScramClient(mechanism, user, password, salted_cache=salted_cache)
    first = conn.authenticate(sc.first())
    if first.error_code:
        return first
    last = conn.authenticate(sc.final(first.auth_bytes))
    if last.error_code == 0:
        sc.verify_server_final(last.auth_bytes)
    return last


# ----------------------------------------------------------------------------------------------
# Secrets


def secret_forms(password: str) -> list[str]:
    """What a leaked password could look like in a log: itself, base64 of it, and of PLAIN tokens."""
    forms = [password, base64.b64encode(password.encode()).decode()]
    forms.append(base64.b64encode(password.encode()).decode().rstrip("="))
    return forms


def find_secrets(text: str, passwords: list[str]) -> list[str]:
    return [f for p in passwords for f in secret_forms(p) if len(f) >= 8 and f in text]
