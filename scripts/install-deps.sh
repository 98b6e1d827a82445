#!/usr/bin/env bash
# Install everything the test suite and the benchmark need. Idempotent; ~1 s when already done.
#   - Debian packages: kcat, MIT Kerberos (KDC, admin, client libs, dev headers), Cyrus SASL modules,
#     libclang (bindgen) and librdkafka-dev.
#   - Python venv at <repo>/.venv with the pinned packages of tests/peers/requirements.txt.
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
log "ok: kcat $(kcat -V 2>&1 | sed -n 's/.*Version \([^ ]*\).*/\1/p' | head -1), $("$VENV/bin/python" -c 'import confluent_kafka as c, kafka; print("confluent-kafka", c.__version__, "(librdkafka", c.libversion()[0] + "), kafka-python", kafka.__version__)')"
