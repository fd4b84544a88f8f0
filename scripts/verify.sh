#!/usr/bin/env bash
# Last step of every deployment: fails `pulumi up` with a clear message unless every expected node
# is Ready, every control plane has a started, healthy etcd member, the API answers through the
# load balancer, and every kubelet runs the cluster's minor (a machine that joined with another
# version is named). After an upgrade (K8S_VERSION set) it also requires every kubelet and every
# control plane's API server, and the API through the load balancer, at exactly that version, and
# (COREDNS_VERSION, KUBE_PROXY_VERSION set) kubeadm's addons rolled out at the versions kubeadm
# deploys for it: the kube-proxy DaemonSet's image tag is the Kubernetes version, CoreDNS's the one
# kubeadm pins per minor (constants.CoreDNSVersion; the render passes both, render/versions.ts).
# kubeadm upgrades the addons in the last control plane's `kubeadm upgrade node` (shouldUpgradeAddons
# in cmd/kubeadm/app/cmd/phases/upgrade/addons.go), so a run that failed there shows up here.
# Then it revokes the join credentials (our bootstrap tokens and the uploaded control-plane
# certificates): they exist only while nodes join; the next join issues them again.
#
# Inputs (environment): EXPECTED_NODES (space-separated names), EXPECTED_ETCD_PEERS (control-plane
#   IPs, space-separated), API_ENDPOINT, KUBECONFIG_PATH; after an upgrade K8S_VERSION (v1.37.2),
#   COREDNS_VERSION (v1.14.6) and KUBE_PROXY_VERSION (v1.37.2).
#
# Safe to run again: it only reads.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_env EXPECTED_NODES EXPECTED_ETCD_PEERS API_ENDPOINT KUBECONFIG_PATH
problems=()

# shellcheck disable=SC2086 # word splitting of the space-separated lists is intended
set -- $EXPECTED_NODES
for node in "$@"; do
  wait_until 60 "$node to be Ready" kctl wait --for=condition=Ready --timeout=5s "node/$node" ||
    problems+=("node $node is not Ready")
done

members="$(etcdctl_local member list 2>/dev/null || true)"
# Health of the expected members only: on a scale-down, Pulumi runs this verification before the
# removed control planes' delete actions (it deletes removed resources at the end of an update), so
# a member that is about to leave must not fail it.
health="$(etcdctl_local endpoint health --cluster 2>&1 || true)"
for ip in $EXPECTED_ETCD_PEERS; do
  if ! grep -Eq "^[0-9a-f]+, started, [^,]+, https://${ip//./\\.}:2380, .*, false$" <<<"$members"; then
    problems+=("no started etcd voting member at $ip")
  elif ! grep -Eq "^https://${ip//./\\.}:2379 is healthy" <<<"$health"; then
    problems+=("the etcd member at $ip is not healthy")
  fi
done
expected_members=$(wc -w <<<"$EXPECTED_ETCD_PEERS")
actual_members=$(grep -c . <<<"$members" || true)
if [ "$actual_members" -gt "$expected_members" ]; then
  warn "etcd has $actual_members members, $expected_members expected; the others leave after this verification (their delete actions run at the end of the update)"
fi

if ! readyz="$(kubectl --kubeconfig "$(root_path "$KUBECONFIG_PATH")" --server "https://$API_ENDPOINT" \
  --request-timeout=10s get --raw /readyz 2>&1)" || [ "$readyz" != ok ]; then
  problems+=("the API does not answer ready through the load balancer at $API_ENDPOINT: $readyz")
fi

# Versions. The API server's version through the load balancer, then each kubelet's against it (or
# against K8S_VERSION after an upgrade), then each control plane's own API server.
api_version() {
  local answer
  answer="$(kubectl --kubeconfig "$(root_path "$KUBECONFIG_PATH")" --server "https://$1" --request-timeout=10s \
    get --raw /version 2>/dev/null)" || return 0
  git_version <<<"$answer"
}
cluster_version="$(api_version "$API_ENDPOINT")"
if [ -n "${K8S_VERSION:-}" ] && [ "$cluster_version" != "$K8S_VERSION" ]; then
  problems+=("the API server answers ${cluster_version:-nothing} through the load balancer at $API_ENDPOINT, not $K8S_VERSION")
