#!/usr/bin/env bash
# Build and run `kgate serve` on a fresh machine:  ./scripts/serve.sh [kgate serve options]
# Installs the C libraries the build needs (MIT Kerberos headers and libclang for the GSSAPI
# binding) if they are missing, then runs the release build. Without options: PLAINTEXT on
# 127.0.0.1:9092 with data in ./data.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BUILD_PKGS=(libkrb5-dev libclang-dev pkg-config)
missing=()
for p in "${BUILD_PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" = "installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "serve.sh: installing build dependencies: ${missing[*]}" >&2
  $SUDO apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
exec cargo run --release --locked --bin kgate -- serve "$@"
