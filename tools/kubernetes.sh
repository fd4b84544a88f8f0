#!/usr/bin/env bash
# Prints the paths of real Kubernetes binaries (kubeadm, kubectl, kube-apiserver,
# kube-controller-manager, ...) of exactly the given version, one per line in the order asked,
# building the missing ones on first use from the Kubernetes Go modules (through the Go module
# proxy) and caching them outside the repository, keyed by version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/<binary>/v<version>/<binary>
# Usage: tools/kubernetes.sh 1.36.3 kube-apiserver kube-controller-manager kubeadm kubectl
#
# k8s.io/kubernetes replaces its k8s.io/* staging modules with local paths, which a module that
# requires it cannot use; a throwaway module pins each of them (the list read from that version's own
# go.mod) to the matching v0.<minor>.<patch> instead. The version is stamped in with ldflags as the
# release build does (hack/lib/version.sh: component-base/version and client-go/pkg/version), so
# `--version`, kubeadm's version-skew checks and the API server's /version see the real version.
# Each binary gets its own `go build -o`; they share Go's build cache, so the second one reuses
# most of the first. Safe to run concurrently (flock) and again (cached binaries are reused).
set -euo pipefail

usage="usage: tools/kubernetes.sh <kubernetes version, e.g. 1.36.3> <binary>... (kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)"
version="${1:?$usage}"
shift
[ "$#" -gt 0 ] || {
  echo "kubernetes.sh: $usage" >&2
  exit 2
}
version="${version#v}"
[[ "$version" =~ ^1\.([0-9]+)\.([0-9]+)$ ]] || {
  echo "kubernetes.sh: \"$version\" is not a Kubernetes patch version like 1.36.3" >&2
  exit 2
}
minor="${BASH_REMATCH[1]}"
staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"
# shellcheck source=tools/go-cache.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-cache.sh"
log() { printf 'kubernetes.sh: %s\n' "$*" >&2; }

binaries=("$@")
for b in "${binaries[@]}"; do
  case "$b" in
    kubeadm | kubectl | kube-apiserver | kube-controller-manager | kube-scheduler | kubelet | kube-proxy) ;;
    *)
      log "\"$b\" is not a binary this tool builds ($usage)"
      exit 2
      ;;
  esac
done
path_of() { printf '%s/%s/v%s/%s' "$HA_K8S_CACHE" "$1" "$version" "$1"; }
missing() {
  local b
  for b in "${binaries[@]}"; do [ -x "$(path_of "$b")" ] || echo "$b"; done
}
print_paths() {
  local b
  for b in "${binaries[@]}"; do path_of "$b" && echo; done
}

if [ -z "$(missing)" ]; then
  print_paths
  exit 0
fi
need_go "$(missing | tr '\n' ' ')v$version"

# One lock per version: concurrent runs build each binary once and share the module download.
hold_lock "$HA_K8S_CACHE/.locks/kubernetes-v$version.lock"
mapfile -t to_build < <(missing) # a concurrent run may have built some while we waited
if [ "${#to_build[@]}" -eq 0 ]; then
  print_paths
  exit 0
fi

log "building ${to_build[*]} v$version from k8s.io/kubernetes (first use; a few minutes each, then cached under $HA_K8S_CACHE)"
enter_build_module ha-k8s.local/kubernetes-build
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
{
  printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for b in "${to_build[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
  printf ')\n'
} >tools.go
needs_go="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$upstream_mod")"
have_go="$(go env GOVERSION | sed 's/^go//')"
if [ "$(printf '%s\n%s\n' "$needs_go" "$have_go" | sort -V | head -n 1)" != "$needs_go" ]; then
  log "k8s.io/kubernetes v$version needs Go $needs_go, this is Go $have_go: export GOTOOLCHAIN=go$needs_go (or newer) and retry"
  exit 1
fi
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitCommit=unknown"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
for b in "${to_build[@]}"; do
  started=$SECONDS
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/$b" "k8s.io/kubernetes/cmd/$b" || {
    log "go build of $b v$version failed (output above)"
    exit 1
  }
  # Each reports the version it was stamped with: kubeadm and kubectl in their own formats, the
  # control-plane components as "Kubernetes v1.36.3".
  case "$b" in
    kubeadm) reported="$("$work/$b" version -o short)" ;;
    kubectl) reported="$("$work/$b" version --client -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | head -n 1)" ;;
    *) reported="$("$work/$b" --version | sed -n 's/^Kubernetes //p')" ;;
  esac
  [ "$reported" = "v$version" ] || {
    log "built $b reports ${reported:-nothing}, expected v$version"
    exit 1
  }
  target="$(path_of "$b")"
  mkdir -p "$(dirname "$target")"
  mv "$work/$b" "$target.tmp"
  mv "$target.tmp" "$target"
  log "$b $reported cached at $target ($((SECONDS - started)) s)"
done
print_paths
