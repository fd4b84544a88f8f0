#!/usr/bin/env bats
# scripts/kubeadm-init.sh: init once, with the Pulumi CA; never a second cluster; secrets redacted.

setup() {
  load helpers
  setup_machine
  stub_systemd
  export NODE_NAME=c-cp-1 NODE_IP=10.10.0.11 API_ENDPOINT=10.10.0.2:6443 TOKEN_TTL_HOURS=168
  export OTHER_CONTROL_PLANE_IPS="10.10.0.12 10.10.0.13"
  printf 'kubernetesVersion: v1.36.3\ntoken: %s\ncertificateKey: %s\n' "$TOKEN" "$CERT_KEY" >"$HA_K8S_STAGE/kubeadm-init.yaml"
  printf 'kind: JoinConfiguration\ntoken: %s\n' "$TOKEN" >"$HA_K8S_STAGE/kubeadm-join.yaml"
  echo "$TOKEN" >"$HA_K8S_STAGE/bootstrap-token"
  for key in ca etcd-ca front-proxy-ca; do
    echo "${key^^} CERT" >"$HA_K8S_STAGE/$key.crt"
    echo "${key^^} KEY" >"$HA_K8S_STAGE/$key.key"
  done
  echo "SA KEY" >"$HA_K8S_STAGE/sa.key"
  echo "SA PUB" >"$HA_K8S_STAGE/sa.pub"
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

@test "initialises with the staged config and every key Pulumi made in place, and waits for the API" {
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm init --config $HA_K8S_STAGE/kubeadm-init.yaml --upload-certs" "^kubectl .*get --raw /readyz"
  local pki="$HA_K8S_ROOT/etc/kubernetes/pki"
  for pair in ca.crt:ca.crt:644 ca.key:ca.key:600 etcd-ca.crt:etcd/ca.crt:644 etcd-ca.key:etcd/ca.key:600 \
    front-proxy-ca.crt:front-proxy-ca.crt:644 front-proxy-ca.key:front-proxy-ca.key:600 sa.key:sa.key:600 sa.pub:sa.pub:644; do
    IFS=: read -r staged installed mode <<<"$pair"
    cmp "$HA_K8S_STAGE/$staged" "$pki/$installed"
    assert_equal "$installed $(stat -c %a "$pki/$installed")" "$installed $mode"
  done
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

@test "with no other control plane to join, refuses to create a second cluster when the endpoint already serves one" {
  export OTHER_CONTROL_PLANE_IPS=""
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

@test "refuses a different CA or shared key already on the machine" {
  for file in ca.crt etcd/ca.key sa.pub; do
    rm -rf "$HA_K8S_ROOT/etc/kubernetes/pki"
    mkdir -p "$HA_K8S_ROOT/etc/kubernetes/pki/etcd"
    echo "OTHER" >"$HA_K8S_ROOT/etc/kubernetes/pki/$file"
    run_script kubeadm-init.sh
    assert_failure
    assert_output --partial "pki/$file exists and differs from the one Pulumi generated; refusing to mix keys"
    [ "$(count_calls '^kubeadm init')" -eq 0 ]
  done
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

# --- A rebuilt first control plane (its VM lost and created again) joins the cluster the others kept.

# The others' etcd trusts this stack's etcd CA and answers; nothing answers at this machine's own
# address yet. The old c-cp-1's member is listed; its Node records the lost instance.
stub_running_cluster() {
  export OLD_INSTANCE=7000000000000000001
  stub curl '
case "$*" in
  *"Metadata-Flavor: Google"*) echo "$INSTANCE_ID" ;;
  *"https://10.10.0.2:6443/version"*) echo "{\"gitVersion\":\"v1.36.3\"}" ;;
  *"https://10.10.0.12:2379/health"* | *"https://10.10.0.13:2379/health"*) [ ! -f "$STATE/etcd-distrusts" ] ;;
  *"https://127.0.0.1:6443/readyz"*) [ -f "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml" ] ;;
  *) exit 7 ;;
esac'
  stub kubectl '
case "$*" in
  *"get pods -l component=etcd"*) printf "etcd-c-cp-1 c-cp-1\netcd-c-cp-2 c-cp-2\netcd-c-cp-3 c-cp-3\n" ;;
  *"exec etcd-c-cp-1 "*) exit 1 ;;
  *"member list"*)
    [ -f "$STATE/removed" ] || echo "8e9e05c52164694d, started, c-cp-1, https://10.10.0.11:2380, https://10.10.0.11:2379, false"
    echo "91bc3c398fb3c146, started, c-cp-2, https://10.10.0.12:2380, https://10.10.0.12:2379, false" ;;
  *"member remove 8e9e05c52164694d"*) touch "$STATE/removed"; echo "Member 8e9e05c52164694d removed" ;;
  *"get secret bootstrap-token"*) exit 1 ;;
  *"apply -f -"*) cat >"$STATE/applied" ;;
  *"ha-k8s\\.io/instance-id"*) printf "%s" "$OLD_INSTANCE" ;;
  *) exit 0 ;;
esac'
  # kubeadm join writes the kubelet and control-plane files and starts the kubelet; the phases the
  # rejoin runs write their files where they are told.
  stub kubeadm '
case "$1 $2" in
  "join --config")
    [ ! -f "$STATE/join-fails" ] || { echo "error execution phase preflight: boom"; exit 1; }
    mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
    touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf" "$HA_K8S_ROOT/etc/kubernetes/admin.conf" \
      "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml" "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
    touch "$STATE/active-kubelet" ;;
  "version -o") echo v1.37.2 ;;
  "init phase")
    dir=""; while [ $# -gt 0 ]; do [ "$1" = --kubeconfig-dir ] && dir="$2"; shift; done
    [ -z "$dir" ] || echo admin >"$dir/admin.conf" ;;
esac'
  stub crictl 'case "$1" in ps) echo etcd-container ;; esac'
}

