#!/usr/bin/env bash
# Upgrades this node to another Kubernetes version, kubeadm's way (kubernetes.io, "Upgrading
# kubeadm clusters"): the package repositories switched to the new minor, kubeadm upgraded, then
#   - the first control plane: `kubeadm upgrade plan` checked, then `kubeadm upgrade apply`. The
#     plan checks the cluster (health: a Job runs, control planes Ready, static Pod manifests, CoreDNS
#     migratable) but no version rule: kubeadm's version policy (one minor at a time, not past kubeadm's
#     own minor) is checked by apply's preflight, before it changes anything (runPlan in
#     cmd/kubeadm/app/cmd/upgrade/plan.go, runPreflight in cmd/phases/upgrade/apply/preflight.go);
#   - the other control planes and the workers: `kubeadm upgrade node`. The last control plane's
#     run is the one that upgrades CoreDNS and kube-proxy: kubeadm's addon phase (in apply and node
#     alike) skips them while any kube-apiserver mirror Pod runs another image than this node's
#     (shouldUpgradeAddons in cmd/kubeadm/app/cmd/phases/upgrade/addons.go,
#     UnupgradedControlPlaneInstances in cmd/kubeadm/app/phases/upgrade/postupgrade.go);
# then, on a control plane, the node drains itself (PodDisruptionBudgets respected, bounded);
# CRI-O moved to the matching stream (its pause image too); kubelet and kubectl upgraded and the
# kubelet restarted; a control plane waits until its API server, its etcd member and its Node (at the
# new kubelet version) are back, and uncordons itself. A worker is drained and uncordoned by its
# control plane (upgrade-drain.sh, upgrade-uncordon.sh) around this script.
#
# A new CRI-O minor is a restart of every container on the node: CRI-O's start removes every pod
# sandbox, and the images of their containers, when the version file it wrote last (version_file_persist,
# /var/lib/crio/version) has another major.minor than the binary (wipeIfAppropriate in
# cri-o/cri-o server/server.go, called from server.New; shouldCrioWipe in internal/version/version.go;
# InternalWipe defaults to true in pkg/config/config.go; the new version file is written only after
# server.New returns, in cmd/crio/main.go). So then the kubelet is stopped first, CRI-O upgraded and
# restarted, the kubelet upgraded and started, and the step waits until the node's static pods are
# back (on a control plane its API server answering locally and its etcd member healthy) before the
# next machine goes. A restart within the same minor (a new drop-in) keeps the containers: CRI-O
# restores them (restore in server/server.go; conmon kept them running) and wipes nothing.
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
# running kubelet's and CRI-O's binaries and health, the Node's kubelet version) and a node already at
# the new version is left alone. kubeadm's own step counts as done only once it recorded its success
# on this machine (/var/lib/ha-k8s/upgrade/kubeadm-upgrade-<apply|node>-<version>.done, written after
# kubeadm returned 0): a run that failed after kubeadm wrote the static Pod manifests (in its
# kubelet-config, addon or post-upgrade phase) runs kubeadm again, which kubeadm supports
# ("Recovering from a failure state" in "Upgrading kubeadm clusters": kubeadm upgrade is idempotent).
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
# A service runs its installed binary: a run stopped between a package upgrade and the service's
# restart leaves the old one running, its executable replaced on disk (the kernel shows it as
# "(deleted)"). For the kubelet that means a restart; for CRI-O, the restart of a new minor.
runs_installed() {
  local pid exe
  pid="$(systemctl show -p MainPID --value "$1" 2>/dev/null || true)"
  [ -n "$pid" ] && [ "$pid" != 0 ] || return 1
  exe="$(readlink "$(root_path "/proc/$pid/exe")" 2>/dev/null)" || return 1
  [[ "$exe" != *" (deleted)" ]]
}
uncordoned() { [ -z "$(kctl get node "$NODE_NAME" -o jsonpath='{.spec.unschedulable}' 2>/dev/null)" ]; }
# kubeadm's step on this machine succeeded for this version (written only after kubeadm returned 0).
KUBEADM_DONE="$(root_path "/var/lib/ha-k8s/upgrade/kubeadm-upgrade-$UPGRADE_ACTION-$K8S_VERSION.done")"
kubeadm_done() { [ -f "$KUBEADM_DONE" ]; }
record_kubeadm_done() {
  mkdir -p "$(dirname "$KUBEADM_DONE")"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$KUBEADM_DONE"
}

