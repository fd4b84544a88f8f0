#!/usr/bin/env bash
# Runs actionlint (github.com/rhysd/actionlint, pinned) on .github/workflows, building it on first
# use from its Go module and caching it outside the repository. actionlint also runs shellcheck on
# every `run:` block when shellcheck is on PATH.
set -euo pipefail
VERSION=v1.7.12
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=tools/go-cache.sh
. "$REPO/tools/go-cache.sh"
cache="$HA_K8S_CACHE/actionlint/$VERSION"
if [ ! -x "$cache/actionlint" ]; then
  need_go "actionlint $VERSION"
  hold_lock "$cache/.lock"
  if [ ! -x "$cache/actionlint" ]; then
    echo "actionlint.sh: building actionlint $VERSION (first use; cached in $cache)" >&2
    tmp="$(mktemp -d)"
    GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
    mv "$tmp/actionlint" "$cache/actionlint"
    rm -rf "$tmp"
  fi
fi
cd "$REPO"
"$cache/actionlint" -version | head -n 1 >&2
# Without arguments actionlint looks for the repository through git, which a downloaded archive
# (no .git) lacks: name the workflow files instead.
if [ "$#" -eq 0 ]; then
  shopt -s nullglob
  set -- .github/workflows/*.yml .github/workflows/*.yaml
  [ "$#" -gt 0 ] || {
    echo "actionlint.sh: no workflow files in $REPO/.github/workflows" >&2
    exit 1
  }
fi
exec "$cache/actionlint" "$@"
