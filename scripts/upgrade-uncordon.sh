#!/usr/bin/env bash
# Runs on a control plane after a worker was upgraded: waits until its Node is Ready and reports the
# new kubelet version, then uncordons it, so the next worker of the same lane may be drained.
#
# Inputs (environment): NODE_NAME (the worker), K8S_VERSION (v1.37.2), KUBECONFIG_PATH.
#
# Safe to run again: uncordoning a schedulable node changes nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME K8S_VERSION KUBECONFIG_PATH
at_target() { [ "$(node_kubelet_version "$NODE_NAME")" = "$K8S_VERSION" ]; }
wait_until 60 "$NODE_NAME to report kubelet $K8S_VERSION" at_target ||
  die "$NODE_NAME reports kubelet $(node_kubelet_version "$NODE_NAME"), not $K8S_VERSION; it stays cordoned"
wait_until 60 "$NODE_NAME to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" ||
  die "$NODE_NAME is not Ready after its upgrade; it stays cordoned"
kctl uncordon "$NODE_NAME" >&2 || die "cannot uncordon $NODE_NAME"
log "$NODE_NAME runs kubelet $K8S_VERSION and takes pods again"
