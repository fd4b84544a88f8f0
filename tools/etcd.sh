#!/usr/bin/env bash
# Prints the directory holding real etcd, etcdctl and etcdutl binaries of exactly the given etcd
# version, building them on first use from etcd's Go modules (through the Go module proxy) and
# caching them outside the repository, keyed by version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/etcd/v<version>/{etcd,etcdctl,etcdutl}
# Usage: tools/etcd.sh 3.6.8        (the version kubeadm runs: tools/etcd.sh --for-kubernetes 1.36.3)
#
# etcd's own modules replace each other with relative paths, which a module that requires them
# cannot use; a throwaway module requires server/v3, etcdctl/v3 and etcdutl/v3 at the version, so
# Go's minimal version selection picks the matching api/client/pkg releases. The version string is
# a constant in go.etcd.io/etcd/api/v3/version, so `etcd --version` reports it without ldflags.
# Safe to run concurrently (flock) and again (cached binaries are reused).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/go-cache.sh
. "$REPO/tools/go-cache.sh"
log() { printf 'etcd.sh: %s\n' "$*" >&2; }

if [ "${1:-}" = --for-kubernetes ]; then
  # The etcd release kubeadm deploys for that Kubernetes version (constants.SupportedEtcdVersion).
  kubeadm="$(bash "$REPO/tools/kubeadm.sh" "${2:?usage: tools/etcd.sh --for-kubernetes <kubernetes version>}")"
  image="$("$kubeadm" config images list --kubernetes-version "v${2#v}" 2>/dev/null | grep '/etcd:' || true)"
  [[ "$image" =~ /etcd:([0-9]+\.[0-9]+\.[0-9]+)(-[0-9]+)?$ ]] || {
    log "kubeadm ${2} lists no etcd image (got: ${image:-nothing})"
    exit 1
  }
  set -- "${BASH_REMATCH[1]}"
fi

version="${1:?usage: tools/etcd.sh <etcd version, e.g. 3.6.8> | --for-kubernetes <kubernetes version>}"
version="${version#v}"
[[ "$version" =~ ^3\.[0-9]+\.[0-9]+$ ]] || {
  log "\"$version\" is not an etcd v3 release like 3.6.8"
  exit 2
}
cache="$HA_K8S_CACHE/etcd/v$version"
tools=(etcd etcdctl etcdutl)
built() {
  local t
  for t in "${tools[@]}"; do [ -x "$cache/$t" ] || return 1; done
}

if built; then
  echo "$cache"
  exit 0
fi
need_go "etcd $version"
hold_lock "$cache/.lock"
if built; then # built by a concurrent run while we waited
  echo "$cache"
  exit 0
fi

log "building etcd, etcdctl and etcdutl v$version from go.etcd.io/etcd (first use; a few minutes, then cached in $cache)"
enter_build_module ha-k8s.local/etcd-build
cat >tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/etcdutl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
EOF
export GOFLAGS=-mod=mod
go mod edit -require="go.etcd.io/etcd/server/v3@v$version" -require="go.etcd.io/etcd/etcdctl/v3@v$version" \
  -require="go.etcd.io/etcd/etcdutl/v3@v$version"
go mod tidy >/dev/null 2>&1 || go mod download
# Each main package's path ends in "v3", so each gets its own -o (the build cache is shared).
mkdir out
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o out/etcd go.etcd.io/etcd/server/v3
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o out/etcdctl go.etcd.io/etcd/etcdctl/v3
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o out/etcdutl go.etcd.io/etcd/etcdutl/v3
reported="$(out/etcd --version | sed -n 's/^etcd Version: //p')"
[ "$reported" = "$version" ] || {
  log "built etcd reports ${reported:-nothing}, expected $version"
  exit 1
}
for t in "${tools[@]}"; do mv "out/$t" "$cache/$t.tmp" && mv "$cache/$t.tmp" "$cache/$t"; done
log "etcd $reported cached in $cache"
echo "$cache"
