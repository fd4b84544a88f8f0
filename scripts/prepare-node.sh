#!/usr/bin/env bash
# Prepares a control plane or worker for kubeadm: swap off for good, kernel modules and sysctls for
# pod networking, CRI-O and kubelet/kubeadm/kubectl of one Kubernetes minor from their official
# repositories, held at that version.
#
# Which version: a machine that has already joined keeps the version it runs (only the upgrade
# steps change it, upgrade-node.sh), so running this again never moves a node's Kubernetes. A new
# machine gets the version the cluster runs now, asked anonymously at the endpoint's /version
# (kubeadm grants that to everyone: the system:public-info-viewer role), or, while no cluster
# answers yet (its first deployment), K8S_DEFAULT_MINOR, the version the cluster was created with.
# So the inputs of this step never name the cluster's current version, and changing
# kubernetesVersion does not run it again on existing machines.
#
# Inputs (environment): NODE_ROLE (control-plane|worker), K8S_RELEASES (one supported release per
#   line: "<minor> <patch> <deb version> <Kubernetes repository> <CRI-O repository>"),
#   K8S_DEFAULT_MINOR (1.36), API_ENDPOINT (load balancer ip:port), REGISTRIES_DROP_IN (where the
#   registry mirror drop-in goes), IMAGE_REPOSITORY (optional: kubeadm's --image-repository for the
#   image pre-pull, imageRepository; unset or empty: kubeadm's default, registry.k8s.io).
# Inputs (staged files): crio-<minor>.conf per supported minor, the CRI-O drop-in (pause image,
#   systemd cgroups); registries-mirror.conf when registryMirror is set (absent: any earlier mirror
#   drop-in is removed); kubernetes-release.key and cri-o-release.key when kubernetesPackageKey and
#   crioPackageKey are set (the repositories' signing keys, used instead of downloading Release.key).
#
# Safe to run again: every file is written only when its content differs, apt-get update runs only
# when a repository changed or a package is missing, services restart only when their config changed.
#
# Corrections to the seed runbook: swap stays off through fstab (not a @reboot crontab); CRI-O comes
# from its current repository (download.opensuse.org isv:cri-o:stable, cri-o/packaging#288); one
# apt-get update instead of four; no hard-coded NIC (the node IP comes from the kubeadm config).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env NODE_ROLE K8S_RELEASES K8S_DEFAULT_MINOR API_ENDPOINT REGISTRIES_DROP_IN
KUBE_PACKAGES=(kubelet kubeadm kubectl)
CRI_SOCKET="unix:///var/run/crio/crio.sock"

wait_for_cloud_init

log "turning swap off (kubelet requires it) and keeping it off across reboots"
swapoff -a
fstab="$(root_path /etc/fstab)"
if [ -f "$fstab" ] && grep -Eq '^[^#].*[[:space:]]swap[[:space:]]' "$fstab"; then
  sed -E -i.ha-k8s.bak 's|^([^#].*[[:space:]]swap[[:space:]].*)$|# disabled by ha-k8s: \1|' "$fstab"
  log "commented out swap entries in /etc/fstab"
fi

log "loading overlay and br_netfilter now and at boot"
write_file "$(root_path /etc/modules-load.d/k8s.conf)" 644 <<'EOF' || true
overlay
br_netfilter
EOF
modprobe overlay
modprobe br_netfilter

log "setting bridge netfilter and IP forwarding sysctls"
if write_file "$(root_path /etc/sysctl.d/99-kubernetes.conf)" 644 <<'EOF'; then
net.bridge.bridge-nf-call-iptables  = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward                 = 1
EOF
  sysctl --system >/dev/null
fi

if ! command -v curl >/dev/null 2>&1 || ! command -v gpg >/dev/null 2>&1; then
  log "curl or gpg missing; installing them first (an extra apt-get update)"
  apt_get update -q
  apt_get install -y -q curl gpg ca-certificates
fi

# --- which Kubernetes ----------------------------------------------------------------------------
# The minor the cluster reports, or nothing when no cluster answers (yet). Asked three times, a
# little apart: a running cluster whose load balancer blinks (a reload, a restarted API server) must
# not make a new machine fall back to the creation minor. On a first deployment nothing listens
# yet, which fails fast (refused, or HAProxy without a server), so this costs seconds there.
cluster_minor() {
  local answer attempt
  for attempt in 1 2 3; do
    if answer="$(curl -ksf --connect-timeout 3 --max-time 5 "https://$API_ENDPOINT/version" 2>/dev/null)"; then
      minor_of "$(git_version <<<"$answer")"
      return 0
    fi
    [ "$attempt" -eq 3 ] || sleep "$((HA_K8S_SLEEP < 2 ? HA_K8S_SLEEP : 2))"
  done
}
crio_changed=false
if [ -f "$(root_path /etc/kubernetes/kubelet.conf)" ]; then
  joined=true
  log "this node has joined the cluster (kubelet $(installed_version kubelet)): its Kubernetes and CRI-O are left as they are; only the upgrade steps change them"
