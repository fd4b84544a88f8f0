#!/usr/bin/env bash
# `kubeadm join` of a control plane or worker, from the staged JoinConfiguration (token, pinned CA
# hash and, for control planes, the certificate key). Control planes then wait until their API
# server is ready and their etcd member healthy, so the next control plane joins a settled cluster.
#
# Inputs (environment): NODE_NAME, NODE_ROLE (control-plane|worker), API_ENDPOINT.
# Inputs (staged files): kubeadm-join.yaml (secret).
#
# Safe to run again: a joined node (kubelet.conf present, kubelet running and, on a control plane,
# its etcd and API server manifests in place) does not join again; a half-finished earlier attempt
# is reset first.
#
# Then the Node records which machine it is: annotation ha-k8s.io/instance-id, this VM's GCE instance
# id from the metadata server, set with the kubelet's own credentials (a node may change its own Node
# object). The delete actions compare it (member-remove.sh): one created for an earlier machine of the
# same name and address, which Pulumi may still run after that machine was lost and recreated, then
# leaves this one alone. Without the id the step fails: a Node without it would be unprotected.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME NODE_ROLE API_ENDPOINT
CONFIG="$(staged kubeadm-join.yaml)"
KUBELET_CONF="$(root_path /etc/kubernetes/kubelet.conf)"

local_api_ready() { curl -ksf --max-time 5 https://127.0.0.1:6443/readyz >/dev/null; }
local_etcd_healthy() { etcdctl_local endpoint health >/dev/null; }

if node_joined "$NODE_ROLE"; then
  log "$NODE_NAME has already joined; not joining again"
else
  if join_leftovers; then
    log "found state of an earlier, unfinished join: kubeadm reset first"
    run_redacted kubeadm reset -f || die "kubeadm reset failed"
  fi
  log "kubeadm join of $NODE_NAME as $NODE_ROLE through $API_ENDPOINT; output redacted"
  run_redacted kubeadm join --config "$CONFIG" || die "kubeadm join failed (output above)"
fi

if [ "$NODE_ROLE" = control-plane ]; then
  wait_until 60 "the local API server to be ready" local_api_ready || die "the API server on $NODE_NAME is not ready"
  wait_until 60 "the local etcd member to be healthy" local_etcd_healthy || die "the etcd member on $NODE_NAME is not healthy"
  log "$NODE_NAME: API server ready, etcd member healthy"
fi
as_node() { kubectl --kubeconfig "$KUBELET_CONF" --request-timeout=20s "$@"; }
record_instance_id as_node
log "$NODE_NAME joined"
