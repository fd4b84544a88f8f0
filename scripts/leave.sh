#!/usr/bin/env bash
# Delete-time action of a join: `kubeadm reset` on the node being removed (on a control plane this
# also removes its etcd member when that is still possible). Best effort: bounded, and it succeeds
# when the node was never joined, is already reset, or the cluster is gone; the VM is deleted next.
#
# It acts only on the machine its join was created for. Pulumi runs the delete command stored with
# the old join, over the stored connection (pulumi-command's Delete runs the state's `delete` with the
# state's `connection`): after a lost VM was recreated (`pulumi refresh`, then `pulumi up`), that is
# the new machine at the same address. So it compares this machine's instance id (GCE's metadata
# server) with the one the program put into this command, and does nothing, saying so, when they
# differ or when it cannot read this machine's id.
#
# Inputs (environment): EXPECTED_INSTANCE_ID (the instance id of the VM the join ran on).
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

EXPECTED_INSTANCE_ID="${EXPECTED_INSTANCE_ID:-}"

if ! command -v kubeadm >/dev/null 2>&1; then
  log "kubeadm is not installed; nothing to reset"
  exit 0
fi
if [ ! -e "$(root_path /etc/kubernetes/kubelet.conf)" ] && [ -z "$(ls -A "$(root_path /etc/kubernetes/manifests)" 2>/dev/null)" ]; then
  log "this node holds no cluster state; nothing to reset"
  exit 0
fi

if ! actual="$(this_instance_id)"; then
  warn "SKIPPED: cannot read this machine's instance id from the metadata server, so nothing proves it is instance ${EXPECTED_INSTANCE_ID:-<none given>} this join was created for; not resetting it"
  exit 0
fi
if [ "$actual" != "$EXPECTED_INSTANCE_ID" ]; then
  log "SKIPPED: this machine is instance $actual, not instance ${EXPECTED_INSTANCE_ID:-<none given>} this join was created for (a replacement machine with the same name and address); nothing to undo here, not resetting it"
  exit 0
fi

log "this machine is instance $actual, the one this join was created for: kubeadm reset (bounded to 180 s)"
if ! timeout 180 kubeadm reset -f 2>&1 | redact >&2; then
  warn "kubeadm reset did not complete; the VM is being deleted anyway"
fi
exit 0
