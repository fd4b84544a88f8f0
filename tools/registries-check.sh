#!/usr/bin/env bash
# Prints the path of tests/artifacts/registries (registries-check: where CRI-O's own registries
# library, go.podman.io/image, would pull an image from), building it on first use from its Go
# module and caching it outside the repository, keyed by a hash of its source and go.sum.
# Safe to run concurrently (flock) and again.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/tests/artifacts/registries"
# shellcheck source=tools/go-cache.sh
. "$REPO/tools/go-cache.sh"
key="$(cat "$SRC/main.go" "$SRC/go.mod" "$SRC/go.sum" | sha256sum | cut -c1-16)"
cache="$HA_K8S_CACHE/registries-check/$key"
binary="$cache/registries-check"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
need_go "the registries check"
hold_lock "$cache/.lock"
if [ ! -x "$binary" ]; then
  echo "registries-check.sh: building the registries check (first use; cached in $cache)" >&2
  # The tags drop code that needs C libraries (gpgme, btrfs), as go.podman.io/image documents.
  (cd "$SRC" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
    -tags containers_image_openpgp,exclude_graphdriver_btrfs -o "$binary.tmp" .)
  mv "$binary.tmp" "$binary"
fi
echo "$binary"
