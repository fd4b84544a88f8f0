#!/usr/bin/env bash
# npm run test:cluster: the real-cluster tier. The test stack's plan becomes machines on this host
# (Linux namespaces with real sshd, kubelets, a container runtime and kubeadm; tests/cluster/lab/),
# and the plan's bundles run on them over real SSH through the jump host, as `pulumi up` runs them.
#
#  1. Builds (first time) or finds (cached) the lab's artifacts for the default minor's pinned patch
#     (tests/cluster/lab/artifacts.sh): kubelet, kubeadm, kubectl and the control-plane images built
#     from their Go modules, containerd, crictl, CoreDNS, the CNI plugins; signed apt repositories.
#  2. Runs jest on tests/cluster, bounded; removes what an interrupted earlier run left, and checks
#     afterwards that nothing of the tier is left (namespaces, processes, mounts, cgroups, interfaces).
# Needs Linux and root. Missing tools: a failure in CI (CI=true), a loud skip elsewhere.
# --upgrade runs the upgrade suite (tests/cluster/upgrade.test.ts) instead of the deploy, fault and
# day-2 suite (tests/cluster/cluster.test.ts); further arguments go to jest; HA_K8S_LAB_KEEP=1 leaves
# the lab running afterwards (npm run lab -- down removes it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf 'test:cluster: %s\n' "$*" >&2; }
unavailable() {
  log "$*"
  if [ -n "${CI:-}" ]; then exit 1; fi
  log "SKIPPING the real-cluster tier outside CI"
  exit 0
}
[ "$(uname -s)" = Linux ] || unavailable "the real-cluster tier needs Linux (namespaces, cgroups)"
[ "$(id -u)" -eq 0 ] || unavailable "the real-cluster tier needs root (it makes namespaces, cgroups and mounts): run it as root"
missing=()
for tool in ip unshare nsenter ssh sshd sudo iptables dpkg-deb apt-ftparchive gpg openssl runc gcc jq conntrack depmod; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] ||
  unavailable "missing tools: ${missing[*]} (Debian packages iproute2, util-linux, openssh-client, openssh-server, sudo, iptables, dpkg, apt-utils, gnupg, openssl, runc, gcc, jq, conntrack, kmod; tools/setup.sh installs them)"

# --upgrade: the upgrade suite, which needs the next minor's binaries, images and packages too.
suite=tests/cluster/cluster.test.ts
upgrade=false
if [ "${1:-}" = --upgrade ]; then
  upgrade=true
  suite=tests/cluster/upgrade.test.ts
  shift
fi
# The default minor's pinned patch, and the next minor's (the upgrade's target).
read -r patch next < <(node -e '
require("ts-node").register({ transpileOnly: true });
const { SUPPORTED_KUBERNETES, DEFAULT_KUBERNETES_MINOR } = require("./render/versions");
const minors = Object.keys(SUPPORTED_KUBERNETES);
const next = SUPPORTED_KUBERNETES[minors[minors.indexOf(DEFAULT_KUBERNETES_MINOR) + 1]];
console.log(SUPPORTED_KUBERNETES[DEFAULT_KUBERNETES_MINOR].patch, next ? next.patch : "");')
versions=("$patch")
if [ "$upgrade" = true ]; then
  [ -n "$next" ] || unavailable "no supported minor after the default one: nothing to upgrade to"
  versions+=("$next")
fi
started=$SECONDS
if ! HA_K8S_LAB_ARTIFACTS="$(bash tests/cluster/lab/artifacts.sh "${versions[@]}")"; then
  command -v go >/dev/null || [ -x /usr/local/go/bin/go ] ||
    unavailable "Go is needed to build the lab's binaries (https://go.dev/dl/; /usr/local/go/bin on CI machines)"
  log "FAILED: could not build the lab's artifacts for Kubernetes ${versions[*]}; see above"
  exit 1
fi
export HA_K8S_LAB_ARTIFACTS
log "artifacts for Kubernetes ${versions[*]} ready in $HA_K8S_LAB_ARTIFACTS ($((SECONDS - started)) s)"

cleanup() {
  # shellcheck disable=SC2016 # JavaScript, not shell
  node -e '
require("ts-node").register({ transpileOnly: true });
const { removeAbandonedLabs } = require("./tests/cluster/lab/lab");
removeAbandonedLabs((line) => console.error(`test:cluster: ${line}`)).catch((e) => { console.error(e); process.exit(1); });'
}
cleanup
trap cleanup EXIT
# Bounded: a hung test must not keep the machines alive (the tier takes a few minutes warm).
timeout --kill-after=30 3000 node node_modules/jest/bin/jest.js --runInBand "$suite" "$@"
