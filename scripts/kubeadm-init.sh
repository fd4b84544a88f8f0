#!/usr/bin/env bash
# `kubeadm init` on the first control plane, with the keys Pulumi generated: the cluster CA (so
# joins can pin its hash) and the keys every control plane shares (etcd CA, front-proxy CA,
# service-account key pair), and the token and certificate key in the staged config (nothing
# scraped later). kubeadm init keeps keys it finds in its pki.
#
# Inputs (environment): NODE_NAME, NODE_IP, API_ENDPOINT (load balancer ip:port), TOKEN_TTL_HOURS,
#   OTHER_CONTROL_PLANE_IPS (cp-2 and cp-3, which scaling never removes; empty with one control plane).
# Inputs (staged files): kubeadm-init.yaml (Init/Cluster/KubeletConfiguration; secret),
#   kubeadm-join.yaml (a control plane's JoinConfiguration without the certificate key; secret),
#   bootstrap-token (secret), ca.crt, ca.key, etcd-ca.crt, etcd-ca.key, front-proxy-ca.crt,
#   front-proxy-ca.key, sa.key, sa.pub (the keys secret); join.sh next to this script.
#
# Safe to run again (a new release's bundle runs it again on a running cluster): an initialised
# cluster (API answering, cluster-info, kubeadm-config and CoreDNS present) is left alone; one whose
# init stopped after the API came up gets kubeadm's remaining phases (each idempotent); an attempt
# that stopped before etcd held anything is reset and run again. The first control plane that holds
# the cluster's etcd data is never reset, even while its API does not answer. (A rebuilt one whose
# join stopped half-way is: its member then holds no data the others lack.)
#
# Never a second cluster: when the endpoint already serves one and this machine has no admin.conf,
# the first control plane's VM was lost and created again (pulumi up --refresh) while the others
# kept the cluster. This machine then joins that cluster as a control plane (rejoin_cluster below).
#
# Once initialised, its Node records which machine it is (annotation ha-k8s.io/instance-id, this VM's
# GCE instance id from the metadata server), as join.sh does for the others: delete actions compare it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME NODE_IP API_ENDPOINT TOKEN_TTL_HOURS
CONFIG="$(staged kubeadm-init.yaml)"
ADMIN_CONF="$(root_path /etc/kubernetes/admin.conf)"
PKI="$(root_path /etc/kubernetes/pki)"
MARKER="$(root_path /var/lib/ha-k8s/initialised)"
# Present while a rebuilt first control plane joins: a retry goes on joining.
REJOIN_MARKER="$(root_path /var/lib/ha-k8s/rejoining)"
# The rejoin's own kubeconfig, made from the cluster CA (kctl adds root_path); removed after.
REJOIN_DIR=/var/lib/ha-k8s/rejoin
# The staged InitConfiguration at kubeadm's own version, for the rejoin's phases; removed after.
CONFIG_NOW="$HA_K8S_STAGE/kubeadm-init.current.yaml"

admin() { kubectl --kubeconfig "$ADMIN_CONF" --request-timeout=10s "$@"; }
api_ready() { admin get --raw /readyz >/dev/null 2>&1; }
# What kubeadm init creates after the API is up; joins need the first two.
init_complete() {
  admin -n kube-public get configmap cluster-info >/dev/null 2>&1 &&
    admin -n kube-system get configmap kubeadm-config >/dev/null 2>&1 &&
    admin -n kube-system get deployment coredns >/dev/null 2>&1
}

# The staged keys, each installed under /etc/kubernetes/pki at the path its name gives. A different
# key already there would mean a different cluster.
install_shared_keys() {
  local pair src name mode
  mkdir -p "$PKI/etcd"
  for pair in ca.crt:ca.crt:644 ca.key:ca.key:600 etcd-ca.crt:etcd/ca.crt:644 etcd-ca.key:etcd/ca.key:600 \
    front-proxy-ca.crt:front-proxy-ca.crt:644 front-proxy-ca.key:front-proxy-ca.key:600 sa.key:sa.key:600 sa.pub:sa.pub:644; do
    IFS=: read -r src name mode <<<"$pair"
    src="$(staged "$src")"
    if [ -f "$PKI/$name" ] && ! cmp -s "$src" "$PKI/$name"; then
      die "$PKI/$name exists and differs from the one Pulumi generated; refusing to mix keys"
    fi
    install_file "$src" "$PKI/$name" "$mode" || true
  done
}

