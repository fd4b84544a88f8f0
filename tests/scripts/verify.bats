#!/usr/bin/env bats
# scripts/verify.sh, kubeconfig.sh and install-cni.sh.

setup() {
  load helpers
  setup_machine
  export EXPECTED_NODES="c-cp-1 c-cp-2 c-worker-1" EXPECTED_ETCD_PEERS="10.10.0.10 10.10.0.11"
  export API_ENDPOINT=10.10.0.2:6443 KUBECONFIG_PATH=/etc/kubernetes/admin.conf NODE_NAME=c-cp-1
  export MEMBERS='8e9e05c52164694d, started, c-cp-1, https://10.10.0.10:2380, https://10.10.0.10:2379, false
91bc3c398fb3c146, started, c-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false'
  # Every kubelet and API server at v1.36.3 unless a test says otherwise ($STATE/version-<node|ip>).
  stub kubectl '
case "$*" in
  *"get --raw /readyz"*) echo ok ;;
  *"get --raw /version"*) at="$(sed -E "s|.*--server https://([^ ]+):6443.*|\1|" <<<"$*")"
    printf "{\n  \"gitVersion\": \"%s\"\n}\n" "$(cat "$STATE/version-$at" 2>/dev/null || echo v1.36.3)" ;;
  *"jsonpath={.status.nodeInfo.kubeletVersion}"*) node="$(sed -E "s/.*get node ([^ ]+) .*/\1/" <<<"$*")"
    cat "$STATE/version-$node" 2>/dev/null || echo v1.36.3 ;;
esac; exit 0'
  # endpoint health --cluster prints one line per member it found (etcdctl's printer).
  export HEALTH='https://10.10.0.10:2379 is healthy: successfully committed proposal: took = 9.6ms
https://10.10.0.11:2379 is healthy: successfully committed proposal: took = 10.2ms'
  stub crictl '
case "$1" in
  ps) echo etcd-id ;;
  exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; *"endpoint health"*) echo "$HEALTH"; [[ "$HEALTH" != *unhealthy* ]] ;; esac ;;
esac'
}

@test "verify: all nodes Ready, every control plane a healthy etcd member, API ready through the load balancer" {
  run_script verify.sh
  assert_success
  assert_call_order "node/c-cp-1" "node/c-cp-2" "node/c-worker-1" "member list" "endpoint health --cluster" \
    "^kubectl .*--server https://10.10.0.2:6443 .*get --raw /readyz"
  assert_output --partial "cluster healthy: 3 nodes Ready, 2 etcd members"
}

@test "verify: then revokes our bootstrap tokens and the uploaded certificates, nothing else" {
  ours="$(printf 'ha-k8s: join of the workers' | base64 -w0)"
  theirs="$(printf 'someone else' | base64 -w0)"
  export TOKENS="bootstrap-token-abcdef $ours
bootstrap-token-zzzzzz $theirs"
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *"get secrets"*) echo "$TOKENS" ;; esac; exit 0'
  run_script verify.sh
  assert_success
  assert_call_order "--server https://10.10.0.2:6443" "delete secret/bootstrap-token-abcdef" "delete secret kubeadm-certs --ignore-not-found"
  [ "$(count_calls 'bootstrap-token-zzzzzz')" -eq 0 ]
}

@test "verify: a failed verification revokes nothing" {
  stub kubectl 'case "$*" in *node/c-worker-1*) exit 1 ;; *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  run_script verify.sh
  assert_failure
  [ "$(count_calls 'delete')" -eq 0 ]
}

@test "verify: a NotReady node and a missing etcd member are both reported" {
  stub kubectl 'case "$*" in *node/c-worker-1*) exit 1 ;; *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  EXPECTED_ETCD_PEERS="10.10.0.10 10.10.0.11 10.10.0.12" run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: node c-worker-1 is not Ready"
  assert_output --partial "FAILED: no started etcd voting member at 10.10.0.12"
  assert_output --partial "2 problem(s)"
}

@test "verify: an API not ready through the load balancer fails" {
  stub kubectl 'case "$*" in *"--server https://10.10.0.2:6443"*) echo "[-]etcd failed"; exit 1 ;; esac; exit 0'
  run_script verify.sh
  assert_failure
  assert_output --partial "the API does not answer ready through the load balancer"
}

@test "verify: extra etcd members being removed are a warning, not a failure" {
  MEMBERS="$MEMBERS
aaaaaaaaaaaaaaaa, started, c-cp-3, https://10.10.0.12:2380, https://10.10.0.12:2379, false"
  run_script verify.sh
  assert_success
  assert_output --partial "etcd has 3 members, 2 expected"
}

