"""The classic Java Kerberos failures, reproduced with Apache Kafka 4.4.0's own tools against a kgate GSSAPI
listener, and explained by `kgate doctor kerberos` given the very files the Java client ran with (its client
properties, its JAAS file, its krb5.conf):

* a bootstrap host without a service principal: "Server not found in Kerberos database (7) - LOOKING_UP_SERVER";
  Kafka 4.x clients treat it as retriable and log it only at DEBUG (org.apache.kafka.common.network.Selector):
  at the default level the operator sees "terminated during authentication" and "Timed out waiting for a node
  assignment", nothing about Kerberos;
* a JAAS keyTab path with a stray space: Krb5LoginModule finds no key file and falls back to asking for a
  password ("Could not login: the client is being asked for a password, but the Kafka client code does not
  currently support obtaining a password from the user");
* a wrong sasl.kerberos.service.name: the KDC has no such service principal.

Each case first shows that the Java client really fails with the message operators search for, then that the
doctor exits 1 and names the cause; the working setup passes both.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from apache_kafka import TOPICS, JavaTools
from krblib import CLIENT_PRINCIPAL, GSS, doctor, doctor_fails_naming, doctor_passes, gss_kgate, kdc, start_gss  # noqa: F401
from peerlib import free_port
from seclib import to_toml


@pytest.fixture(scope="module")
def listener(module_kgate_factory, kdc):
    """A kgate GSSAPI listener advertised as localhost (kafka/localhost exists), plus a second one bound to
    127.0.0.2, an address with no name: a Java client that dials it asks for kafka/127.0.0.2."""
    k = gss_kgate(module_kgate_factory, kdc, protocols=("SASL_PLAINTEXT",), start=False)
    port = free_port()
    k.config["listeners"].append({"name": "NAMELESS", "bind": f"127.0.0.2:{port}", "advertised": f"localhost:{port}",
                                  "security_protocol": "SASL_PLAINTEXT", "sasl_enabled_mechanisms": ["GSSAPI"]})
    k.ports["NAMELESS"] = port
    k.config_path.write_text(to_toml(k.config))
    return start_gss(k)


def write_jaas(path: Path, keytab: str) -> Path:
    path.write_text("KafkaClient {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n"
                    f'  keyTab="{keytab}"\n  principal="{CLIENT_PRINCIPAL}"\n  useTicketCache=false\n'
                    "  storeKey=true;\n};\n")
    return path


def client_properties(path: Path, bootstrap: str, service_name: str = "kafka") -> Path:
    path.write_text(f"bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\n"
                    f"sasl.kerberos.service.name={service_name}\ndefault.api.timeout.ms=8000\n"
                    "request.timeout.ms=5000\n")
    return path


SELECTOR = "org.apache.kafka.common.network.Selector"  # logs why a connection closed, at DEBUG


def java_topics_list(kdc, workdir: Path, properties: Path, jaas: Path, debug_loggers: tuple[str, ...] = ()):
    """kafka-topics --list with the client's files, as an operator runs it."""
    bootstrap = next(line.split("=", 1)[1] for line in properties.read_text().splitlines()
                     if line.startswith("bootstrap.servers="))
    tools = JavaTools(workdir, krb5_conf=kdc.krb5_conf, jaas=jaas, debug_loggers=debug_loggers)
    return tools.tool(TOPICS, "--bootstrap-server", bootstrap, "--command-config", str(properties), "--list",
                      timeout=120)


def doctor_with_files(kgate_bin, kdc, properties: Path, jaas: Path):
    return doctor(kgate_bin, None, kdc.krb5_conf, "--client-config", str(properties), "--jaas", str(jaas),
                  service_name=None)


def test_working_java_setup(kgate_bin, kdc, listener, tmp_path):
    props = client_properties(tmp_path / "client.properties", f"localhost:{listener.ports[GSS]}")
    jaas = write_jaas(tmp_path / "kafka_client_jaas.conf", str(kdc.client_keytab))
    cp = java_topics_list(kdc, tmp_path / "java", props, jaas)
    assert cp.returncode == 0, f"kafka-topics --list failed with a working setup:\n{cp.stderr[-4000:]}"
    doctor_passes(doctor_with_files(kgate_bin, kdc, props, jaas))


def test_host_without_service_principal(kgate_bin, kdc, listener, tmp_path):
    props = client_properties(tmp_path / "client.properties", f"127.0.0.2:{listener.ports['NAMELESS']}")
    jaas = write_jaas(tmp_path / "kafka_client_jaas.conf", str(kdc.client_keytab))
    cp = java_topics_list(kdc, tmp_path / "java", props, jaas)
    assert cp.returncode != 0 and "terminated during authentication" in cp.stderr \
        and "Timed out waiting for a node assignment" in cp.stderr and "LOOKING_UP_SERVER" not in cp.stderr, \
        f"at WARN the Java client should only time out (exit {cp.returncode}):\n{cp.stderr[-4000:]}"
    cp = java_topics_list(kdc, tmp_path / "java-debug", props, jaas, debug_loggers=(SELECTOR,))
    assert cp.returncode != 0 and "Server not found in Kerberos database (7) - LOOKING_UP_SERVER" in cp.stderr, \
        f"the Java client should fail with LOOKING_UP_SERVER (exit {cp.returncode}):\n{cp.stderr[-4000:]}"
    doctor_fails_naming(doctor_with_files(kgate_bin, kdc, props, jaas), r"not found in Kerberos database",
                        r"kafka/127\.0\.0\.2")


@pytest.mark.parametrize("where", ["trailing", "leading"])
def test_jaas_keytab_path_with_a_stray_space(kgate_bin, kdc, listener, tmp_path, where):
    props = client_properties(tmp_path / "client.properties", f"localhost:{listener.ports[GSS]}")
    keytab = f"{kdc.client_keytab} " if where == "trailing" else f" {kdc.client_keytab}"
    jaas = write_jaas(tmp_path / "kafka_client_jaas.conf", keytab)
    cp = java_topics_list(kdc, tmp_path / "java", props, jaas)
    assert cp.returncode != 0 and "Could not login: the client is being asked for a password" in cp.stderr, \
        f"the Java client should fail to log in (exit {cp.returncode}):\n{cp.stderr[-4000:]}"
    doctor_fails_naming(doctor_with_files(kgate_bin, kdc, props, jaas), r"keyTab", rf"{where} whitespace")


def test_wrong_service_name(kgate_bin, kdc, listener, tmp_path):
    props = client_properties(tmp_path / "client.properties", f"localhost:{listener.ports[GSS]}", service_name="kafkaa")
    jaas = write_jaas(tmp_path / "kafka_client_jaas.conf", str(kdc.client_keytab))
    cp = java_topics_list(kdc, tmp_path / "java", props, jaas, debug_loggers=(SELECTOR,))
    assert cp.returncode != 0 and "Server not found in Kerberos database (7)" in cp.stderr, \
        f"the Java client should fail to get a ticket for kafkaa/localhost (exit {cp.returncode}):\n{cp.stderr[-4000:]}"
    doctor_fails_naming(doctor_with_files(kgate_bin, kdc, props, jaas), r"kafkaa/localhost")