# etcdctl in the etcd static pod of another control plane, through the API (kubectl exec): this
# machine runs no etcd yet. Tries each until one answers.
etcdctl_through_api() {
  local pods pod node
  pods="$(kctl -n kube-system get pods -l component=etcd -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName}{"\n"}{end}')" ||
    return 1
  while read -r pod node; do
    if [ -z "$pod" ] || [ "$node" = "$NODE_NAME" ]; then continue; fi
    kctl -n kube-system exec "$pod" -c etcd -- etcdctl --endpoints=https://127.0.0.1:2379 \
      --cacert=/etc/kubernetes/pki/etcd/ca.crt \
      --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
      --key=/etc/kubernetes/pki/etcd/healthcheck-client.key \
      --command-timeout=10s "$@" && return 0
  done <<<"$pods"
  return 1
}

# Some other control plane's etcd answers this machine's client certificate, made from the stack's
# etcd CA: the cluster trusts the keys Pulumi holds. Asked: cp-2, cp-3, and every control-plane Node
# the API lists.
etcd_trusts_stack_keys() {
  local ip listed
  listed="$(kctl get nodes -l node-role.kubernetes.io/control-plane \
    -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{" "}{end}' 2>/dev/null || true)"
  for ip in $OTHER_CONTROL_PLANE_IPS $listed; do
    [ "$ip" != "$NODE_IP" ] || continue
    retry 2 member_answers "$ip" && return 0
  done
  return 1
}

# A rebuilt first control plane joins the cluster the others kept, as Cluster API's
# KubeadmControlPlane replaces any control-plane machine: the shared keys come from Pulumi's state
# (as Cluster API keeps them in Secrets), so no machine has to upload them and no step has to run on
# a machine that is gone. With them it makes itself an etcd client certificate and an admin
# kubeconfig, removes its lost etcd member through a healthy one (remove_lost_member, lib.sh), issues
# the bootstrap token, then joins with keys on disk (join.sh; kubeadm downloads no certificates
# without a certificate key: runControlPlanePrepareDownloadCertsPhaseLocal in
# cmd/kubeadm/app/cmd/phases/join/controlplaneprepare.go, and its preflight checks the shared keys
# instead: SharedCertificateExists).
rejoin_cluster() {
  local joining rc=0
  [ -n "${OTHER_CONTROL_PLANE_IPS// /}" ] ||
    die "a Kubernetes API already answers at $API_ENDPOINT but this node has no admin.conf, and there is no other control plane to join: refusing to create a second cluster (see docs/operating.md, 'The first control plane')"
  mkdir -p "$(dirname "$REJOIN_MARKER")" && touch "$REJOIN_MARKER"
  if node_joined control-plane; then
    log "$NODE_NAME has joined the running cluster already; finishing its join"
  else
    log "a cluster already answers at $API_ENDPOINT and $NODE_NAME has no admin.conf: this is a rebuilt first control plane; it joins that cluster as a control plane (never a second kubeadm init)"
    if join_leftovers; then
      log "found state of an earlier, unfinished attempt: kubeadm reset first"
      run_redacted kubeadm reset -f || die "kubeadm reset failed"
    fi
    install_shared_keys
    # Neither the config copy (token, certificate key) nor the rejoin's admin kubeconfig outlives the step.
    trap 'rm -rf "$CONFIG_NOW" "$(root_path "$REJOIN_DIR")"' EXIT
    kubeadm_config_now "$CONFIG" "$CONFIG_NOW"
    rm -rf "$(root_path "$REJOIN_DIR")"
    (umask 077 && mkdir -p "$(root_path "$REJOIN_DIR")")
    { run_redacted kubeadm init phase certs etcd-healthcheck-client --config "$CONFIG_NOW" &&
      run_redacted kubeadm init phase kubeconfig admin --config "$CONFIG_NOW" --kubeconfig-dir "$(root_path "$REJOIN_DIR")"; } ||
      rc=$?
    rm -f "$CONFIG_NOW"
    [ "$rc" -eq 0 ] || die "kubeadm could not make an etcd client certificate and an admin kubeconfig from the stack's keys"
    KUBECONFIG_PATH="$REJOIN_DIR/admin.conf"
    wait_until 24 "the API at $API_ENDPOINT" kctl get --raw /readyz || die "the API at $API_ENDPOINT does not answer $NODE_NAME's admin credentials (made from the stack's cluster CA)"
    etcd_trusts_stack_keys ||
      die "no other control plane's etcd ($OTHER_CONTROL_PLANE_IPS) answers a client of the etcd CA this stack holds: either the cluster was created before the stack held its control planes' shared keys (kubeadm made them on the lost machine; rebuild $NODE_NAME by hand: docs/operating.md, 'The first control plane'), or etcd has lost its quorum (restore it first: docs/operating.md, 'Restore etcd')"
    joining="$(this_instance_id)" || die "cannot read this machine's instance id from the metadata server ($INSTANCE_ID_URL)"
    remove_lost_member etcdctl_through_api "$NODE_NAME" "$NODE_IP" "$joining"
    issue_bootstrap_token "$(staged bootstrap-token)" "$TOKEN_TTL_HOURS" "$NODE_NAME"
    rm -rf "$(root_path "$REJOIN_DIR")"
  fi
  NODE_ROLE=control-plane bash "$(dirname "${BASH_SOURCE[0]}")/join.sh" ||
    die "the join of $NODE_NAME into the running cluster failed (output above); run pulumi up again"
  touch "$MARKER"
  rm -f "$REJOIN_MARKER"
  log "$NODE_NAME joined the running cluster as a control plane"
}