@test "verify: a leaving control plane that is already unhealthy does not fail the verification" {
  # Scale-down 3 -> 2: Pulumi verifies with the new list before the removed node's delete actions.
  MEMBERS="$MEMBERS
aaaaaaaaaaaaaaaa, started, c-cp-3, https://10.10.0.12:2380, https://10.10.0.12:2379, false"
  HEALTH="$HEALTH
https://10.10.0.12:2379 is unhealthy: failed to commit proposal: context deadline exceeded"
  run_script verify.sh
  assert_success
  assert_output --partial "leave after this verification"
}

@test "verify: an expected member that is unhealthy fails, naming it" {
  HEALTH='https://10.10.0.10:2379 is healthy: successfully committed proposal: took = 9.6ms
https://10.10.0.11:2379 is unhealthy: failed to commit proposal: context deadline exceeded'
  run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: the etcd member at 10.10.0.11 is not healthy"
}

kubeconfig_env() {
  export SEALED_OUTPUT_PREFIX=ha-k8s-sealed-v1: SEALED_OUTPUT_ITERATIONS=100000
  printf '%s\n' "$CERT_KEY" >"$HA_K8S_STAGE/output-key"
}

@test "kubeconfig: prints admin.conf sealed with the output key (real openssl), never in clear, never super-admin.conf" {
  kubeconfig_env
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"
  printf 'admin kubeconfig\nclient-key-data: SECRETKEY\n' >"$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  echo "SUPER" >"$HA_K8S_ROOT/etc/kubernetes/super-admin.conf"
  run_script kubeconfig.sh
  assert_success
  refute_output --partial "SECRETKEY"
  refute_output --partial "SUPER"
  [[ "$output" =~ ^ha-k8s-sealed-v1:U2FsdGVkX1[A-Za-z0-9+/=]+$ ]] # base64 of "Salted__..."
  # openssl opens it with the same key, and only with it.
  run bash -c "printf '%s' '${output#ha-k8s-sealed-v1:}' | openssl enc -d -aes-256-cbc -pbkdf2 -iter 100000 -md sha256 -a -A -pass 'file:$HA_K8S_STAGE/output-key'"
  assert_success
  assert_output "$(printf 'admin kubeconfig\nclient-key-data: SECRETKEY')"
}

@test "kubeconfig: a missing admin.conf is an error" {
  kubeconfig_env
  run_script kubeconfig.sh
  assert_failure
  assert_output --partial "admin.conf is missing"
}

@test "cni: applies the pinned manifests server-side, then the Installation, and waits for this node" {
  export CALICO_MANIFEST_URLS="https://x/v3.33.1/manifests/operator-crds.yaml https://x/v3.33.1/manifests/tigera-operator.yaml"
  echo "kind: Installation" >"$HA_K8S_STAGE/calico-resources.yaml"
  run_script install-cni.sh
  assert_success
  assert_call_order "apply --server-side --force-conflicts -f https://x/v3.33.1/manifests/operator-crds.yaml" \
    "apply --server-side --force-conflicts -f https://x/v3.33.1/manifests/tigera-operator.yaml" \
    "crd/installations.operator.tigera.io" "apply --server-side --force-conflicts -f $HA_K8S_STAGE/calico-resources.yaml" \
    "tigerastatus/calico" "node/c-cp-1"
}

@test "cni: an unreachable manifest is retried, then fails naming it" {
  export CALICO_MANIFEST_URLS="https://x/operator-crds.yaml"
  echo "kind: Installation" >"$HA_K8S_STAGE/calico-resources.yaml"
  stub kubectl 'case "$*" in *https://x/*) exit 1 ;; esac; exit 0'
  run_script install-cni.sh
  assert_failure
  [ "$(count_calls 'https://x/operator-crds.yaml')" -eq 5 ]
  assert_output --partial "cannot apply https://x/operator-crds.yaml"
}

@test "verify: a machine that joined with another minor than the cluster's is named" {
  echo v1.35.4 >"$STATE/version-c-worker-1"
  run_script verify.sh
  assert_failure
  assert_output --partial "node c-worker-1 runs kubelet v1.35.4 but the cluster runs v1.36.3 (it joined with another version)"
}

@test "after an upgrade: every kubelet and every control plane's API server at the new version, else each named" {
  for n in c-cp-1 c-cp-2 c-worker-1 10.10.0.2 10.10.0.10 10.10.0.11; do echo v1.37.2 >"$STATE/version-$n"; done
  K8S_VERSION=v1.37.2 run_script verify.sh
  assert_success
  assert_output --partial "3 nodes Ready at v1.37.2"
  echo v1.36.3 >"$STATE/version-c-worker-1"
  echo v1.36.3 >"$STATE/version-10.10.0.11"
  K8S_VERSION=v1.37.2 run_script verify.sh
  assert_failure
  assert_output --partial "node c-worker-1 reports kubelet v1.36.3, not v1.37.2"
  assert_output --partial "the API server on 10.10.0.11 runs v1.36.3, not v1.37.2"
  assert_output --partial "run pulumi up again to resume it"
}

