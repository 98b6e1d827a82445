"""Upstream mode with kgate's own Kerberos identity: clients on PLAINTEXT to kgate B, which authenticates to
its upstream with SASL/GSSAPI as client@EXAMPLE.COM (keytab), through a private MIT KDC. The upstream is a
kgate with a GSSAPI listener (no third-party Kafka-compatible broker with GSSAPI and ApiVersions installs
here: Tansu has no GSSAPI, Kafka 0.9.0.1 has no ApiVersions). The upstream's log must show the principal
kgate B authenticated as, and records must make the round trip."""
from __future__ import annotations

import subprocess

from krblib import CLIENT_PRINCIPAL, GSS, _environ, base_env, gss_auth, gss_kgate, kdc  # noqa: F401
from peerlib import consume_all
from test_upstream import produce_numbers
from upstreamlib import upstream_kgate


def upstream_gss_kgate(kgate_factory, kdc, upstream, principal=CLIENT_PRINCIPAL, keytab=None, start=True):
    k = upstream_kgate(kgate_factory, f"localhost:{upstream.ports[GSS]}", brokers=1, start=False,
                       backend={"sasl": {"mechanism": "GSSAPI", "principal": principal,
                                         "keytab": str(keytab or kdc.client_keytab)}})
    # Broker 0 of the upstream (its GSS listener) on base_port + 0.
    k.rcache_dir = k.workdir / "rcache"
    k.rcache_dir.mkdir(exist_ok=True)
    if start:
        with _environ(KRB5_CONFIG=str(kdc.krb5_conf)):
            k.start()
    return k


def test_kgate_authenticates_upstream_with_gssapi(kgate_factory, kdc):
    upstream = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    k = upstream_gss_kgate(kgate_factory, kdc, upstream)
    acked = produce_numbers(k.bootstrap, "kerberized", 300)
    assert sorted(acked) == list(range(300))
    values = sorted(int(v) for _, _, v in consume_all(k.bootstrap, "kerberized", 1)[0])
    assert values == list(range(300))
    events = gss_auth(upstream, GSS)
    assert events, f"the upstream logged no GSSAPI authentication:\n{upstream.log_tail()}"
    assert {e["principal"] for e in events} == {"User:client"}, events
    assert {e["identity"] for e in events} == {CLIENT_PRINCIPAL}, events
    k.assert_alive()


def test_a_principal_missing_from_the_keytab_stops_startup(kgate_factory, kgate_bin, kdc):
    upstream = gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))
    k = upstream_gss_kgate(kgate_factory, kdc, upstream, principal="nobody@EXAMPLE.COM", start=False)
    env = {**base_env(), "KRB5_CONFIG": str(kdc.krb5_conf), "KRB5RCACHEDIR": str(k.rcache_dir), "NO_COLOR": "1"}
    cp = subprocess.run([kgate_bin, "serve", "--config", str(k.config_path)], capture_output=True, text=True,
                        env=env, timeout=60)
    # The keytab has no key for nobody@: refused at start-up (config problem, 64) or at discovery (69),
    # naming the principal and the setting.
    assert cp.returncode in (64, 69), f"exit {cp.returncode}\n{cp.stderr[-2000:]}"
    assert "nobody@EXAMPLE.COM" in cp.stderr and "backend.sasl" in cp.stderr, cp.stderr[-2000:]