if [ -f "$REJOIN_MARKER" ]; then
  rejoin_cluster
  exit 0
fi

# Once this node's etcd holds the cluster (the member directory exists) next to admin.conf, it is
# the cluster: never reset it. If its API does not answer now (a restart, a blip), wait; if it
# still does not answer, stop and say so rather than start a second cluster.
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

# A cluster already answers: at the endpoint, or at another control plane's API (on a first
# deployment nothing does: their joins wait for this init). Two looks, HA_K8S_SLEEP apart: one lost
# answer must not start a second cluster.
cluster_answers() {
  local look ip
  for look in 1 2; do
    curl -ksf --max-time 5 "https://$API_ENDPOINT/version" >/dev/null 2>&1 && return 0
    for ip in $OTHER_CONTROL_PLANE_IPS; do
      curl -ksf --max-time 5 "https://$ip:6443/version" >/dev/null 2>&1 && return 0
    done
    [ "$look" -eq 2 ] || sleep "$HA_K8S_SLEEP"
  done
  return 1
}

if [ ! -f "$ADMIN_CONF" ] && cluster_answers; then
  rejoin_cluster
  exit 0
fi

# Only an attempt that never got its etcd going (no marker, no member data) is reset and run again.
if [ -e "$(root_path /etc/kubernetes/manifests/kube-apiserver.yaml)" ] || [ -n "$(ls -A "$(root_path /var/lib/etcd)" 2>/dev/null)" ]; then
  log "found state of an earlier, unfinished attempt: kubeadm reset first"
  run_redacted kubeadm reset -f || die "kubeadm reset failed"
fi

install_shared_keys

log "kubeadm init on $NODE_NAME (endpoint $API_ENDPOINT); output redacted"
run_redacted kubeadm init --config "$CONFIG" --upload-certs --skip-certificate-key-print ||
  die "kubeadm init failed (output above)"

wait_until 60 "the API to be ready through $API_ENDPOINT" api_ready || die "the API did not become ready after kubeadm init"
mkdir -p "$(dirname "$MARKER")" && touch "$MARKER"
record_instance_id admin
log "control plane initialised on $NODE_NAME"