if kubeadm_done && packages_at_target && cmp -s "$CRIO_DROP_IN" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" &&
  runs_installed crio && runs_installed kubelet && wait_until 6 "the kubelet on $NODE_NAME to answer its health check" kubelet_healthy &&
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
# Skipped only when it recorded its own success here: the manifests at the target prove only that
# kubeadm got past its control-plane phase, not its kubelet-config, addon and post-upgrade phases.
case "$UPGRADE_ACTION" in
  apply)
    if kubeadm_done; then
      log "kubeadm upgrade apply $K8S_VERSION already succeeded on $NODE_NAME ($(cat "$KUBEADM_DONE"))"
    else
      unchanged="the cluster is unchanged (only this node's package repositories and kubeadm are at $K8S_MINOR)"
      if cluster_at_target || manifests_at_target; then
        # A previous run changed the cluster, then failed or was stopped before kubeadm returned:
        # kubeadm finishes its phases when run again. Its plan would only repeat apply's own checks.
        unchanged="an earlier run already moved part of the cluster to $K8S_VERSION"
        log "resuming kubeadm upgrade apply $K8S_VERSION: an earlier run changed the cluster (its configuration or this node's manifests are at $K8S_VERSION) but never finished; running it again (kubeadm's upgrade is idempotent)"
      else
        log "kubeadm upgrade plan $K8S_VERSION"
        if ! plan="$(kubeadm upgrade plan "$K8S_VERSION" 2>&1)"; then
          printf '%s\n' "$plan" | redact >&2
          die "kubeadm upgrade plan refuses $K8S_VERSION (its reasons above); $unchanged; fix them and run pulumi up again"
        fi
        printf '%s\n' "$plan" | redact >&2
      fi
      log "kubeadm upgrade apply $K8S_VERSION (etcd, API server, controller manager, scheduler; the addons once every control plane runs $K8S_VERSION); output redacted"
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
      record_kubeadm_done
    fi
    ;;
  node)
    if kubeadm_done; then
      log "kubeadm upgrade node to $K8S_VERSION already succeeded on $NODE_NAME ($(cat "$KUBEADM_DONE"))"
    else
      if [ "$control_plane" = true ] && manifests_at_target; then
        log "resuming kubeadm upgrade node: this node's manifests are at $K8S_VERSION but the run that wrote them never finished; running it again (kubeadm's upgrade is idempotent)"
      fi
      log "kubeadm upgrade node; output redacted"
      run_redacted kubeadm upgrade node || die "kubeadm upgrade node failed (output above); fix the cause and run pulumi up again to resume"
      record_kubeadm_done
    fi
    ;;
  *) die "UPGRADE_ACTION must be apply or node, not $UPGRADE_ACTION" ;;
esac

# --- the node's own packages, drained -----------------------------------------------------------------
[ "$control_plane" = false ] || drain_node "$NODE_NAME" "$DRAIN_TIMEOUT_SECONDS"

# A new CRI-O minor (or a CRI-O that does not run its installed binary, e.g. a run stopped between
# its package and its restart) restarts every container here (see the top): the kubelet is stopped
# first so that nothing starts pods against the CRI-O on its way out, and started again on the new one.
restart_workloads=false
if ! crio_at_target || ! runs_installed crio; then restart_workloads=true; fi
if [ "$restart_workloads" = true ]; then
  if crio_at_target; then
    log "crio does not run its installed binary (CRI-O $(installed_version cri-o)): restarting it as for a new minor, the kubelet stopped meanwhile"
  else
    log "CRI-O moves from $(installed_version cri-o) to the $K8S_MINOR stream: its start removes every pod of $NODE_NAME (a new minor); stopping the kubelet, then CRI-O, then the kubelet back"
  fi
  systemctl stop kubelet
  if ! crio_at_target; then
    install_held cri-o || die "cannot install CRI-O $K8S_MINOR (the kubelet on $NODE_NAME is stopped; run pulumi up again)"
  fi
  install_file "$CRIO_DROP_IN" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" 644 || true
  log "restarting crio (a new minor: it removes the node's pods and their images; the kubelet starts them again)"
  systemctl restart crio
elif install_file "$CRIO_DROP_IN" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" 644; then
  # Same minor: shouldCrioWipe compares major.minor only, so CRI-O restores the running containers.
  log "restarting crio for its new configuration (same minor: running containers stay up, CRI-O restores them)"
  systemctl restart crio
fi

if [ "$(installed_version kubelet)" != "$K8S_DEB_VERSION" ] || [ "$(installed_version kubectl)" != "$K8S_DEB_VERSION" ]; then
  log "upgrading kubelet and kubectl to $K8S_DEB_VERSION"
  install_held "kubelet=$K8S_DEB_VERSION" "kubectl=$K8S_DEB_VERSION" || die "cannot install kubelet/kubectl $K8S_DEB_VERSION"
fi
systemctl daemon-reload
# Starts it when it was stopped above.
systemctl restart kubelet
# After CRI-O's wipe the kubelet pulls the static pods' images again: longer bounds.
polls=60
[ "$restart_workloads" = false ] || polls=120
wait_until "$polls" "the kubelet on $NODE_NAME to be healthy" kubelet_healthy || die "the kubelet on $NODE_NAME did not come back"

if [ "$control_plane" = true ]; then
  # The static pods back: the next control plane goes only once this one serves again.
  wait_until "$polls" "the local API server to be ready" local_api_ready || die "the API server on $NODE_NAME is not ready after the upgrade"
  wait_until "$polls" "the local etcd member to be healthy" etcdctl_local endpoint health ||
    die "the etcd member on $NODE_NAME is not healthy after the upgrade"
  wait_until 60 "$NODE_NAME to report kubelet $K8S_VERSION" node_at_target ||
    die "$NODE_NAME does not report kubelet $K8S_VERSION"
  wait_until 60 "$NODE_NAME to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$NODE_NAME" ||
    die "$NODE_NAME is not Ready after the upgrade"
  kctl uncordon "$NODE_NAME" >&2 || die "cannot uncordon $NODE_NAME"
fi
log "$NODE_NAME runs Kubernetes $K8S_VERSION"
