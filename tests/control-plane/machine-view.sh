#!/usr/bin/env bash
# machine-view.sh <machine root> <node name> <command...>: runs a command as on that test machine
# (tests/control-plane), for programs that, like kubeadm, read fixed paths and the host name and
# have no root prefix (kubeadm's KubernetesDir and KubeletRunDirectory in
# cmd/kubeadm/app/constants/constants.go; the node name from /etc/kubernetes/kubelet.conf or, failing
# that, the host name: GetNodeName in cmd/kubeadm/app/util/config/cluster.go).
#
# The command runs in private mount and UTS namespaces where
#   - /etc/kubernetes and /var/lib/kubelet are the machine's (<root>/etc/kubernetes, <root>/var/lib/
#     kubelet), bind-mounted onto mount points made in throw-away overlays of /etc and /var/lib, so
#     the host's own directories (absent on a test host) are never created or changed;
#   - the host name is the node's name, as on a GCE VM.
# What the command writes there lands in the machine's directories; everything else it writes under
# /etc or /var/lib is discarded with the overlays. Mounts never propagate back to the host.
# Needs root or a user namespace mapped to root (tests/control-plane/run.sh provides either).
set -euo pipefail
if [ "${1:-}" = --inside ]; then
  root="$2" node="$3" scratch="$4"
  shift 4
  for parent in /etc /var/lib; do
    layer="$scratch/${parent//\//_}"
    mkdir -p "$layer/upper" "$layer/work"
    options="lowerdir=$parent,upperdir=$layer/upper,workdir=$layer/work"
    # userxattr: overlays in a user namespace (Linux >= 5.11) keep their metadata in user.* xattrs.
    mount -t overlay overlay -o "$options" "$parent" 2>/dev/null ||
      mount -t overlay overlay -o "$options,userxattr" "$parent"
  done
  for dir in /etc/kubernetes /var/lib/kubelet; do
    mkdir -p "$root$dir" "$dir"
    mount --bind "$root$dir" "$dir"
  done
  hostname "$node"
  exec "$@"
fi

root="${1:?usage: machine-view.sh <machine root> <node name> <command...>}"
node="${2:?usage: machine-view.sh <machine root> <node name> <command...>}"
shift 2
[ "$#" -gt 0 ] || { echo "machine-view.sh: no command" >&2; exit 2; }
mkdir -p "$root/run/ha-k8s-test"
scratch="$(mktemp -d "$root/run/ha-k8s-test/view.XXXXXX")"
rc=0
unshare --mount --uts --propagation private -- bash "${BASH_SOURCE[0]}" --inside "$root" "$node" "$scratch" "$@" || rc=$?
rm -rf "$scratch"
exit "$rc"