@test "after an upgrade: an API that cannot be asked its version is a named problem, not a silent exit" {
  stub kubectl 'case "$*" in *"get --raw /version"*) exit 1 ;; *"get --raw /readyz"*) echo ok ;; *kubeletVersion*) echo v1.37.2 ;; esac; exit 0'
  K8S_VERSION=v1.37.2 run_script verify.sh
  assert_failure
  assert_output --partial "the API server answers nothing through the load balancer at 10.10.0.2:6443, not v1.37.2"
}

# kubeadm's addons after an upgrade: the kube-proxy DaemonSet's image tag is the Kubernetes version,
# CoreDNS's the release kubeadm pins for the minor (render/versions.ts passes both).
stub_addons() {
  # $STATE/image-<object> overrides an image; $STATE/rollout-<object> a rollout's status fields.
  stub kubectl '
case "$*" in
  *"get --raw /readyz"*) echo ok ;;
  *"get --raw /version"*) echo "{ \"gitVersion\": \"v1.37.2\" }" ;;
  *"jsonpath={.status.nodeInfo.kubeletVersion}"*) echo v1.37.2 ;;
  *" get deployment/coredns "*"containers[0].image"*) cat "$STATE/image-coredns" 2>/dev/null || echo registry.k8s.io/coredns/coredns:v1.14.6 ;;
  *" get daemonset/kube-proxy "*"containers[0].image"*) cat "$STATE/image-kube-proxy" 2>/dev/null || echo 10.0.0.5:5000/k8s/kube-proxy:v1.37.2 ;;
  *" get deployment/coredns "*) cat "$STATE/rollout-coredns" 2>/dev/null || echo "3 3 2 2 2 2" ;;
  *" get daemonset/kube-proxy "*) cat "$STATE/rollout-kube-proxy" 2>/dev/null || echo "4 4 3 3 3" ;;
esac; exit 0'
  export K8S_VERSION=v1.37.2 COREDNS_VERSION=v1.14.6 KUBE_PROXY_VERSION=v1.37.2
}

@test "after an upgrade: CoreDNS and kube-proxy rolled out at the versions kubeadm deploys for it" {
  stub_addons
  run_script verify.sh
  assert_success
  assert_call_order "get deployment/coredns .*containers\[0\].image" "get daemonset/kube-proxy .*containers\[0\].image"
}

@test "after an upgrade: CoreDNS or kube-proxy still at the old version fails, naming each and what upgrades them" {
  stub_addons
  echo registry.k8s.io/coredns/coredns:v1.14.2 >"$STATE/image-coredns"
  echo 10.0.0.5:5000/k8s/kube-proxy:v1.36.3 >"$STATE/image-kube-proxy"
  run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: CoreDNS (deployment/coredns) runs v1.14.2, not v1.14.6"
  assert_output --partial "FAILED: kube-proxy (daemonset/kube-proxy) runs v1.36.3, not v1.37.2"
  assert_output --partial "the last control plane's kubeadm upgrade node"
  assert_output --partial "the upgrade to v1.37.2 is not complete (2 problem(s) above)"
  [ "$(count_calls 'delete')" -eq 0 ]
  # Only kube-proxy behind: one problem.
  rm "$STATE/image-coredns"
  run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: kube-proxy (daemonset/kube-proxy) runs v1.36.3, not v1.37.2"
  refute_output --partial "FAILED: CoreDNS"
}

@test "after an upgrade: an addon at the new version whose rollout has not finished fails" {
  stub_addons
  # generation observed, 3 nodes desired, 1 updated, 3 available: old kube-proxy pods still run.
  echo "4 4 3 1 3" >"$STATE/rollout-kube-proxy"
  run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: kube-proxy (daemonset/kube-proxy) at v1.37.2 has not finished rolling out"
  # A Deployment with an old replica left (3 replicas for 2 wanted).
  rm "$STATE/rollout-kube-proxy"
  echo "3 3 2 3 2 2" >"$STATE/rollout-coredns"
  run_script verify.sh
  assert_failure
  assert_output --partial "FAILED: CoreDNS (deployment/coredns) at v1.14.6 has not finished rolling out"
}

@test "without expected addon versions (not an upgrade) the addons are not checked" {
  run_script verify.sh
  assert_success
  [ "$(count_calls 'coredns|kube-proxy')" -eq 0 ]
}
