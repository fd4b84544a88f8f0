#!/usr/bin/env bash
# Delete-time action of a join: `kubeadm reset` on the node being removed (on a control plane this
# also removes its etcd member when that is still possible). Best effort: bounded, and it succeeds
# when the node was never joined, is already reset, or the cluster is gone; the VM is deleted next.
#
# Inputs: none.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v kubeadm >/dev/null 2>&1; then
  log "kubeadm is not installed; nothing to reset"
  exit 0
fi
if [ ! -e "$(root_path /etc/kubernetes/kubelet.conf)" ] && [ -z "$(ls -A "$(root_path /etc/kubernetes/manifests)" 2>/dev/null)" ]; then
  log "this node holds no cluster state; nothing to reset"
  exit 0
fi
log "kubeadm reset (bounded to 180 s)"
if ! timeout 180 kubeadm reset -f 2>&1 | redact >&2; then
  warn "kubeadm reset did not complete; the VM is being deleted anyway"
fi
exit 0
