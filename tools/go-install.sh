#!/usr/bin/env bash
# Prints the directory holding the named binaries of one Go module release, building them on first
# use with `go install <package>@<version>` (through the Go module proxy) and caching them outside
# the repository, keyed by name and version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/<name>/<version>/<binary>...
# Usage: tools/go-install.sh <name> <module>@<version> [--tags "<build tags>"] [--ldflags "<-X ...>"] <package>...
#   e.g. tools/go-install.sh crictl sigs.k8s.io/cri-tools@v1.37.0 cmd/crictl
# Packages are paths inside the module ("." for the module's own main package). `go install` builds
# the release with the dependency versions its go.sum pins, which needs a go.mod without replace
# directives (true of containerd, cri-tools, CoreDNS and the CNI plugins). Static binaries
# (CGO_ENABLED=0), stripped. Safe to run concurrently (flock) and again (cached binaries are reused).
set -euo pipefail
# shellcheck source=tools/go-cache.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-cache.sh"
usage='usage: tools/go-install.sh <name> <module>@<version> [--tags "<tags>"] [--ldflags "<flags>"] <package>...'
log() { printf 'go-install.sh: %s\n' "$*" >&2; }

name="${1:?$usage}"
target="${2:?$usage}"
shift 2
module="${target%@*}"
version="${target##*@}"
[[ "$name" =~ ^[a-z0-9][a-z0-9.-]*$ && "$target" == *@v* && "$module" != "$version" ]] || {
  log "$usage"
  exit 2
}
tags=""
ldflags="-s -w"
packages=()
while [ "$#" -gt 0 ]; do
  case "$1" in
    --tags) tags="$2" && shift 2 ;;
    --ldflags) ldflags="-s -w $2" && shift 2 ;;
    *) packages+=("$1") && shift ;;
  esac
done
[ "${#packages[@]}" -gt 0 ] || {
  log "$usage"
  exit 2
}
cache="$HA_K8S_CACHE/$name/$version"
binary_of() { if [ "$1" = . ]; then basename "$module"; else basename "$1"; fi; }
built() {
  local p
  for p in "${packages[@]}"; do [ -x "$cache/$(binary_of "$p")" ] || return 1; done
}

if built; then
  echo "$cache"
  exit 0
fi
need_go "$name $version"
hold_lock "$cache/.lock"
if built; then # built by a concurrent run while we waited
  echo "$cache"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
targets=()
for p in "${packages[@]}"; do
  if [ "$p" = . ]; then targets+=("$module@$version"); else targets+=("$module/$p@$version"); fi
done
log "building $name $version (${packages[*]}) from $module (first use; then cached in $cache)"
started=$SECONDS
GOBIN="$work" CGO_ENABLED=0 GOFLAGS='' go install -trimpath -tags "$tags" -ldflags "$ldflags" "${targets[@]}" || {
  log "go install of ${targets[*]} failed (output above)"
  exit 1
}
for p in "${packages[@]}"; do
  b="$(binary_of "$p")"
  [ -x "$work/$b" ] || {
    log "go install produced no $b"
    exit 1
  }
  mv "$work/$b" "$cache/$b.tmp"
  mv "$cache/$b.tmp" "$cache/$b"
done
log "$name $version cached in $cache ($((SECONDS - started)) s)"
echo "$cache"
