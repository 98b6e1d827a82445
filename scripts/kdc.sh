#!/usr/bin/env bash
# A private MIT Kerberos KDC for tests and local experiments (realm EXAMPLE.COM).
#
# Usage: scripts/kdc.sh DIR PORT [HOST...]
#
# Creates in DIR (made if missing):
#   krb5.conf, kdc.conf   client and KDC profiles; point KRB5_CONFIG / KRB5_KDC_PROFILE at them.
#                         Nothing under /etc is read or written.
#   kafka.keytab          kafka/<HOST>@EXAMPLE.COM for every HOST (default: localhost), kvno 1
#   client.keytab         client@EXAMPLE.COM, kvno 1 (initiators: KRB5_CLIENT_KTNAME=FILE:DIR/client.keytab)
#   alice                 alice@EXAMPLE.COM with password "alice-secret" (no keytab)
#   kdc.pid, kdc.log      the KDC's pid and log
# and starts `krb5kdc -n` (no fork, no systemd) in the background on 127.0.0.1:PORT (UDP and TCP), then
# waits (at most 10 s) until the port answers and a client can get a service ticket.
#
# Stop it with: kill "$(cat DIR/kdc.pid)"
#
# Re-running with the same DIR stops the KDC recorded in DIR/kdc.pid (only if that process is a krb5kdc)
# and rebuilds the database and keytabs from scratch; a fresh DIR needs nothing.
set -euo pipefail

die() { echo "kdc.sh: ERROR: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: $0 DIR PORT [HOST...]"
D=$(realpath -m "$1")
PORT=$2
shift 2
HOSTS=("$@")
[ ${#HOSTS[@]} -gt 0 ] || HOSTS=(localhost)
REALM=EXAMPLE.COM

[[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "PORT must be 1-65535, got '$PORT'"
for h in "${HOSTS[@]}"; do
  [[ "$h" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] || die "not a host name: '$h'"
done

# The KDC tools live in sbin, which is often not on a normal user's PATH.
export PATH="$PATH:/usr/sbin:/sbin"
for tool in krb5kdc kdb5_util kadmin.local; do
  command -v "$tool" >/dev/null ||
    die "$tool not found; install MIT Kerberos (Debian: apt-get install krb5-kdc krb5-admin-server krb5-user, or scripts/install-deps.sh)"
done

mkdir -p "$D"

# True if PID runs (a zombie, whose parent has not reaped it yet, does not count).
alive() {
  local st
  st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}

# Re-run in the same DIR: stop our previous KDC (checked to be krb5kdc, never anything else).
if [ -s "$D/kdc.pid" ]; then
  old=$(cat "$D/kdc.pid")
  if [[ "$old" =~ ^[0-9]+$ ]] && [ "$(cat "/proc/$old/comm" 2>/dev/null || true)" = krb5kdc ]; then
    kill "$old" 2>/dev/null || true
    for _ in $(seq 1 50); do alive "$old" || break; sleep 0.1; done
  fi
  rm -f "$D/kdc.pid"
fi
rm -f "$D"/principal* "$D/stash" "$D/kafka.keytab" "$D/client.keytab" "$D/kdc.log" "$D/kdc.stdout" "$D/ccache_check"

if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "127.0.0.1:$PORT is already in use; pick another port"
fi

{
  echo "[libdefaults]"
  echo "  default_realm = $REALM"
  echo "  dns_lookup_realm = false"
  echo "  dns_lookup_kdc = false"
  echo "  dns_canonicalize_hostname = false"
  echo "  rdns = false"
  echo "  udp_preference_limit = 1"
  echo "  default_ccache_name = FILE:$D/ccache_default"
  echo "[realms]"
  echo "  $REALM = {"
  echo "    kdc = 127.0.0.1:$PORT"
  echo "  }"
  echo "[domain_realm]"
  for h in "${HOSTS[@]}"; do echo "  $h = $REALM"; done
} >"$D/krb5.conf"

cat >"$D/kdc.conf" <<EOC
[kdcdefaults]
  kdc_listen = 127.0.0.1:$PORT
  kdc_tcp_listen = 127.0.0.1:$PORT
[realms]
  $REALM = {
    database_name = $D/principal
    key_stash_file = $D/stash
    acl_file = $D/kadm5.acl
    supported_enctypes = aes256-cts-hmac-sha1-96:normal aes128-cts-hmac-sha1-96:normal
  }
[logging]
  kdc = FILE:$D/kdc.log
EOC
: >"$D/kadm5.acl"

export KRB5_CONFIG="$D/krb5.conf" KRB5_KDC_PROFILE="$D/kdc.conf"

kadmin() {
  local out
  out=$(kadmin.local -r "$REALM" -q "$1" 2>&1) || die "kadmin.local '$1' failed: $out"
  # kadmin.local exits 0 even when the query fails; its errors name the query.
  if grep -qiE "error|failed|not found|no such" <<<"$out"; then die "kadmin.local '$1': $out"; fi
}

out=$(kdb5_util -r "$REALM" -P kgate-test-master create -s 2>&1) || die "kdb5_util create failed: $out"
for h in "${HOSTS[@]}"; do
  kadmin "addprinc -randkey kafka/$h@$REALM"
  # -norandkey keeps kvno 1 (plain ktadd would re-key and bump the kvno).
  kadmin "ktadd -norandkey -k $D/kafka.keytab kafka/$h@$REALM"
done
kadmin "addprinc -randkey client@$REALM"
kadmin "ktadd -norandkey -k $D/client.keytab client@$REALM"
kadmin "addprinc -pw alice-secret alice@$REALM"

# -n: stay in the foreground (no daemon, no systemd); backgrounded here with its output in files so
# that a caller capturing this script's stdout does not wait for the KDC.
krb5kdc -n -r "$REALM" </dev/null >"$D/kdc.stdout" 2>&1 &
echo $! >"$D/kdc.pid"
KDC_PID=$(cat "$D/kdc.pid")

fail_started() {
  kill "$KDC_PID" 2>/dev/null || true
  rm -f "$D/kdc.pid"
  die "$1 (kdc.log: $(tail -n 5 "$D/kdc.log" 2>/dev/null | tr '\n' ' ') stdout: $(tr '\n' ' ' <"$D/kdc.stdout"))"
}

up=""
for _ in $(seq 1 100); do
  alive "$KDC_PID" || fail_started "krb5kdc exited during start-up"
  if (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then up=1; break; fi
  sleep 0.1
done
[ -n "$up" ] || fail_started "krb5kdc did not answer on 127.0.0.1:$PORT within 10 s"

# End-to-end check: a TGT from the client keytab and a service ticket for each kafka/<HOST>.
if command -v kinit >/dev/null && command -v kvno >/dev/null; then
  export KRB5CCNAME="FILE:$D/ccache_check"
  out=$(kinit -kt "$D/client.keytab" "client@$REALM" 2>&1) || fail_started "kinit with client.keytab failed: $out"
  for h in "${HOSTS[@]}"; do
    out=$(kvno "kafka/$h@$REALM" 2>&1) || fail_started "kvno kafka/$h failed: $out"
  done
  rm -f "$D/ccache_check"
fi

echo "KDC up: pid=$KDC_PID port=$PORT realm=$REALM KRB5_CONFIG=$D/krb5.conf KRB5_KDC_PROFILE=$D/kdc.conf"
echo "service keytab: $D/kafka.keytab ($(printf 'kafka/%s ' "${HOSTS[@]}")); client keytab: $D/client.keytab"
