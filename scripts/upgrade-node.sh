#!/usr/bin/env bash
# Upgrades this node to another Kubernetes version, kubeadm's way (kubernetes.io, "Upgrading
# kubeadm clusters"): the package repositories switched to the new minor, kubeadm upgraded, then
#   - the first control plane: `kubeadm upgrade plan` checked, then `kubeadm upgrade apply`. The
#     plan checks the cluster (health: a Job runs, control planes Ready, static Pod manifests, CoreDNS
#     migratable) but no version rule: kubeadm's version policy (one minor at a time, not past kubeadm's
#     own minor) is checked by apply's preflight, before it changes anything (runPlan in
#     cmd/kubeadm/app/cmd/upgrade/plan.go, runPreflight in cmd/phases/upgrade/apply/preflight.go);
#   - the other control planes and the workers: `kubeadm upgrade node`;
# then, on a control plane, the node drains itself (PodDisruptionBudgets respected, bounded);
# CRI-O moved to the matching stream (its pause image too); kubelet and kubectl upgraded and the
# kubelet restarted; a control plane waits until its API server, its etcd member and its Node (at the
# new kubelet version) are back, and uncordons itself. A worker is drained and uncordoned by its
# control plane (upgrade-drain.sh, upgrade-uncordon.sh) around this script.
#
# Inputs (environment): NODE_NAME, NODE_ROLE (control-plane|worker), UPGRADE_ACTION (apply|node),
#   K8S_MINOR (1.37), K8S_VERSION (v1.37.2), K8S_DEB_VERSION (1.37.2-1.1), KUBERNETES_APT_REPO,
#   CRIO_APT_REPO, KUBECONFIG_PATH (a control plane's admin.conf; unused on workers),
#   DRAIN_TIMEOUT_SECONDS.
# Inputs (staged files): crio.conf (the CRI-O drop-in of the new minor: its pause image);
#   kubernetes-release.key and cri-o-release.key when kubernetesPackageKey and crioPackageKey are set
#   (the repositories' signing keys, used instead of downloading Release.key).
#
# Safe to run again, and resumable: every phase checks whether it is done (package versions, the
# cluster's kubeadm-config, the local static pod manifests, the Node's kubelet version, the running
# kubelet's binary and health) and a node already at the new version is left alone.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_NAME NODE_ROLE UPGRADE_ACTION K8S_MINOR K8S_VERSION K8S_DEB_VERSION KUBERNETES_APT_REPO \
  CRIO_APT_REPO DRAIN_TIMEOUT_SECONDS
CRIO_DROP_IN="$(staged crio.conf)"
MANIFESTS="$(root_path /etc/kubernetes/manifests)"
control_plane=false
[ "$NODE_ROLE" = control-plane ] && control_plane=true

