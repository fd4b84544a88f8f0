#!/usr/bin/env bash
# `kubeadm init` on the first control plane, with the cluster CA Pulumi generated (so joins can
# pin its hash) and the token and certificate key in the staged config (nothing scraped later).
#
# Inputs (environment): NODE_NAME, API_ENDPOINT (load balancer ip:port).
# Inputs (staged files): kubeadm-init.yaml (Init/Cluster/KubeletConfiguration; secret),
#   ca.crt, ca.key (secret).
#
# Safe to run again: an initialised cluster (API answering, cluster-info, kubeadm-config and CoreDNS
# present) is left alone; one whose init stopped after the API came up gets kubeadm's remaining
# phases (each idempotent); an attempt that stopped before etcd held anything is reset and run
# again. A node that holds the cluster's etcd data is never reset, even while its API does not
# answer. It refuses to create a second cluster when the endpoint already serves one (the first
# control plane's VM was replaced: see docs/operating.md, "The first control plane").
#
# Once initialised, its Node records which machine it is (annotation ha-k8s.io/instance-id, this VM's
# GCE instance id from the metadata server), as join.sh does for the others: delete actions compare it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME API_ENDPOINT
CONFIG="$(staged kubeadm-init.yaml)"
CA_CERT="$(staged ca.crt)"
CA_KEY="$(staged ca.key)"
ADMIN_CONF="$(root_path /etc/kubernetes/admin.conf)"
PKI="$(root_path /etc/kubernetes/pki)"

admin() { kubectl --kubeconfig "$ADMIN_CONF" --request-timeout=10s "$@"; }
api_ready() { admin get --raw /readyz >/dev/null 2>&1; }
# What kubeadm init creates after the API is up; joins need the first two.
init_complete() {
  admin -n kube-public get configmap cluster-info >/dev/null 2>&1 &&
    admin -n kube-system get configmap kubeadm-config >/dev/null 2>&1 &&
    admin -n kube-system get deployment coredns >/dev/null 2>&1
}

# Once this node's etcd holds the cluster (the member directory exists) next to admin.conf, it is
# the cluster: never reset it. If its API does not answer now (a restart, a blip), wait; if it
# still does not answer, stop and say so rather than start a second cluster.
MARKER="$(root_path /var/lib/ha-k8s/initialised)"
if [ -f "$MARKER" ] || { [ -f "$ADMIN_CONF" ] && [ -d "$(root_path /var/lib/etcd/member)" ]; }; then
  wait_until 60 "the API of the initialised control plane $NODE_NAME" api_ready ||
    die "$NODE_NAME holds this cluster's etcd data but its API does not answer; not resetting it (that would lose the cluster): check kubelet and the static pods (crictl ps -a, journalctl -u kubelet), then run pulumi up again"
fi

if [ -f "$ADMIN_CONF" ] && api_ready; then
  if init_complete; then
    log "$NODE_NAME is already initialised and its API answers; nothing to do"
    record_instance_id admin
    exit 0
  fi
  log "the API answers but kubeadm init did not finish: running its remaining phases; output redacted"
  for phase in "upload-config all" "upload-certs --upload-certs" "mark-control-plane" "bootstrap-token" \
    "kubelet-finalize all" "addon all"; do
    read -ra words <<<"$phase"
    run_redacted kubeadm init phase "${words[@]}" --config "$CONFIG" || die "kubeadm init phase $phase failed"
  done
  init_complete || die "kubeadm's remaining phases ran but cluster-info, kubeadm-config or CoreDNS is still missing"
  mkdir -p "$(dirname "$MARKER")" && touch "$MARKER"
  record_instance_id admin
  log "control plane initialised on $NODE_NAME"
  exit 0
fi

if [ ! -f "$ADMIN_CONF" ] && curl -ksf --max-time 5 "https://$API_ENDPOINT/version" >/dev/null 2>&1; then
  die "a Kubernetes API already answers at $API_ENDPOINT but this node has no admin.conf: refusing to create a second cluster (see docs/operating.md, 'The first control plane')"
fi

# Only an attempt that never got its etcd going (no marker, no member data) is reset and run again.
if [ -e "$(root_path /etc/kubernetes/manifests/kube-apiserver.yaml)" ] || [ -n "$(ls -A "$(root_path /var/lib/etcd)" 2>/dev/null)" ]; then
  log "found state of an earlier, unfinished attempt: kubeadm reset first"
  run_redacted kubeadm reset -f || die "kubeadm reset failed"
fi

# kubeadm init keeps an existing CA; a different one would mean a different cluster.
mkdir -p "$PKI"
for pair in "$CA_CERT:ca.crt:644" "$CA_KEY:ca.key:600"; do
  IFS=: read -r src name mode <<<"$pair"
  if [ -f "$PKI/$name" ] && ! cmp -s "$src" "$PKI/$name"; then
    die "$PKI/$name exists and differs from the cluster CA Pulumi generated; refusing to mix CAs"
  fi
  install_file "$src" "$PKI/$name" "$mode" || true
done

log "kubeadm init on $NODE_NAME (endpoint $API_ENDPOINT); output redacted"
run_redacted kubeadm init --config "$CONFIG" --upload-certs --skip-certificate-key-print ||
  die "kubeadm init failed (output above)"

wait_until 60 "the API to be ready through $API_ENDPOINT" api_ready || die "the API did not become ready after kubeadm init"
mkdir -p "$(dirname "$MARKER")" && touch "$MARKER"
record_instance_id admin
log "control plane initialised on $NODE_NAME"
