#!/usr/bin/env bash
# Prints the path of a real fake-gcs-server binary (github.com/fsouza/fake-gcs-server, a server of
# the Cloud Storage JSON API), building it on first use from its Go module (through the Go module
# proxy) and caching it outside the repository, keyed by version:
#   ${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/fake-gcs-server/v<version>/fake-gcs-server
# Usage: tools/fake-gcs-server.sh [version]     (default 1.56.1, the release the backup tests use)
#
# The module's go.mod has no replace directives, so `go install <module>@<version>` builds exactly
# that release with the dependency versions its go.sum pins. Safe to run concurrently (flock) and
# again (a cached binary is reused).
set -euo pipefail
# shellcheck source=tools/go-cache.sh
. "$(dirname "${BASH_SOURCE[0]}")/go-cache.sh"

version="${1:-1.56.1}"
version="${version#v}"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || {
  echo "fake-gcs-server.sh: \"$version\" is not a release like 1.56.1" >&2
  exit 2
}
cache="$HA_K8S_CACHE/fake-gcs-server/v$version"
binary="$cache/fake-gcs-server"
log() { printf 'fake-gcs-server.sh: %s\n' "$*" >&2; }

if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
need_go "fake-gcs-server $version"
hold_lock "$cache/.lock"
if [ -x "$binary" ]; then # built by a concurrent run while we waited
  echo "$binary"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log "building fake-gcs-server v$version from github.com/fsouza/fake-gcs-server (first use; a few minutes, then cached in $cache)"
GOBIN="$work" CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/fsouza/fake-gcs-server@v$version"
[ -x "$work/fake-gcs-server" ] || {
  log "go install produced no fake-gcs-server binary"
  exit 1
}
mv "$work/fake-gcs-server" "$binary.tmp"
mv "$binary.tmp" "$binary"
log "fake-gcs-server v$version cached at $binary"
echo "$binary"
