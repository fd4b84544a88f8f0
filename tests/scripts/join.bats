#!/usr/bin/env bats
# scripts/join.sh and its delete-time counterpart scripts/leave.sh.

setup() {
  load helpers
  setup_machine
  stub_systemd
  export NODE_NAME=c-worker-1 NODE_ROLE=worker API_ENDPOINT=10.10.0.2:6443
  printf 'token: %s\ncaCertHashes: [sha256:%s]\n' "$TOKEN" "$CERT_KEY" >"$HA_K8S_STAGE/kubeadm-join.yaml"
  stub kubeadm '
if [ "$1" = join ]; then
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"; echo kubelet >"$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  touch "$STATE/active-kubelet"
  echo "[discovery] Using token: '"$TOKEN"'"
fi'
  stub curl 'echo ok'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) echo "127.0.0.1:2379 is healthy" ;; esac'
}

@test "a worker joins with the staged config; the token never reaches the output" {
  run_script join.sh
  assert_success
  assert_call_order "^kubeadm join --config $HA_K8S_STAGE/kubeadm-join.yaml"
  refute_output --partial "$TOKEN"
  assert_output --partial "<redacted-token>"
  [ "$(count_calls '^crictl')" -eq 0 ]
}

@test "a joined node does not join again" {
  run_script join.sh
  : >"$CALLS"
  run_script join.sh
  assert_success
  assert_output --partial "already joined"
  [ "$(count_calls '^kubeadm')" -eq 0 ]
}

@test "a control plane waits for its API server and a healthy etcd member" {
  NODE_ROLE=control-plane run_script join.sh
  assert_success
  assert_call_order "^kubeadm join" "^curl .*https://127.0.0.1:6443/readyz" "^crictl exec etcd-id etcdctl .*endpoint health"
}

@test "a control plane whose earlier join stopped before its static pods is reset and joined again" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"
  echo kubelet >"$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  touch "$STATE/active-kubelet"
  NODE_ROLE=control-plane run_script join.sh
  assert_success
  assert_call_order "^kubeadm reset -f" "^kubeadm join"
}

@test "a joined control plane (manifests in place) does not join again" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
  echo kubelet >"$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  touch "$STATE/active-kubelet" "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml" "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  NODE_ROLE=control-plane run_script join.sh
  assert_success
  [ "$(count_calls '^kubeadm')" -eq 0 ]
  assert_output --partial "already joined"
}

@test "a control plane whose etcd stays unhealthy fails the step" {
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) exit 1 ;; esac'
  NODE_ROLE=control-plane run_script join.sh
  assert_failure
  assert_output --partial "etcd member on c-worker-1 is not healthy"
}

@test "an unfinished earlier join is reset before joining again" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests" && touch "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml"
  run_script join.sh
  assert_success
  assert_call_order "^kubeadm reset -f" "^kubeadm join"
}

@test "a failing join stops with kubeadm's message" {
  stub kubeadm '[ "$1" = join ] && { echo "couldn'"'"'t validate the identity of the API Server"; exit 1; }; exit 0'
  run_script join.sh
  assert_failure
  assert_output --partial "couldn't validate the identity of the API Server"
  assert_output --partial "kubeadm join failed"
}

@test "leave: resets a joined node" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  run_script leave.sh
  assert_success
  assert_call_order "^kubeadm reset -f"
}

@test "leave: nothing to do on a node that holds no cluster state" {
  run_script leave.sh
  assert_success
  assert_output --partial "nothing to reset"
  [ "$(count_calls '^kubeadm')" -eq 0 ]
}

@test "leave: a failing reset does not fail the teardown" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  stub kubeadm 'echo "etcd cluster is not reachable"; exit 1'
  run_script leave.sh
  assert_success
  assert_output --partial "did not complete"
}

@test "leave: kubeadm not installed is fine" {
  rm "$STUBS/kubeadm"
  run env PATH="$STUBS:/usr/bin:/bin" bash "$SCRIPTS/leave.sh"
  assert_success
  assert_output --partial "kubeadm is not installed"
}
