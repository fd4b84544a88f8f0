#!/usr/bin/env bash
# Restores etcd from a snapshot on this control plane, one phase at a time; tools/restore-etcd.sh
# runs each phase on every control plane before the next phase: stop, restore, start, then verify
# on the first one. It follows etcd's disaster recovery (etcd.io/docs/v3.6/op-guide/recovery: every
# member restores the same snapshot with the same --initial-cluster and a new cluster token) and
# Kubernetes' (kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd, "Restoring an
# etcd cluster": stop every API server, restore every member, start the API servers again, restart
# kube-scheduler, kube-controller-manager and the kubelets).
#
# Usage: etcd-restore.sh stop|restore|start|verify
#   stop     holds the etcd and kube-apiserver static pods back (manifests moved aside) and the
#            scheduled snapshots, and waits until both containers are gone
#   restore  etcdutl snapshot restore into a new data directory, swapped in for /var/lib/etcd (the
#            old one is kept next to it); revisions are bumped and marked compacted so that clients
#            watching from before never see revisions go back (etcd-io/etcd#16028, etcdutl's
#            --bump-revision/--mark-compacted)
#   start    puts the manifests back, restarts the kubelet, kube-controller-manager and kube-scheduler
#   verify   waits for every etcd member to be healthy and the API to be ready, and points kubeadm's
#            cluster-info (what `kubeadm join` discovers) at this cluster's CA again
# Inputs (environment):
#   restore: SNAPSHOT (file on this machine), MEMBER_NAME (this node's name: kubeadm names etcd
#            members after nodes), MEMBER_PEER_URL (https://<its ip>:2380), INITIAL_CLUSTER
#            (name=https://ip:2380,... for every control plane), CLUSTER_TOKEN;
#            ETCDUTL defaults to the one in /etc/ha-k8s/etcd-backup.env (installed by the backup step)
#   verify:  EXPECTED_MEMBERS (how many control planes), KUBECONFIG_PATH
# Every phase is safe to run again.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MANIFESTS=/etc/kubernetes/manifests
HELD=/etc/kubernetes/manifests-held-for-restore
DATA_DIR=/var/lib/etcd
BACKUP_UNIT=ha-k8s-etcd-backup
DONE_MARKER=/var/lib/ha-k8s/etcd-restore.done

running() { [ -n "$(crictl ps --name "^($1)\$" -q 2>/dev/null)" ]; }

stop_phase() {
  systemctl stop "$BACKUP_UNIT.timer" 2>/dev/null || true
  mkdir -p "$(root_path "$HELD")"
  chmod 700 "$(root_path "$HELD")"
  for pod in kube-apiserver etcd; do
    if [ -f "$(root_path "$MANIFESTS/$pod.yaml")" ]; then
      mv "$(root_path "$MANIFESTS/$pod.yaml")" "$(root_path "$HELD/$pod.yaml")"
      log "held back $pod (manifest moved to $HELD)"
    elif [ -f "$(root_path "$HELD/$pod.yaml")" ]; then
      log "$pod is already held back"
    else
      die "no $pod manifest in $MANIFESTS or $HELD: is this a control plane built by kubeadm?"
    fi
  done
  stopped() { ! running 'etcd|kube-apiserver'; }
  wait_until 60 "etcd and kube-apiserver to stop" stopped ||
    die "etcd or kube-apiserver is still running 60 polls after their manifests were moved"
  log "etcd and kube-apiserver are stopped on this machine"
}

