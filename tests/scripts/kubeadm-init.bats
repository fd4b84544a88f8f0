#!/usr/bin/env bats
# scripts/kubeadm-init.sh: init once, with the Pulumi CA; never a second cluster; secrets redacted.

setup() {
  load helpers
  setup_machine
  stub_systemd
  export NODE_NAME=c-cp-1 API_ENDPOINT=10.10.0.2:6443
  printf 'token: %s\ncertificateKey: %s\n' "$TOKEN" "$CERT_KEY" >"$HA_K8S_STAGE/kubeadm-init.yaml"
  echo "CA CERT" >"$HA_K8S_STAGE/ca.crt"
  echo "CA KEY" >"$HA_K8S_STAGE/ca.key"
  # kubeadm init writes admin.conf and echoes the join command with the secrets, as the real one does.
  stub kubeadm '
if [ "$1" = init ]; then
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"; echo admin >"$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  echo "kubeadm join 10.10.0.2:6443 --token '"$TOKEN"' --certificate-key '"$CERT_KEY"'"
fi'
  stub kubectl '[ -f "$HA_K8S_ROOT/etc/kubernetes/admin.conf" ] && echo ok'
  # Nothing answers at the endpoint; the metadata server answers this machine's instance id.
  export INSTANCE_ID=7003141592653589793
  stub curl 'case "$*" in *"Metadata-Flavor: Google"*"/computeMetadata/v1/instance/id"*) echo "$INSTANCE_ID" ;; *) exit 7 ;; esac'
}

@test "initialises with the staged config and CA, and waits for the API" {
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm init --config $HA_K8S_STAGE/kubeadm-init.yaml --upload-certs" "^kubectl .*get --raw /readyz"
  cmp "$HA_K8S_STAGE/ca.crt" "$HA_K8S_ROOT/etc/kubernetes/pki/ca.crt"
  assert_equal "$(stat -c %a "$HA_K8S_ROOT/etc/kubernetes/pki/ca.key")" 600
}

@test "the initialised first control plane records its instance id on its Node, also on a later run" {
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm init" "^curl .*Metadata-Flavor: Google http://169.254.169.254/computeMetadata/v1/instance/id" \
    "^kubectl --kubeconfig $HA_K8S_ROOT/etc/kubernetes/admin.conf .*annotate --overwrite node c-cp-1 ha-k8s.io/instance-id=$INSTANCE_ID"
  : >"$CALLS"
  run_script kubeadm-init.sh
  assert_success
  assert_output --partial "already initialised"
  assert_call_order "annotate --overwrite node c-cp-1 ha-k8s.io/instance-id=$INSTANCE_ID"
}

@test "kubeadm's output is shown without the token or the certificate key" {
  run_script kubeadm-init.sh
  assert_success
  assert_output --partial "kubeadm join 10.10.0.2:6443 --token <redacted-token> --certificate-key <redacted-key>"
  refute_output --partial "$TOKEN"
  refute_output --partial "$CERT_KEY"
}

@test "a second run does not init again" {
  run_script kubeadm-init.sh
  : >"$CALLS"
  run_script kubeadm-init.sh
  assert_success
  assert_output --partial "already initialised"
  [ "$(count_calls '^kubeadm')" -eq 0 ]
}

@test "an init that stopped after the API came up gets kubeadm's remaining phases, not a second init" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"
  echo admin >"$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  # The API answers, but cluster-info was never written.
  stub kubectl 'case "$*" in *cluster-info*) [ -f "$STATE/phases-done" ] || exit 1 ;; esac; echo ok'
  stub kubeadm '[ "$1 $2 $3" = "init phase addon" ] && touch "$STATE/phases-done"; exit 0'
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm init phase upload-config all --config" "^kubeadm init phase upload-certs --upload-certs --config" \
    "^kubeadm init phase mark-control-plane --config" "^kubeadm init phase bootstrap-token --config" \
    "^kubeadm init phase kubelet-finalize all --config" "^kubeadm init phase addon all --config"
  [ "$(count_calls '^kubeadm init --config')" -eq 0 ]
}

@test "refuses to create a second cluster when the endpoint already serves one" {
  stub curl 'echo "{\"gitVersion\":\"v1.36.3\"}"'
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "refusing to create a second cluster"
  [ "$(count_calls '^kubeadm init')" -eq 0 ]
}

@test "resets the state of an earlier unfinished attempt first" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
  touch "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm reset -f" "^kubeadm init"
}

@test "refuses a different CA already on the machine" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/pki"
  echo "OTHER CA" >"$HA_K8S_ROOT/etc/kubernetes/pki/ca.crt"
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "refusing to mix CAs"
}

@test "a failing init stops with a clear message" {
  stub kubeadm '[ "$1" = init ] && { echo "error execution phase preflight: port 6443 in use"; exit 1; }; exit 0'
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "port 6443 in use"
  assert_output --partial "kubeadm init failed"
}

@test "a node holding the cluster's etcd data is never reset, even while its API does not answer" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests" "$HA_K8S_ROOT/var/lib/etcd/member"
  echo admin >"$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  touch "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  stub kubectl 'exit 1' # the API is down (a restart, a blip)
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "holds this cluster's etcd data but its API does not answer; not resetting it"
  [ "$(count_calls '^kubeadm (reset|init)')" -eq 0 ]
}

@test "once initialised, a later run finds the marker and never resets, even without admin.conf" {
  run_script kubeadm-init.sh
  assert_success
  [ -f "$HA_K8S_ROOT/var/lib/ha-k8s/initialised" ]
  rm "$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  : >"$CALLS"
  run_script kubeadm-init.sh
  assert_failure
  [ "$(count_calls '^kubeadm (reset|init)')" -eq 0 ]
}
