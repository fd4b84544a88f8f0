#!/usr/bin/env bash
# Runs actionlint (github.com/rhysd/actionlint, pinned) on .github/workflows, building it on first
# use from its Go module and caching it outside the repository. actionlint also runs shellcheck on
# every `run:` block when shellcheck is on PATH.
set -euo pipefail
VERSION=v1.7.12
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HA_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ha-k8s}/actionlint/$VERSION"
if [ ! -x "$cache/actionlint" ]; then
  command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
  command -v go >/dev/null || {
    echo "actionlint.sh: Go is needed to build actionlint $VERSION (https://go.dev/dl/)" >&2
    exit 1
  }
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
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