manifests_at_target() { grep -q "image: .*/kube-apiserver:$K8S_VERSION\$" "$MANIFESTS/kube-apiserver.yaml" 2>/dev/null; }
cluster_at_target() {
  kctl -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' 2>/dev/null |
    grep -q "^kubernetesVersion: $K8S_VERSION\$"
}
crio_at_target() { [[ "$(installed_version cri-o)" == "$K8S_MINOR".* ]]; }
packages_at_target() {
  local pkg
  for pkg in kubeadm kubelet kubectl; do [ "$(installed_version "$pkg")" = "$K8S_DEB_VERSION" ] || return 1; done
  crio_at_target
}
node_at_target() { [ "$(node_kubelet_version "$NODE_NAME")" = "$K8S_VERSION" ]; }
local_api_ready() { curl -ksf --max-time 5 https://127.0.0.1:6443/readyz >/dev/null; }
kubelet_healthy() { curl -sf --max-time 5 http://127.0.0.1:10248/healthz >/dev/null; }
# The kubelet runs the installed binary: a run stopped between the package upgrade and the restart
# leaves the old one running, its executable replaced on disk (the kernel shows it as "(deleted)").
kubelet_runs_installed() {
  local pid exe
  pid="$(systemctl show -p MainPID --value kubelet 2>/dev/null || true)"
  [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
  exe="$(readlink "$(root_path "/proc/$pid/exe")" 2>/dev/null)" || return 1
  [[ "$exe" != *" (deleted)" ]]
}
uncordoned() { [ -z "$(kctl get node "$NODE_NAME" -o jsonpath='{.spec.unschedulable}' 2>/dev/null)" ]; }

if packages_at_target && cmp -s "$CRIO_DROP_IN" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" &&
  kubelet_runs_installed && wait_until 6 "the kubelet on $NODE_NAME to answer its health check" kubelet_healthy &&
  { [ "$control_plane" = false ] || { manifests_at_target && node_at_target && uncordoned; }; }; then
  log "$NODE_NAME already runs Kubernetes $K8S_VERSION; nothing to do"
  exit 0
fi
log "upgrading $NODE_NAME ($NODE_ROLE) from kubelet $(installed_version kubelet) to $K8S_VERSION"

# --- repositories of the new minor, then kubeadm ------------------------------------------------
apt_changed=false
if add_apt_repo kubernetes "$KUBERNETES_APT_REPO" "$(staged_if_present kubernetes-release.key)"; then
  apt_changed=true
fi
if add_apt_repo cri-o "$CRIO_APT_REPO" "$(staged_if_present cri-o-release.key)"; then apt_changed=true; fi
if [ "$apt_changed" = true ] || ! packages_at_target; then
  log "apt-get update for Kubernetes and CRI-O $K8S_MINOR"
  retry 3 apt_get update -q
fi
if [ "$(installed_version kubeadm)" != "$K8S_DEB_VERSION" ]; then
  log "upgrading kubeadm to $K8S_DEB_VERSION"
  install_held "kubeadm=$K8S_DEB_VERSION" || die "cannot install kubeadm $K8S_DEB_VERSION (see apt-get output above)"
fi

# --- kubeadm's part ---------------------------------------------------------------------------------
case "$UPGRADE_ACTION" in
  apply)
    if cluster_at_target && manifests_at_target; then
      log "the cluster's configuration and this node's control plane are already at $K8S_VERSION"
    else
      unchanged="the cluster is unchanged (only this node's package repositories and kubeadm are at $K8S_MINOR)"
      log "kubeadm upgrade plan $K8S_VERSION"
      if ! plan="$(kubeadm upgrade plan "$K8S_VERSION" 2>&1)"; then
        printf '%s\n' "$plan" | redact >&2
        die "kubeadm upgrade plan refuses $K8S_VERSION (its reasons above); $unchanged; fix them and run pulumi up again"
      fi
      printf '%s\n' "$plan" | redact >&2
      log "kubeadm upgrade apply $K8S_VERSION (etcd, API server, controller manager, scheduler, addons); output redacted"
      # Shown as it goes (redacted) and kept: kubeadm's workflow names the phase that failed.
      apply_log="$(mktemp)"
      rc=0
      kubeadm upgrade apply "$K8S_VERSION" --yes 2>&1 | redact | tee "$apply_log" >&2 || rc=${PIPESTATUS[0]}
      applied="$(cat "$apply_log")" && rm -f "$apply_log"
      if [ "$rc" -ne 0 ]; then
        grep -q '^error: error execution phase preflight' <<<"$applied" &&
          die "kubeadm upgrade apply refuses $K8S_VERSION in its preflight checks (its reasons above); $unchanged"
        die "kubeadm upgrade apply $K8S_VERSION failed (output above); fix the cause and run pulumi up again to resume"
      fi
    fi
    ;;
  node)
    if [ "$control_plane" = true ] && manifests_at_target; then
      log "this node's control plane is already at $K8S_VERSION"
    else
      log "kubeadm upgrade node; output redacted"
      run_redacted kubeadm upgrade node || die "kubeadm upgrade node failed (output above)"
    fi
    ;;
  *) die "UPGRADE_ACTION must be apply or node, not $UPGRADE_ACTION" ;;
esac

# --- the node's own packages, drained -----------------------------------------------------------------
[ "$control_plane" = false ] || drain_node "$NODE_NAME" "$DRAIN_TIMEOUT_SECONDS"

crio_changed=false
if ! crio_at_target; then
  log "moving CRI-O to the $K8S_MINOR stream"
  install_held cri-o || die "cannot install CRI-O $K8S_MINOR"
  crio_changed=true
fi
if install_file "$CRIO_DROP_IN" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" 644; then crio_changed=true; fi
if [ "$crio_changed" = true ]; then
  log "restarting crio (running containers stay up: conmon holds them)"
  systemctl restart crio
fi

if [ "$(installed_version kubelet)" != "$K8S_DEB_VERSION" ] || [ "$(installed_version kubectl)" != "$K8S_DEB_VERSION" ]; then
  log "upgrading kubelet and kubectl to $K8S_DEB_VERSION"
  install_held "kubelet=$K8S_DEB_VERSION" "kubectl=$K8S_DEB_VERSION" || die "cannot install kubelet/kubectl $K8S_DEB_VERSION"
fi
systemctl daemon-reload
systemctl restart kubelet
wait_until 60 "the kubelet on $NODE_NAME to be healthy" kubelet_healthy || die "the kubelet on $NODE_NAME did not come back"

if [ "$control_plane" = true ]; then
  wait_until 60 "the local API server to be ready" local_api_ready || die "the API server on $NODE_NAME is not ready after the upgrade"
  wait_until 60 "the local etcd member to be healthy" etcdctl_local endpoint health ||
    die "the etcd member on $NODE_NAME is not healthy after the upgrade"
  wait_until 60 "$NODE_NAME to report kubelet $K8S_VERSION" node_at_target ||
    die "$NODE_NAME does not report kubelet $K8S_VERSION"
  wait_until 60 "$NODE_NAME to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" ||
    die "$NODE_NAME is not Ready after the upgrade"
  kctl uncordon "$NODE_NAME" >&2 || die "cannot uncordon $NODE_NAME"
fi
log "$NODE_NAME runs Kubernetes $K8S_VERSION"
