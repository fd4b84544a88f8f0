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
  # The metadata server answers this machine's instance id (only with its header, like GCE's).
  export INSTANCE_ID=7003141592653589793
  stub curl 'case "$*" in *"Metadata-Flavor: Google"*"/computeMetadata/v1/instance/id"*) echo "$INSTANCE_ID" ;; *) echo ok ;; esac'
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

@test "a joined node records its instance id on its Node, with the kubelet's credentials, every run" {
  run_script join.sh
  assert_success
  assert_call_order "^kubeadm join" "^curl .*Metadata-Flavor: Google http://169.254.169.254/computeMetadata/v1/instance/id" \
    "^kubectl --kubeconfig $HA_K8S_ROOT/etc/kubernetes/kubelet.conf .*annotate --overwrite node c-worker-1 ha-k8s.io/instance-id=$INSTANCE_ID"
  assert_output --partial "c-worker-1 is instance $INSTANCE_ID"
  : >"$CALLS"
  NODE_ROLE=worker run_script join.sh # already joined (a node from before ids were recorded): recorded now
  assert_success
  assert_call_order "annotate --overwrite node c-worker-1 ha-k8s.io/instance-id=$INSTANCE_ID"
}

@test "a join whose machine's instance id cannot be read fails, saying why (bounded)" {
  stub curl 'case "$*" in *computeMetadata*) exit 7 ;; *) echo ok ;; esac'
  run timeout 60 bash "$SCRIPTS/join.sh"
  assert_failure 1
  assert_output --partial "cannot read this machine's instance id from the metadata server"
  [ "$(count_calls 'annotate')" -eq 0 ]
}

@test "leave: resets a joined node when it is the instance its join was created for" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  EXPECTED_INSTANCE_ID="$INSTANCE_ID" run_script leave.sh
  assert_success
  assert_call_order "^curl .*Metadata-Flavor: Google http://169.254.169.254/computeMetadata/v1/instance/id" "^kubeadm reset -f"
  assert_output --partial "this machine is instance $INSTANCE_ID, the one this join was created for"
}

@test "leave: a replacement machine with the same name and address (another instance) is not reset" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  EXPECTED_INSTANCE_ID=1234567890123456789 run_script leave.sh
  assert_success
  [ "$(count_calls '^kubeadm')" -eq 0 ]
  assert_output --partial "SKIPPED: this machine is instance $INSTANCE_ID, not instance 1234567890123456789 this join was created for"
}

@test "leave: a machine whose instance id cannot be read is not reset (nothing proves it is the one)" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  stub curl 'exit 7'
  EXPECTED_INSTANCE_ID="$INSTANCE_ID" run timeout 60 bash "$SCRIPTS/leave.sh"
  assert_success
  [ "$(count_calls '^kubeadm')" -eq 0 ]
  assert_output --partial "SKIPPED: cannot read this machine's instance id"
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
  EXPECTED_INSTANCE_ID="$INSTANCE_ID" run_script leave.sh
  assert_success
  assert_output --partial "did not complete"
}

@test "leave: kubeadm not installed is fine" {
  rm "$STUBS/kubeadm"
  run env PATH="$STUBS:/usr/bin:/bin" bash "$SCRIPTS/leave.sh"
  assert_success
  assert_output --partial "kubeadm is not installed"
}
