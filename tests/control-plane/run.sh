#!/usr/bin/env bash
# npm run test:control-plane: the machine scripts against a real control plane (kube-apiserver,
# kube-controller-manager, three etcd members, HAProxy) and real kubeadm, on loopback.
#
#  1. Builds (first time) or finds (cached) the binaries of the Kubernetes patch render/versions.ts
#     pins for the default minor and of the etcd release kubeadm deploys for it (tools/kubernetes.sh,
#     tools/etcd.sh). A missing Go or a failed build fails here, in one line.
#  2. Runs jest inside new network and PID namespaces: the plan's addresses (10.10.0.x for dev) are
#     put on that namespace's loopback interface, so the rendered files work unchanged, nothing is
#     reachable from outside, and two runs can never collide on an address or a port. When the test
#     process exits, however it exits, the kernel ends every process left in the PID namespace.
#     Needs root, unprivileged user namespaces, or passwordless sudo.
# Real tools missing (haproxy, openssl, ip, unshare): a failure in CI (CI=true), a loud skip elsewhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
log() { printf 'test:control-plane: %s\n' "$*" >&2; }
unavailable() {
  log "$*"
  if [ -n "${CI:-}" ]; then exit 1; fi
  log "SKIPPING the control-plane tests outside CI"
  exit 0
}
# Extra arguments go to jest (e.g. -t 'verify'). Bounded: a hung test must not keep the suite, and
# so the namespace, alive (the tests take about 3 minutes here).
JEST=(timeout --kill-after=30 1200 node node_modules/jest/bin/jest.js --runInBand tests/control-plane)

if [ "${1:-}" = --inside ]; then
  # Inside the namespaces (PID 1): the subnet's addresses on loopback, then the tests as a child,
  # so that this shell stays PID 1 and its exit ends everything the tests left behind.
  subnet="$2" run_as="$3"
  shift 3
  # The whole subnet local (bindable, like 127.0.0.0/8), with 127.0.0.1 as the source of
  # connections between "machines": every etcd peer certificate kubeadm makes lists 127.0.0.1, and
  # etcd checks a peer's certificate against the address it connects from (checkSAN in
  # go.etcd.io/etcd/client/pkg/v3/transport/listener_tls.go).
  ip link set lo up
  ip route add local "$subnet" dev lo table local src 127.0.0.1
  rc=0
  if [ "$run_as" = self ]; then
    "${JEST[@]}" "$@" || rc=$?
  else
    # Namespace made through sudo: the tests run as the invoking user again.
    setpriv --reuid="${run_as%:*}" --regid="${run_as#*:}" --init-groups -- "${JEST[@]}" "$@" || rc=$?
  fi
  exit "$rc"
fi

missing=()
for tool in haproxy openssl ip unshare setpriv; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] ||
  unavailable "missing tools: ${missing[*]} (Debian packages haproxy, openssl, iproute2, util-linux; tools/setup.sh installs them)"

# The test stack's Kubernetes patch and subnet, and the patches of the other supported minors (the
# upgrade tests run their kubeadm against this cluster), from the same code the tests use.
read -r patch subnet other_patches < <(node -e '
require("ts-node").register({ transpileOnly: true });
const { testStackConfig } = require("./tests/control-plane/stack");
const { SUPPORTED_KUBERNETES, kubernetesRelease } = require("./render/versions");
const config = testStackConfig();
const patch = kubernetesRelease(config.kubernetesVersion).patch;
const others = Object.values(SUPPORTED_KUBERNETES).map((r) => r.patch).filter((p) => p !== patch);
console.log(patch, config.subnetCidr, others.join(","));')

have_go() { command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; }
started=$SECONDS
if ! bash tools/kubernetes.sh "$patch" kube-apiserver kube-controller-manager kubeadm kubectl >/dev/null; then
  have_go || unavailable "Go is needed to build Kubernetes $patch for these tests (https://go.dev/dl/; /usr/local/go/bin on CI machines)"
  log "FAILED: could not build Kubernetes $patch (kube-apiserver, kube-controller-manager, kubeadm, kubectl); see above"
  exit 1
fi
if ! bash tools/etcd.sh --for-kubernetes "$patch" >/dev/null; then
  have_go || unavailable "Go is needed to build etcd for these tests (https://go.dev/dl/; /usr/local/go/bin on CI machines)"
  log "FAILED: could not build the etcd release kubeadm $patch deploys; see above"
  exit 1
fi
# kubeadm of the other minors: built by the artifact suite (npm test runs it first), so cached.
for other in ${other_patches//,/ }; do
  if ! bash tools/kubeadm.sh "$other" >/dev/null; then
    have_go || unavailable "Go is needed to build kubeadm $other for these tests (https://go.dev/dl/; /usr/local/go/bin on CI machines)"
    log "FAILED: could not build kubeadm $other; see above"
    exit 1
  fi
done
log "binaries of Kubernetes $patch and its etcd, kubeadm ${other_patches//,/, } ready ($((SECONDS - started)) s)"

namespaces=(--net --pid --fork --kill-child)
if [ "$(id -u)" -eq 0 ]; then
  exec unshare "${namespaces[@]}" -- bash "$0" --inside "$subnet" self "$@"
elif unshare --user --map-root-user --net -- ip link set lo up 2>/dev/null; then
  exec unshare --user --map-root-user "${namespaces[@]}" -- bash "$0" --inside "$subnet" self "$@"
elif sudo -n true 2>/dev/null; then
  exec sudo -n env PATH="$PATH" HOME="$HOME" CI="${CI:-}" TMPDIR="${TMPDIR:-/tmp}" \
    HA_K8S_CACHE="${HA_K8S_CACHE:-}" XDG_CACHE_HOME="${XDG_CACHE_HOME:-}" \
    HA_K8S_KEEP_CONTROL_PLANE="${HA_K8S_KEEP_CONTROL_PLANE:-}" \
    unshare "${namespaces[@]}" -- bash "$0" --inside "$subnet" "$(id -u):$(id -g)" "$@"
fi
unavailable "a private network namespace needs root, unprivileged user namespaces or passwordless sudo; none is available"
