"""`kgate doctor kerberos` on the failures of test_kerberos_failures.py (and test_kerberos_java09.py's JAAS
file with a stray space): for each, the doctor must exit 1, say ok=false in --json with a failed step, and
name the cause in both outputs; for working setups it must exit 0.

CLI contract: kgate doctor kerberos --bootstrap HOST:PORT --service-name NAME --krb5-conf FILE
  (--keytab FILE --principal NAME | --jaas FILE | the ticket cache in KRB5CCNAME) [--server-keytab FILE] [--json]
  --json: {"ok": bool, "steps": [{"name", "status" (ok|warn|fail), "detail", "why", "fix"}]}
"""
from __future__ import annotations

import time

import pytest

from krblib import (GSS, REALM, client_creds, client_env, doctor, doctor_fails_naming, doctor_passes,  # noqa: F401
                    faketime_env, fresh_kdc, gss_kgate, kdc, kinit, serve_once, write_jaas)


@pytest.fixture
def listener(kgate_factory, kdc):
    """A working kgate GSSAPI listener (kafka/localhost) of the module KDC."""
    return gss_kgate(kgate_factory, kdc, protocols=("SASL_PLAINTEXT",))


def keytab_login(kdc, principal: str = f"client@{REALM}") -> list[str]:
    return ["--keytab", str(kdc.client_keytab), "--principal", principal]


# ----------------------------------------------------------------------------------------------
# Working setups


@pytest.mark.parametrize("login", ["keytab", "keytab+server-keytab", "jaas", "ticket-cache"])
def test_doctor_passes_working_setup(login, kgate_bin, kdc, listener, client_creds, tmp_path):
    bootstrap = f"localhost:{listener.ports[GSS]}"
    env = None
    if login == "keytab":
        args = keytab_login(kdc)
    elif login == "keytab+server-keytab":
        args = keytab_login(kdc) + ["--server-keytab", str(kdc.kafka_keytab)]
    elif login == "jaas":
        args = ["--jaas", str(write_jaas(tmp_path / "jaas.conf", str(kdc.client_keytab)))]
    else:
        args, env = [], client_creds
    doctor_passes(doctor(kgate_bin, bootstrap, kdc.krb5_conf, *args, env=env))


# ----------------------------------------------------------------------------------------------
# Failures


def test_doctor_host_without_principal(kgate_bin, kdc, listener):
    res = doctor(kgate_bin, f"127.0.0.1:{listener.ports[GSS]}", kdc.krb5_conf, *keytab_login(kdc))
    doctor_fails_naming(res, r"not found in Kerberos database", r"kafka/127\.0\.0\.1")


def test_doctor_kgate_keytab_lacks_advertised_host(kgate_bin, kgate_factory, fresh_kdc):
    """The KDC has kafka/127.0.0.1 but kgate's keytab does not: kgate refuses to start (exit 64, see
    test_kerberos_failures); the doctor, given the broker's keytab, says that keytab lacks the principal."""
    fresh_kdc.kadmin(f"addprinc -randkey kafka/127.0.0.1@{REALM}")
    k = gss_kgate(kgate_factory, fresh_kdc, host="127.0.0.1", protocols=("SASL_PLAINTEXT",), start=False)
    assert serve_once(kgate_bin, k).returncode == 64
    res = doctor(kgate_bin, f"127.0.0.1:{k.ports[GSS]}", fresh_kdc.krb5_conf, *keytab_login(fresh_kdc),
                 "--server-keytab", str(fresh_kdc.kafka_keytab))
    doctor_fails_naming(res, rf"kafka/127\.0\.0\.1@{REALM}", r"keytab")


def test_doctor_stale_kvno(kgate_bin, kgate_factory, fresh_kdc):
    k = gss_kgate(kgate_factory, fresh_kdc, protocols=("SASL_PLAINTEXT",))
    fresh_kdc.kadmin(f"cpw -randkey kafka/localhost@{REALM}")
    res = doctor(kgate_bin, f"localhost:{k.ports[GSS]}", fresh_kdc.krb5_conf, *keytab_login(fresh_kdc),
                 "--server-keytab", str(fresh_kdc.kafka_keytab))
    doctor_fails_naming(res, r"kvno")


def test_doctor_wrong_service_name(kgate_bin, kdc, listener):
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf, *keytab_login(kdc),
                 service_name="kafak")
    doctor_fails_naming(res, r"service.name", r"kafak")


def test_doctor_wrong_realm_for_broker_host(kgate_bin, kdc, listener, tmp_path):
    conf = tmp_path / "krb5-other-realm.conf"
    conf.write_text(kdc.krb5_conf.read_text().replace(f"  localhost = {REALM}", "  localhost = OTHER.COM"))
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", conf, *keytab_login(kdc))
    doctor_fails_naming(res, r"realm", r"OTHER\.COM")


def test_doctor_wrong_realm_in_client_principal(kgate_bin, kdc, listener):
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf,
                 *keytab_login(kdc, "client@EXAMPLE.ORG"))
    doctor_fails_naming(res, r"realm", r"EXAMPLE\.ORG")


def test_doctor_missing_ticket(kgate_bin, kdc, listener, tmp_path):
    env = client_env(kdc, tmp_path / "never-kinit.ccache")
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf, env=env)
    doctor_fails_naming(res, r"kinit", r"No Kerberos credentials|no ticket")


def test_doctor_expired_ticket(kgate_bin, kdc, listener, tmp_path):
    env = kinit(kdc, tmp_path / "cc", lifetime="2s")
    time.sleep(3)
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf, env=env)
    doctor_fails_naming(res, r"expired")


def test_doctor_clock_skew(kgate_bin, kdc, listener):
    """The doctor itself runs an hour ahead (libfaketime), like the client in test_kerberos_failures."""
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf, *keytab_login(kdc),
                 wrapper_env=faketime_env("+1h"))
    doctor_fails_naming(res, r"clock skew")


def test_doctor_jaas_keytab_with_leading_space(kgate_bin, kdc, listener, tmp_path):
    jaas = write_jaas(tmp_path / "jaas-space.conf", " " + str(kdc.client_keytab))
    res = doctor(kgate_bin, f"localhost:{listener.ports[GSS]}", kdc.krb5_conf, "--jaas", str(jaas))
    doctor_fails_naming(res, r"keyTab", r"(leading )?(white)?space")
    assert any(s.get("name") == "jaas" and s.get("status") == "fail" for s in res.report["steps"]), \
        f"the jaas step should fail:\n{res}"
