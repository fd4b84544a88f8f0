#!/usr/bin/env bash
# Last step of an upgrade: fails `pulumi up` unless every expected node reports the new kubelet
# version and the API server, asked through the load balancer, reports the new version.
#
# Inputs (environment): EXPECTED_NODES (space-separated names), K8S_VERSION (v1.37.2), API_ENDPOINT,
#   KUBECONFIG_PATH.
#
# Safe to run again: it only reads.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env EXPECTED_NODES K8S_VERSION API_ENDPOINT KUBECONFIG_PATH
problems=()
for node in $EXPECTED_NODES; do
  version="$(node_kubelet_version "$node")"
  [ "$version" = "$K8S_VERSION" ] || problems+=("node $node reports kubelet ${version:-nothing}, not $K8S_VERSION")
done
server="$(kubectl --kubeconfig "$(root_path "$KUBECONFIG_PATH")" --server "https://$API_ENDPOINT" \
  --request-timeout=10s get --raw /version 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n 1)"
[ "$server" = "$K8S_VERSION" ] ||
  problems+=("the API server answers ${server:-nothing} through the load balancer at $API_ENDPOINT, not $K8S_VERSION")
if [ "${#problems[@]}" -gt 0 ]; then
  for p in "${problems[@]}"; do log "FAILED: $p"; done
  die "the upgrade to $K8S_VERSION is not complete (${#problems[@]} problem(s) above); run pulumi up again to resume it"
fi
log "upgrade complete: $(wc -w <<<"$EXPECTED_NODES") nodes and the API server run $K8S_VERSION"
