#!/usr/bin/env bash
# Delete-time action on a control plane when a node leaves the cluster (scale-down or VM
# replacement): drain it, remove its etcd member if it is a control plane, delete the Node object.
# Runs before the node's own `kubeadm reset` and before its VM is deleted: on the first control plane
# for control planes, on the control plane a worker was assigned to (round-robin) for workers.
#
# It acts only on the machine it was created for. Pulumi runs the delete command stored with the old
# step (pulumi-command's Delete runs the state's `delete` over the state's `connection`): after a lost
# VM was recreated (`pulumi refresh`, then `pulumi up`), the node of that name and the etcd member at
# that address may be the new machine's. Every Node records the instance id of its machine
# (annotation ha-k8s.io/instance-id, set by join.sh and kubeadm-init.sh from the metadata server);
# this script compares it with EXPECTED_INSTANCE_ID, which the program puts into this command:
#   - the same id, or no annotation (a node joined before ids were recorded): drain, remove the etcd
#     member, delete the Node, as below;
#   - another id (a replacement machine with the same name and address): nothing at all, and it says so;
#   - no such Node: nothing to drain or delete; an etcd member still at that address has no Node
#     proving whose it is (a machine that is joining right now adds its member before its Node
#     exists), so it is left alone, and the line says how to remove it by hand;
#   - the API does not answer: nothing can be proved, nothing is done.
#
# Inputs (environment): MEMBER_NODE, MEMBER_ROLE (control-plane|worker), MEMBER_IP, KUBECONFIG_PATH;
#   EXPECTED_INSTANCE_ID (the GCE instance id of the VM this step was created for);
#   DELETE_BUDGET_SECONDS (the delete command's `timeout`, DELETE_TIMEOUT_SECONDS in render/steps.ts;
#   default 300): the drain gets what is left after the etcd removal's share, so a refusal is always
#   reported (exit 75) before that timeout would kill the script (exit 124: "continuing teardown");
#   DELETE_REFUSED_EXIT (75): the exit status of a refusal, which the delete command passes on.
#
# Best effort and bounded: it succeeds, doing what it still can, when the node, its etcd member or
# the whole API is already gone, so `pulumi destroy` and scale-downs are never held hostage. One
# exception: when etcd refuses to remove a control plane's member because the others would lose
# their quorum, it exits 75 (the delete command passes that on), so Pulumi keeps the VM: deleting
# it would leave a member that never answers, and one more failure would cost the cluster's quorum.
# tools/destroy.sh drops such refused removals when the whole cluster is destroyed.
set -uo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env MEMBER_NODE MEMBER_ROLE MEMBER_IP KUBECONFIG_PATH
DELETE_BUDGET_SECONDS="${DELETE_BUDGET_SECONDS:-300}"
DELETE_REFUSED_EXIT="${DELETE_REFUSED_EXIT:-75}"
# Worst cases: the etcd removal (member list, four attempts of up to 10 s, 30 s between them) and
# the Node deletion at the end (two API calls of up to 20 s).
etcd_share=0
[ "$MEMBER_ROLE" != control-plane ] || etcd_share=90
final_share=40

EXPECTED_INSTANCE_ID="${EXPECTED_INSTANCE_ID:-}"

# Which machine the Node of that name is now: node_state present|absent, recorded_id its annotation.
if ! kctl get --raw /readyz >/dev/null 2>&1; then
  warn "the API does not answer; skipping drain and Node deletion of $MEMBER_NODE, and its etcd member: nothing proves which machine it is now"
  exit 0
fi
if ! state="$(node_instance "$MEMBER_NODE")"; then
  warn "could not read node $MEMBER_NODE ($state); skipping drain, etcd member removal and Node deletion: nothing proves which machine it is now"
  exit 0
fi
node_state="${state%% *}"
recorded_id=""
[ "$node_state" = absent ] || recorded_id="${state#present }"

if [ "$node_state" = present ] && [ -n "$recorded_id" ] && [ "$recorded_id" != "$EXPECTED_INSTANCE_ID" ]; then
  log "SKIPPED: node $MEMBER_NODE is now instance $recorded_id ($INSTANCE_ANNOTATION), not instance ${EXPECTED_INSTANCE_ID:-<none given>} this step was created for (a replacement machine with the same name and address); leaving its Node, its pods and its etcd member alone: nothing to undo"
  exit 0
