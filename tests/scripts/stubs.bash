# A stub machine for the scripts: a temporary root (HA_K8S_ROOT) and stub system commands first on
# PATH. Each stub appends its name and arguments to $CALLS and does what it was told (default:
# succeed silently). Sourced by the bats helpers and by the benchmark's footprint count; needs a
# scratch directory in $MACHINE_DIR.
# shellcheck shell=bash disable=SC2016,SC2028,SC2034
# SC2016/SC2028: stub bodies are code written into files, quoted on purpose. SC2034: TOKEN and
# CERT_KEY are used by the .bats files.

# Commands the scripts call that must never reach the real machine.
STUBBED=(apt-get apt-mark dpkg-query systemctl modprobe sysctl swapoff curl gpg kubeadm kubectl crictl cloud-init haproxy ss fuser)

stub_machine() {
  export HA_K8S_ROOT="$MACHINE_DIR/root"
  export HA_K8S_STAGE="$MACHINE_DIR/stage"
  export HA_K8S_SLEEP=0
  export CALLS="$MACHINE_DIR/calls.log"
  export STATE="$MACHINE_DIR/state"
  export STUBS="$MACHINE_DIR/bin"
  mkdir -p "$HA_K8S_ROOT/etc" "$HA_K8S_STAGE" "$STATE" "$STUBS"
  : >"$CALLS"
  for name in "${STUBBED[@]}"; do stub "$name" ""; done
  stub fuser 'exit 1' # no process holds apt's locks
  export PATH="$STUBS:$PATH"
}

# stub <command> <bash body>: the body runs with the stub's arguments in "$@".
stub() {
  local name="$1" body="$2"
  {
    echo '#!/usr/bin/env bash'
    echo 'printf "%s %s\n" "$(basename "$0")" "$*" >>"$CALLS"'
    printf '%s\n' "$body"
  } >"$STUBS/$name"
  chmod +x "$STUBS/$name"
}


# calls_matching <regex>: the recorded calls that match.
calls_matching() { grep -E -e "$1" "$CALLS" || true; }
count_calls() { calls_matching "$1" | grep -c . || true; }

# A checksum of every file under the temporary root, to prove a second run changed nothing.
root_fingerprint() { (cd "$HA_K8S_ROOT" && find . -type f -print0 | sort -z | xargs -0 sha256sum; find . -type f -printf '%m %p\n' | sort); }

# A stateful package manager: apt-get install records versions; dpkg-query reports them.
stub_packages() {
  stub apt-get '
case " $* " in
  *" install "*)
    for arg in "$@"; do
      case "$arg" in -*|install) ;; *=*) echo "${arg#*=}" >"$STATE/pkg-${arg%%=*}" ;; *) echo "1.36.0-1" >"$STATE/pkg-$arg" ;; esac
    done ;;
esac'
  stub dpkg-query '
pkg="${!#}"
[ -f "$STATE/pkg-$pkg" ] || exit 1
cat "$STATE/pkg-$pkg" | tr -d "\n"'
}

# A stateful systemd: start/restart/reload mark a unit active; is-active reports it.
stub_systemd() {
  stub systemctl '
unit="${!#}"
case "$1" in
  start|restart|reload) touch "$STATE/active-$unit" ;;
  is-active) [ -f "$STATE/active-$unit" ] ;;
esac'
}

# Downloads: curl -o and gpg -o write a small file where they were told to.
stub_downloads() {
  stub curl 'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; [ -n "$out" ] && echo key >"$out"; exit 0'
  stub gpg 'out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; echo dearmored >"$out"'
}

# A machine about to be prepared: stateful packages and systemd, downloads that succeed.
stub_node_machine() {
  stub_packages
  stub_systemd
  stub_downloads
}

# Secrets as the scripts stage them; the tests check they never reach the output.
TOKEN="abcdef.0123456789abcdef"
CERT_KEY="$(printf 'f%.0s' {1..64})"
