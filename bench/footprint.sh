#!/usr/bin/env bash
# Runs one rendered prepare bundle (argument: its path) on a stub machine (tests/scripts/stubs.bash)
# and prints, as JSON, what it asked of the machine: apt-get updates, repositories, packages, image
# pulls. A count of the script's real behaviour, not an estimate. Used by bench/run.ts.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MACHINE_DIR="$(mktemp -d)"
trap 'rm -rf "$MACHINE_DIR"' EXIT
# shellcheck source=tests/scripts/stubs.bash
. "$REPO/tests/scripts/stubs.bash"
stub_machine
stub_node_machine
unset HA_K8S_STAGE
bash -s <"$1" >/dev/null 2>&1

updates="$(grep -cE '^apt-get .* update' "$CALLS" || true)"
packages="$(grep -E '^apt-get .* install' "$CALLS" | tr ' ' '\n' | grep -vE '^(apt-get|install|-.*|.*::.*)$' | sort -u | paste -sd, - || true)"
repos="$(find "$HA_K8S_ROOT/etc/apt/sources.list.d" -name '*.list' -printf '%f\n' 2>/dev/null | sort | paste -sd, - || true)"
pulls="$(grep -cE '^kubeadm config images pull' "$CALLS" || true)"
printf '{"aptUpdates":%s,"repositories":"%s","packages":"%s","imagePulls":%s}\n' "$updates" "$repos" "$packages" "$pulls"