fi
if [ "$node_state" = present ] && [ -z "$recorded_id" ]; then
  log "node $MEMBER_NODE carries no $INSTANCE_ANNOTATION (it joined before instance ids were recorded): removing it"
elif [ "$node_state" = present ]; then
  log "node $MEMBER_NODE is instance $recorded_id, the machine this step was created for: removing it"
fi

if [ "$node_state" = present ]; then
  kctl cordon "$MEMBER_NODE" >&2 || warn "cordon failed"
  drain_for=$((DELETE_BUDGET_SECONDS - SECONDS - etcd_share - final_share - 10))
  [ "$drain_for" -le 120 ] || drain_for=120
  if [ "$drain_for" -lt 10 ]; then
    warn "no time left to drain $MEMBER_NODE (the API was slow); continuing"
  else
    log "draining $MEMBER_NODE (bounded to $drain_for s)"
    timeout "$((drain_for + 10))" kubectl --kubeconfig "$(root_path "$KUBECONFIG_PATH")" drain "$MEMBER_NODE" \
      --ignore-daemonsets --delete-emptydir-data --force --timeout="${drain_for}s" >&2 ||
      warn "drain did not complete; continuing"
  fi
else
  log "node $MEMBER_NODE is not in the cluster; nothing to drain"
fi

# etcd refuses to remove a voting member when the others would not keep a quorum without it
# ("unhealthy cluster": fewer of them connected in the last 5 s than a quorum needs, which also holds
# for a few seconds after a peer reconnects; "not enough started members"), mayRemoveMember in
# go.etcd.io/etcd/server/v3/etcdserver/server.go. A few retries cover a peer that just came back.
refused_for_quorum=""
# shellcheck disable=SC2317 # called through retry
remove_member() {
  local out rc=0
  refused_for_quorum=""
  out="$(etcdctl_local member remove "$1" 2>&1)" || rc=$?
  printf '%s\n' "$out" >&2
  case "$out" in
    *"unhealthy cluster"* | *"not enough started members"*) refused_for_quorum=yes ;;
    # An earlier attempt went through after all (its answer was lost): done.
    *"member not found"*) return 0 ;;
  esac
  return "$rc"
}

if [ "$MEMBER_ROLE" = control-plane ]; then
  member_id="$(etcdctl_local member list 2>/dev/null | grep -F "https://$MEMBER_IP:2380" | cut -d, -f1 || true)"
  if [ -n "$member_id" ] && [ "$node_state" = absent ]; then
    warn "SKIPPED: etcd member $member_id ($MEMBER_IP) has no Node $MEMBER_NODE proving it is instance ${EXPECTED_INSTANCE_ID:-<none given>} (a machine joining right now adds its member before its Node): leaving it; if the machine at $MEMBER_IP is gone, remove it by hand (etcdctl member remove $member_id on a control plane)"
  elif [ -n "$member_id" ]; then
    log "removing etcd member $member_id ($MEMBER_IP)"
    if ! retry 4 remove_member "$member_id"; then
      if [ -n "$refused_for_quorum" ]; then
        warn "REFUSED: etcd will not remove the member of $MEMBER_NODE ($member_id): without it the other members would not keep a quorum (a control plane is down or just came back)"
        log "ERROR: $MEMBER_NODE stays a member (drained and cordoned) and its VM is kept: bring the other control planes back to health, then run pulumi up (or npm run destroy) again; to keep the node instead, kubectl uncordon $MEMBER_NODE"
        exit "$DELETE_REFUSED_EXIT"
      else
        warn "etcd member removal failed"
      fi
    fi
  else
    log "no etcd member with peer URL https://$MEMBER_IP:2380; nothing to remove"
  fi
fi

if [ "$node_state" = absent ]; then
  log "$MEMBER_NODE is not in the cluster; nothing to delete"
  exit 0
fi
if kctl get --raw /readyz >/dev/null 2>&1; then
  kctl delete node "$MEMBER_NODE" --ignore-not-found >&2 || warn "could not delete node $MEMBER_NODE"
fi
log "$MEMBER_NODE removed from the cluster"
exit 0
