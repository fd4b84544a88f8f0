#!/usr/bin/env bash
# Runs on a control plane before a worker is upgraded: drains it (PodDisruptionBudgets respected,
# bounded), unless it already runs the new version (a resumed upgrade). A drain that does not finish
# in time stops the upgrade, naming the worker and the pods still on it.
#
# Inputs (environment): NODE_NAME (the worker), K8S_VERSION (v1.37.2), KUBECONFIG_PATH,
#   DRAIN_TIMEOUT_SECONDS.
#
# Safe to run again: draining a drained node changes nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME K8S_VERSION KUBECONFIG_PATH DRAIN_TIMEOUT_SECONDS
wait_until 24 "the API" kctl get --raw /readyz || die "the API does not answer; cannot drain $NODE_NAME"
current="$(node_kubelet_version "$NODE_NAME")"
[ -n "$current" ] || die "node $NODE_NAME is not in the cluster; cannot upgrade it"
if [ "$current" = "$K8S_VERSION" ]; then
  log "$NODE_NAME already runs kubelet $K8S_VERSION; not draining it"
  exit 0
fi
drain_node "$NODE_NAME" "$DRAIN_TIMEOUT_SECONDS"
log "$NODE_NAME drained (kubelet $current); it is upgraded next"
