#!/usr/bin/env bash
# Prints the path of a real kubeadm binary of exactly the given Kubernetes version, building it on
# first use from the Kubernetes Go modules (through the Go module proxy) and caching it outside the
# repository, keyed by version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/kubeadm/v<version>/kubeadm
# Usage: tools/kubeadm.sh 1.36.3
#
# k8s.io/kubernetes replaces its k8s.io/* staging modules with local paths, which a module that
# requires it cannot use; a throwaway module pins each of them (the list read from that version's own
# go.mod) to the matching v0.<minor>.<patch> instead. The version is stamped in with ldflags, as the
# release build does, so `kubeadm version` and its version-skew checks see the real version.
# Safe to run concurrently (flock) and again (a cached binary is reused).
set -euo pipefail

version="${1:?usage: tools/kubeadm.sh <kubernetes version, e.g. 1.36.3>}"
version="${version#v}"
[[ "$version" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || {
  echo "kubeadm.sh: \"$version\" is not a Kubernetes patch version like 1.36.3" >&2
  exit 2
}
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
cache="${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/kubeadm/v$version"
binary="$cache/kubeadm"
log() { printf 'kubeadm.sh: %s\n' "$*" >&2; }

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || {
  log "Go is needed to build kubeadm $version (https://go.dev/dl/; /usr/local/go/bin on CI machines)"
  exit 1
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -x "$binary" ]; then # built by a concurrent run while we waited
  echo "$binary"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "building kubeadm v$version from k8s.io/kubernetes (first use; a few minutes, then cached in $cache)"
cd "$work"
cat >go.mod <<EOF
module ha-k8s.local/kubeadm-build

go 1.26
EOF
export GOFLAGS=-mod=mod
go mod download "k8s.io/kubernetes@v$version"
upstream_mod="$(go env GOMODCACHE)/k8s.io/kubernetes@v$version/go.mod"
replaces=()
while read -r module _; do
  replaces+=("-replace=$module=$module@$staging_version")
done < <(grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$upstream_mod" | sed -E 's/^\s*//')
[ "${#replaces[@]}" -gt 0 ] || {
  log "no staging modules found in $upstream_mod"
  exit 1
}
go mod edit "${replaces[@]}" -require="k8s.io/kubernetes@v$version"
cat >tools.go <<'EOF'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubeadm"
EOF
needs_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$upstream_mod")"
have_go="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$needs_go" "$have_go" | sort -V | head -n 1)" != "$needs_go" ]; then
  log "k8s.io/kubernetes v$version needs Go $needs_go, this is Go $have_go: export GOTOOLCHAIN=go1.27.3 (or newer) and retry"
  exit 1
fi
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=${BASH_REMATCH[1]} -X $pkg.gitCommit=unknown -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/kubeadm" k8s.io/kubernetes/cmd/kubeadm
built="$("$work/kubeadm" version -o short)"
[ "$built" = "v$version" ] || {
  log "built kubeadm reports $built, expected v$version"
  exit 1
}
mv "$work/kubeadm" "$binary.tmp"
mv "$binary.tmp" "$binary"
log "kubeadm $built cached at $binary"
echo "$binary"