restore_phase() {
  require_env SNAPSHOT MEMBER_NAME MEMBER_PEER_URL INITIAL_CLUSTER CLUSTER_TOKEN
  if [ -z "${ETCDUTL:-}" ] && [ -f "$(root_path /etc/ha-k8s/etcd-backup.env)" ]; then
    ETCDUTL="$(sed -n 's/^ETCDUTL=//p' "$(root_path /etc/ha-k8s/etcd-backup.env)")"
  fi
  [ -n "${ETCDUTL:-}" ] || die "ETCDUTL is not set and /etc/ha-k8s/etcd-backup.env does not name it"
  local etcdutl_bin snapshot_file marker stamp target
  etcdutl_bin="$(root_path "$ETCDUTL")"
  snapshot_file="$(root_path "$SNAPSHOT")"
  [ -x "$etcdutl_bin" ] || die "etcdutl is missing at $ETCDUTL"
  [ -f "$snapshot_file" ] || die "no snapshot at $SNAPSHOT"
  if [ -f "$(root_path "$MANIFESTS/etcd.yaml")" ] || running etcd; then
    die "etcd still runs here: run the stop phase on every control plane first"
  fi
  marker="$(sha256sum <"$snapshot_file" | cut -d' ' -f1) $CLUSTER_TOKEN $MEMBER_NAME"
  if [ "$(cat "$(root_path "$DONE_MARKER")" 2>/dev/null)" = "$marker" ]; then
    log "this snapshot is already restored here (cluster token $CLUSTER_TOKEN)"
    return 0
  fi
  "$etcdutl_bin" snapshot status "$snapshot_file" -w table >&2 || die "$SNAPSHOT is not a valid etcd snapshot"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  target="$(root_path "$DATA_DIR.restore-$stamp")"
  log "etcdutl snapshot restore as member $MEMBER_NAME ($MEMBER_PEER_URL) of $INITIAL_CLUSTER"
  "$etcdutl_bin" snapshot restore "$snapshot_file" --name "$MEMBER_NAME" --initial-cluster "$INITIAL_CLUSTER" \
    --initial-cluster-token "$CLUSTER_TOKEN" --initial-advertise-peer-urls "$MEMBER_PEER_URL" \
    --data-dir "$target" --bump-revision 1000000000 --mark-compacted >&2 ||
    die "etcdutl snapshot restore failed; $DATA_DIR is unchanged"
  if [ -d "$(root_path "$DATA_DIR")" ]; then
    mv "$(root_path "$DATA_DIR")" "$(root_path "$DATA_DIR.before-restore-$stamp")"
    log "kept the previous etcd data in $DATA_DIR.before-restore-$stamp (delete it once the cluster is healthy)"
  fi
  mv "$target" "$(root_path "$DATA_DIR")"
  chmod 700 "$(root_path "$DATA_DIR")"
  mkdir -p "$(dirname "$(root_path "$DONE_MARKER")")"
  printf '%s' "$marker" >"$(root_path "$DONE_MARKER")"
  log "restored the snapshot into $DATA_DIR"
}

start_phase() {
  for pod in etcd kube-apiserver; do
    if [ -f "$(root_path "$HELD/$pod.yaml")" ]; then
      mv "$(root_path "$HELD/$pod.yaml")" "$(root_path "$MANIFESTS/$pod.yaml")"
      log "released $pod (manifest back in $MANIFESTS)"
    else
      log "$pod is not held back"
    fi
  done
  rmdir "$(root_path "$HELD")" 2>/dev/null || true
  # Components that cached the old state start over (Kubernetes' restore procedure).
  systemctl restart kubelet
  local id
  for id in $(crictl ps --name '^(kube-controller-manager|kube-scheduler)$' -q 2>/dev/null); do
    crictl stop "$id" >/dev/null || warn "could not stop container $id; the kubelet restarts it anyway"
  done
  systemctl start "$BACKUP_UNIT.timer" 2>/dev/null || true
  log "static pods released; kubelet, kube-controller-manager and kube-scheduler restarted"
}

verify_phase() {
  require_env EXPECTED_MEMBERS KUBECONFIG_PATH
  etcd_healthy() { etcdctl_local endpoint health --cluster; }
  members() { etcdctl_local member list | grep -c ', started, ' || true; }
  wait_until 120 "every etcd member to be healthy" etcd_healthy || die "etcd is not healthy after the restore"
  [ "$(members)" -eq "$EXPECTED_MEMBERS" ] ||
    die "etcd has $(members) started members, $EXPECTED_MEMBERS expected: run the restore on every control plane"
  wait_until 60 "the API server to be ready" kctl get --raw /readyz || die "the API server is not ready after the restore"

  # cluster-info (kube-public) carries the CA `kubeadm join` trusts; a snapshot of an earlier build
  # of this cluster names that build's CA. kubeadm's bootstrap-token phase writes it; put this
  # cluster's CA back in, keeping everything else (the bootstrap signer's signatures come back).
  local ca current patch
  ca="$(base64 -w0 <"$(root_path /etc/kubernetes/pki/ca.crt)")"
  current="$(kctl -n kube-public get configmap cluster-info -o jsonpath='{.data.kubeconfig}')" ||
    die "cannot read kube-public/cluster-info"
  if grep -q "certificate-authority-data: $ca\$" <<<"$current"; then
    log "cluster-info already names this cluster's CA"
  else
    patch="$(mktemp)"
    {
      printf 'data:\n  kubeconfig: |\n'
      sed -E "s|^( *certificate-authority-data:).*|\\1 $ca|; s/^/    /" <<<"$current"
    } >"$patch"
    kctl -n kube-public patch configmap cluster-info --type merge --patch-file "$patch" >&2
    rm -f "$patch"
    log "cluster-info now names this cluster's CA"
  fi
  log "etcd restored: $EXPECTED_MEMBERS healthy members, API ready"
}

case "${1:-}" in
  stop) stop_phase ;;
  restore) restore_phase ;;
  start) start_phase ;;
  verify) verify_phase ;;
  *) die "usage: etcd-restore.sh stop|restore|start|verify" ;;
esac
