#!/usr/bin/env bash
# Installs Calico: the Tigera operator from the pinned release manifests, then our Installation
# (pod CIDR = the cluster's podCidr, VXLAN, BGP off), and waits until the first node is Ready.
#
# Inputs (environment): NODE_NAME (this node), CALICO_MANIFEST_URLS (space-separated, pinned release;
#   under calicoManifestMirror when it is set),
#   KUBECONFIG_PATH.
# Inputs (staged files): calico-resources.yaml (Installation + APIServer).
#
# Safe to run again: server-side apply of the same manifests and resources changes nothing.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME CALICO_MANIFEST_URLS KUBECONFIG_PATH
RESOURCES="$(staged calico-resources.yaml)"

for url in $CALICO_MANIFEST_URLS; do
  log "applying $url"
  # Server-side: the CRDs are too large for client-side apply's last-applied annotation.
  retry 5 kctl apply --server-side --force-conflicts -f "$url" >&2 || die "cannot apply $url"
done
wait_until 60 "the Installation CRD" kctl wait --for=condition=Established --timeout=5s crd/installations.operator.tigera.io ||
  die "the Tigera operator CRDs did not become established"
log "applying the Installation (pod CIDR, VXLAN)"
retry 5 kctl apply --server-side --force-conflicts -f "$RESOURCES" >&2 || die "cannot apply Calico's Installation"

wait_until 120 "Calico to become available" kctl wait --for=condition=Available --timeout=5s tigerastatus/calico ||
  die "Calico did not become available (kubectl get tigerastatus)"
wait_until 60 "$NODE_NAME to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" ||
  die "$NODE_NAME did not become Ready after Calico came up"
log "Calico is available; $NODE_NAME is Ready"