@test "a rebuilt first control plane joins the running cluster as a control plane, never a second init" {
  stub_running_cluster
  run_script kubeadm-init.sh
  assert_success
  assert_output --partial "this is a rebuilt first control plane; it joins that cluster as a control plane"
  [ "$(count_calls '^kubeadm init --config')" -eq 0 ]
  # Its etcd client and admin kubeconfig come from the stack's keys, at kubeadm's own version; the
  # lost member goes (through another control plane's etcd), the token is issued, then the join.
  assert_call_order "^kubeadm init phase certs etcd-healthcheck-client --config $HA_K8S_STAGE/kubeadm-init.current.yaml" \
    "^kubeadm init phase kubeconfig admin --config $HA_K8S_STAGE/kubeadm-init.current.yaml --kubeconfig-dir $HA_K8S_ROOT/var/lib/ha-k8s/rejoin" \
    "^curl .*https://10.10.0.12:2379/health" \
    "^kubectl --kubeconfig $HA_K8S_ROOT/var/lib/ha-k8s/rejoin/admin.conf .*exec etcd-c-cp-2 -c etcd -- etcdctl .* member remove 8e9e05c52164694d" \
    "^kubectl --kubeconfig $HA_K8S_ROOT/var/lib/ha-k8s/rejoin/admin.conf .*apply -f -" \
    "^kubeadm join --config $HA_K8S_STAGE/kubeadm-join.yaml" \
    "annotate --overwrite node c-cp-1 ha-k8s.io/instance-id=$INSTANCE_ID"
  grep -q "token-secret: \"${TOKEN#*.}\"" "$STATE/applied"
  cmp "$HA_K8S_STAGE/etcd-ca.key" "$HA_K8S_ROOT/etc/kubernetes/pki/etcd/ca.key"
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s/rejoin" ] # its own kubeconfig is gone
  [ ! -e "$HA_K8S_STAGE/kubeadm-init.current.yaml" ]
  [ -f "$HA_K8S_ROOT/var/lib/ha-k8s/initialised" ]
  refute_output --partial "$TOKEN"
  # Its own (lost) node's etcd pod is never asked.
  [ "$(count_calls 'exec etcd-c-cp-1 ')" -eq 0 ]

  # Later runs find it initialised, like any first control plane.
  : >"$CALLS"
  run_script kubeadm-init.sh
  assert_success
  assert_output --partial "already initialised"
  [ "$(count_calls '^kubeadm (init|join|reset)')" -eq 0 ]
}

@test "a rebuilt first control plane whose join stopped half-way goes on joining on the retry" {
  stub_running_cluster
  touch "$STATE/join-fails"
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "the join of c-cp-1 into the running cluster failed"
  [ -f "$HA_K8S_ROOT/var/lib/ha-k8s/rejoining" ]
  # The kubeadm join left its files (as a real one may), then the retry.
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
  touch "$HA_K8S_ROOT/etc/kubernetes/admin.conf" "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml"
  mkdir -p "$HA_K8S_ROOT/var/lib/etcd/member"
  rm "$STATE/join-fails"
  : >"$CALLS"
  run_script kubeadm-init.sh
  assert_success
  assert_call_order "^kubeadm reset -f" "^kubeadm init phase certs etcd-healthcheck-client" "^kubeadm join --config"
  [ "$(count_calls '^kubeadm init --config')" -eq 0 ]
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s/rejoining" ]
}

@test "a cluster whose etcd does not trust the stack's etcd CA (made before the stack held it): stops, nothing removed, no join" {
  stub_running_cluster
  touch "$STATE/etcd-distrusts"
  run_script kubeadm-init.sh
  assert_failure
  assert_output --partial "no other control plane's etcd (10.10.0.12 10.10.0.13) answers a client of the etcd CA this stack holds"
  assert_output --partial "rebuild c-cp-1 by hand"
  [ "$(count_calls 'member remove')" -eq 0 ]
  [ "$(count_calls '^kubeadm (init --config|join)')" -eq 0 ]
}

# curl where a running cluster answers only as the given case line says (what answers, and how),
# besides the metadata server, cp-2's etcd and, once joined, the local API server.
stub_cluster_answering() {
  stub curl '
case "$*" in
  *"Metadata-Flavor: Google"*) echo "$INSTANCE_ID" ;;
  '"$1"'
  *"https://10.10.0.12:2379/health"*) exit 0 ;;
  *"https://127.0.0.1:6443/readyz"*) [ -f "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml" ] ;;
  *) exit 7 ;;
esac'
}

@test "the endpoint does not answer but another control plane's API does: it joins that cluster, never a second init" {
  stub_running_cluster
  stub_cluster_answering '*"https://10.10.0.13:6443/version"*) echo "{}" ;;'
  run_script kubeadm-init.sh
  assert_success
  [ "$(count_calls '^kubeadm init --config')" -eq 0 ]
  assert_call_order "^kubeadm join --config $HA_K8S_STAGE/kubeadm-join.yaml"
}

@test "one lost answer from the endpoint does not start a second cluster: a second look finds it" {
  stub_running_cluster
  stub_cluster_answering '*"https://10.10.0.2:6443/version"*) [ -f "$STATE/looked" ] || { touch "$STATE/looked"; exit 28; }; echo "{}" ;;'
  run_script kubeadm-init.sh
  assert_success
  [ "$(count_calls '^kubeadm init --config')" -eq 0 ]
  [ "$(count_calls '^kubeadm join --config')" -eq 1 ]
}