else
  joined=false
  minor="$(cluster_minor)"
  if [ -n "$minor" ]; then
    log "the cluster at $API_ENDPOINT runs Kubernetes $minor: this machine gets the same"
  else
    minor="$K8S_DEFAULT_MINOR"
    log "no cluster answers at $API_ENDPOINT yet (asked 3 times): this machine gets Kubernetes $minor, the version the cluster is created with"
  fi
  release="$(awk -v m="$minor" '$1 == m' <<<"$K8S_RELEASES")"
  [ -n "$release" ] ||
    die "Kubernetes $minor is not one this version of ha-k8s supports ($(cut -d' ' -f1 <<<"$K8S_RELEASES" | paste -sd' ' -)); upgrade the cluster first"
  read -r K8S_MINOR patch K8S_DEB_VERSION KUBERNETES_APT_REPO CRIO_APT_REPO <<<"$release"
  K8S_VERSION="v$patch"

  # --- package repositories: keys and sources, written only when they differ ---------------------
  apt_changed=false
  log "configuring repositories: Kubernetes $K8S_MINOR and CRI-O $K8S_MINOR"
  if add_apt_repo kubernetes "$KUBERNETES_APT_REPO" "$(staged_if_present kubernetes-release.key)"; then
    apt_changed=true
  fi
  if add_apt_repo cri-o "$CRIO_APT_REPO" "$(staged_if_present cri-o-release.key)"; then apt_changed=true; fi

  # --- packages -----------------------------------------------------------------------------------
  needs_install=false
  for pkg in "${KUBE_PACKAGES[@]}"; do
    [ "$(installed_version "$pkg")" = "$K8S_DEB_VERSION" ] || needs_install=true
  done
  # crictl comes from cri-tools, which pkgs.k8s.io's kubeadm no longer depends on (no Depends from
  # 1.32 on: kubernetes/release#4387), so it is installed by name: etcdctl_local and the checks use it.
  for pkg in cri-o cri-tools; do [ -n "$(installed_version "$pkg")" ] || needs_install=true; done

  if [ "$apt_changed" = true ] || [ "$needs_install" = true ]; then
    log "apt-get update (once)"
    retry 3 apt_get update -q
  fi
  if [ "$needs_install" = true ]; then
    log "installing cri-o, cri-tools and kubelet/kubeadm/kubectl $K8S_DEB_VERSION"
    install_held cri-o cri-tools "kubelet=$K8S_DEB_VERSION" "kubeadm=$K8S_DEB_VERSION" "kubectl=$K8S_DEB_VERSION" ||
      die "package installation failed (see apt-get output above)"
  else
    log "cri-o, cri-tools and kubelet/kubeadm/kubectl $K8S_DEB_VERSION already installed"
  fi

  # --- CRI-O configuration of that minor (pause image) ---------------------------------------------
  if install_file "$(staged "crio-$K8S_MINOR.conf")" "$(root_path /etc/crio/crio.conf.d/20-ha-k8s.conf)" 644; then
    crio_changed=true
  fi
fi

# docker.io through the configured mirror (containers-registries.conf.d), or straight again.
mirror_drop_in="$(root_path "$REGISTRIES_DROP_IN")"
if [ -f "$HA_K8S_STAGE/registries-mirror.conf" ]; then
  if install_file "$HA_K8S_STAGE/registries-mirror.conf" "$mirror_drop_in" 644; then
    log "docker.io images now come through the mirror in $REGISTRIES_DROP_IN"
    crio_changed=true
  fi
elif [ -e "$mirror_drop_in" ]; then
  rm -f "$mirror_drop_in"
  log "removed the registry mirror drop-in (registryMirror is no longer set)"
  crio_changed=true
fi
# Older CRI-O packages shipped an active bridge config that puts pods in 10.85.0.0/16, past Calico.
for conflist in "$(root_path /etc/cni/net.d)"/*bridge*.conflist; do
  [ -e "$conflist" ] || continue
  mv "$conflist" "$conflist.disabled"
  log "disabled $conflist"
  crio_changed=true
done
write_file "$(root_path /etc/crictl.yaml)" 644 <<EOF || true
runtime-endpoint: $CRI_SOCKET
image-endpoint: $CRI_SOCKET
timeout: 10
EOF

systemctl daemon-reload
systemctl enable crio >/dev/null 2>&1
if [ "$crio_changed" = true ] && systemctl is-active --quiet crio; then
  log "restarting crio for its new configuration"
  systemctl restart crio
else
  systemctl start crio
fi
systemctl enable kubelet >/dev/null 2>&1

if [ "$NODE_ROLE" = control-plane ] && [ "$joined" = false ]; then
  # From the cluster's image repository, as kubeadm init (its ClusterConfiguration) and join (the
  # cluster's kubeadm-config) will pull them.
  repository=()
  [ -z "${IMAGE_REPOSITORY:-}" ] || repository=(--image-repository "$IMAGE_REPOSITORY")
  log "pre-pulling control-plane images for $K8S_VERSION from ${IMAGE_REPOSITORY:-registry.k8s.io} (shortens init and join)"
  retry 3 kubeadm config images pull --kubernetes-version "$K8S_VERSION" --cri-socket "$CRI_SOCKET" "${repository[@]}" >&2 ||
    warn "image pre-pull failed; kubeadm will pull during init/join"
fi
log "node prepared: $(kubeadm version -o short 2>/dev/null || echo kubeadm), CRI-O $(installed_version cri-o)"