fi
for node in $EXPECTED_NODES; do
  kubelet="$(node_kubelet_version "$node")"
  if [ -n "${K8S_VERSION:-}" ]; then
    [ "$kubelet" = "$K8S_VERSION" ] || problems+=("node $node reports kubelet ${kubelet:-nothing}, not $K8S_VERSION")
  elif [ -n "$cluster_version" ] && [ -n "$kubelet" ] && [ "$(minor_of "$kubelet")" != "$(minor_of "$cluster_version")" ]; then
    problems+=("node $node runs kubelet $kubelet but the cluster runs $cluster_version (it joined with another version)")
  fi
done
if [ -n "${K8S_VERSION:-}" ]; then
  for ip in $EXPECTED_ETCD_PEERS; do
    own="$(api_version "$ip:6443")"
    [ "$own" = "$K8S_VERSION" ] || problems+=("the API server on $ip runs ${own:-nothing}, not $K8S_VERSION")
  done
fi

# kubeadm's addons: the image tag of each one's first container (kubeadm's manifests have one), and
# its rollout finished (every replica updated and available, as `kubectl rollout status` judges it).
addon_tag() {
  local image
  image="$(kctl -n kube-system get "$1" -o jsonpath='{.spec.template.spec.containers[0].image}' 2>/dev/null)" || return 0
  [ -z "$image" ] || printf '%s' "${image##*:}"
}
rolled_out() {
  local generation observed want current updated available
  case "$1" in
    daemonset/*)
      read -r generation observed want updated available < <(kctl -n kube-system get "$1" -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.status.desiredNumberScheduled} {.status.updatedNumberScheduled} {.status.numberAvailable}{"\n"}') || return 1
      current="$want"
      ;;
    *)
      read -r generation observed want current updated available < <(kctl -n kube-system get "$1" -o jsonpath='{.metadata.generation} {.status.observedGeneration} {.spec.replicas} {.status.replicas} {.status.updatedReplicas} {.status.availableReplicas}{"\n"}') || return 1
      ;;
  esac
  [ -n "${want:-}" ] && [ "${observed:-0}" -ge "${generation:-1}" ] && [ "${updated:-0}" -eq "$want" ] &&
    [ "${current:-0}" -eq "$want" ] && [ "${available:-0}" -ge "$want" ]
}
addon_problems=0
for addon in "CoreDNS deployment/coredns ${COREDNS_VERSION:-}" "kube-proxy daemonset/kube-proxy ${KUBE_PROXY_VERSION:-}"; do
  read -r label object expected <<<"$addon"
  [ -n "${expected:-}" ] || continue
  tag="$(addon_tag "$object")"
  if [ "$tag" != "$expected" ]; then
    problems+=("$label ($object) runs ${tag:-nothing}, not $expected")
    addon_problems=$((addon_problems + 1))
  elif ! wait_until 24 "$label ($object) to finish rolling out $expected" rolled_out "$object"; then
    problems+=("$label ($object) at $expected has not finished rolling out (not every replica updated and available)")
    addon_problems=$((addon_problems + 1))
  fi
done

if [ "${#problems[@]}" -gt 0 ]; then
  for p in "${problems[@]}"; do log "FAILED: $p"; done
  if [ "$addon_problems" -gt 0 ]; then
    log "kubeadm upgrades CoreDNS and kube-proxy in the last control plane's kubeadm upgrade node (its addon phase, once every API server runs the new version): a run of it that failed is run again by pulumi up; after one that skipped them, run 'sudo kubeadm upgrade node phase addon all' on a control plane"
  fi
  if [ -n "${K8S_VERSION:-}" ]; then
    die "the upgrade to $K8S_VERSION is not complete (${#problems[@]} problem(s) above); run pulumi up again to resume it"
  fi
  die "the cluster is not healthy (${#problems[@]} problem(s) above)"
fi
log "revoking join credentials until the next join"
while read -r secret description; do
  [ -n "$secret" ] || continue
  if [[ "$(base64 -d <<<"$description" 2>/dev/null)" == ha-k8s* ]]; then
    kctl -n kube-system delete "secret/$secret" >/dev/null || warn "could not delete $secret"
  fi
done < <(kctl -n kube-system get secrets --field-selector type=bootstrap.kubernetes.io/token \
  -o jsonpath='{range .items[*]}{.metadata.name}{" "}{.data.description}{"\n"}{end}')
kctl -n kube-system delete secret kubeadm-certs --ignore-not-found >/dev/null || warn "could not delete kubeadm-certs"

kctl get nodes -o wide >&2 || true
log "cluster healthy: $(wc -w <<<"$EXPECTED_NODES") nodes Ready${K8S_VERSION:+ at $K8S_VERSION}, $expected_members etcd members, API ready through $API_ENDPOINT"
