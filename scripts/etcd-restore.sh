#!/usr/bin/env bash
# Restores etcd from a snapshot on this control plane, one phase at a time; tools/restore-etcd.sh
# runs each phase on every control plane it restores onto before the next phase: check, stop,
# restore, start, then verify on the first one. It follows etcd's disaster recovery (etcd.io/docs/v3.6/op-guide/recovery: every
# member restores the same snapshot with the same --initial-cluster and a new cluster token) and
# Kubernetes' (kubernetes.io/docs/tasks/administer-cluster/configure-upgrade-etcd, "Restoring an
# etcd cluster": stop every API server, restore every member, start the API servers again, restart
# kube-scheduler, kube-controller-manager and the kubelets).
#
# Usage: etcd-restore.sh check|stop|restore|start|verify
#   check    changes nothing: this machine can be restored onto. It finished its kubeadm join (the
#            kubelet's kubeconfig, the etcd and kube-apiserver manifests, in place or held back by an
#            earlier run; the etcd manifest names this member and its peer address; etcd's
#            certificates; etcd's data directory), etcdutl is installed and runs, and, with SNAPSHOT,
#            the snapshot is there, etcdutl reads it, and the disk holds a restored copy of it.
#            tools/restore-etcd.sh runs it on every target before it stops anything anywhere.
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
#   check:   MEMBER_NAME, MEMBER_PEER_URL; SNAPSHOT (optional); KUBECONFIG_PATH (optional: the
#            machine that will run verify, whose admin kubeconfig must exist)
#   restore: SNAPSHOT (file on this machine), MEMBER_NAME (this node's name: kubeadm names etcd
#            members after nodes), MEMBER_PEER_URL (https://<its ip>:2380), INITIAL_CLUSTER
#            (name=https://ip:2380,... for every control plane restored onto), CLUSTER_TOKEN;
#            ETCDUTL defaults to the one in /etc/ha-k8s/etcd-backup.env (installed by the backup step)
#   verify:  EXPECTED_MEMBERS (how many control planes were restored onto), KUBECONFIG_PATH
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

# ETCDUTL, or the one the backup step installed (its environment file names it).
etcdutl_path() {
  if [ -z "${ETCDUTL:-}" ] && [ -f "$(root_path /etc/ha-k8s/etcd-backup.env)" ]; then
    ETCDUTL="$(sed -n 's/^ETCDUTL=//p' "$(root_path /etc/ha-k8s/etcd-backup.env)")"
  fi
  printf '%s' "${ETCDUTL:-}"
}

# A manifest where kubeadm wrote it, or where an earlier stop phase moved it.
manifest() {
  if [ -f "$(root_path "$MANIFESTS/$1.yaml")" ]; then
    root_path "$MANIFESTS/$1.yaml"
  elif [ -f "$(root_path "$HELD/$1.yaml")" ]; then
    root_path "$HELD/$1.yaml"
  else
    return 1
  fi
}

check_phase() {
  require_env MEMBER_NAME MEMBER_PEER_URL
  local problems=() etcd_manifest etcdutl_bin snapshot_file bytes free file
  # kubeadm join, control plane: the kubeconfigs and the API server's manifest first
  # (control-plane-prepare), then the kubelet (kubelet-start, kubelet.conf), then the etcd member
  # and its manifest (control-plane-join). A machine missing any of them never finished its join.
  [ -f "$(root_path /etc/kubernetes/kubelet.conf)" ] ||
    problems+=("no /etc/kubernetes/kubelet.conf: this machine never finished its kubeadm join")
  manifest kube-apiserver >/dev/null ||
    problems+=("no kube-apiserver manifest in $MANIFESTS (or $HELD): this machine never finished its kubeadm join as a control plane")
  if etcd_manifest="$(manifest etcd)"; then
    grep -qE -- "--name=$MEMBER_NAME\$" "$etcd_manifest" ||
      problems+=("the etcd manifest does not name member $MEMBER_NAME (kubeadm names it after the node): not the machine the stack says")
    grep -qE -- "--initial-advertise-peer-urls=$MEMBER_PEER_URL\$" "$etcd_manifest" ||
      problems+=("the etcd manifest does not advertise $MEMBER_PEER_URL: not the machine the stack says")
  else
    problems+=("no etcd manifest in $MANIFESTS (or $HELD): this machine never finished its kubeadm join as a control plane")
  fi
  for file in /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/peer.crt \
    /etc/kubernetes/pki/etcd/server.crt; do
    [ -f "$(root_path "$file")" ] || problems+=("no $file: etcd cannot start here")
  done
  [ -d "$(root_path "$DATA_DIR/member")" ] ||
    problems+=("no $DATA_DIR/member: etcd never ran here (an unfinished join)")
  command -v crictl >/dev/null 2>&1 || problems+=("no crictl: cannot see the static pods")
  if [ -n "${KUBECONFIG_PATH:-}" ] && [ ! -f "$(root_path "$KUBECONFIG_PATH")" ]; then
    problems+=("no $KUBECONFIG_PATH: the verification runs here and needs it")
  fi
  etcdutl_bin="$(root_path "$(etcdutl_path)")"
  if [ -z "$(etcdutl_path)" ]; then
    problems+=("ETCDUTL is not set and /etc/ha-k8s/etcd-backup.env does not name it (the backup step installs etcdutl)")
  elif [ ! -x "$etcdutl_bin" ] || ! "$etcdutl_bin" version >/dev/null 2>&1; then
    problems+=("etcdutl does not run at $(etcdutl_path) (the backup step installs it)")
  elif [ -n "${SNAPSHOT:-}" ]; then
    snapshot_file="$(root_path "$SNAPSHOT")"
    if [ ! -f "$snapshot_file" ]; then
      problems+=("no snapshot at $SNAPSHOT")
    elif ! "$etcdutl_bin" snapshot status "$snapshot_file" -w table >/dev/null 2>&1; then
      problems+=("etcdutl cannot read the snapshot at $SNAPSHOT")
    else
      # The restore writes a new data directory next to the old one, about the snapshot's size.
      bytes="$(stat -c %s "$snapshot_file")"
      free="$(df -P -B1 "$(dirname "$(root_path "$DATA_DIR")")" | awk 'NR == 2 { print $4 }')"
      [ "$free" -ge $((bytes * 2)) ] ||
        problems+=("$free bytes free next to $DATA_DIR; the restore needs twice the snapshot's $bytes")
    fi
  fi
  if [ "${#problems[@]}" -gt 0 ]; then
    local p
    for p in "${problems[@]}"; do log "NOT READY: $p"; done
    die "$MEMBER_NAME cannot be restored onto (${#problems[@]} problem(s) above); nothing was changed"
  fi
  log "$MEMBER_NAME can be restored onto: join finished, member $MEMBER_NAME at $MEMBER_PEER_URL, etcdutl runs${SNAPSHOT:+, the snapshot reads}"
}

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
  ETCDUTL="$(etcdutl_path)"
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
    die "etcd has $(members) started members, $EXPECTED_MEMBERS expected: run the restore on every control plane it restores onto"
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
  check) check_phase ;;
  stop) stop_phase ;;
  restore) restore_phase ;;
  start) start_phase ;;
  verify) verify_phase ;;
  *) die "usage: etcd-restore.sh check|stop|restore|start|verify" ;;
esac
