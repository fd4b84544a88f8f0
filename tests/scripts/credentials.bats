#!/usr/bin/env bats
# scripts/refresh-credentials.sh: a valid token and fresh certificates right before each join.

setup() {
  load helpers
  setup_machine
  export JOIN_NODE=c-worker-3 JOIN_ROLE=worker KUBECONFIG_PATH=/etc/kubernetes/admin.conf TOKEN_TTL_HOURS=168
  # A control plane's join (JOIN_ROLE=control-plane JOIN_NODE=c-cp-3): the machine about to join,
  # instance JOIN_INSTANCE_ID at JOIN_IP; etcd's members as `etcdctl member list` prints them.
  export JOIN_IP=10.10.0.12 JOIN_INSTANCE_ID=7003141592653589793
  export MEMBERS='8e9e05c52164694d, started, c-cp-1, https://10.10.0.10:2380, https://10.10.0.10:2379, false
91bc3c398fb3c146, started, c-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; esac ;; esac'
  echo "$TOKEN" >"$HA_K8S_STAGE/bootstrap-token"
  printf 'certificateKey: %s\n---\nkubernetesVersion: v1.35.4\n' "$CERT_KEY" >"$HA_K8S_STAGE/kubeadm-upload-certs.yaml"
  # A small model of the cluster in $STATE: our token's expiration, and who owns kubeadm-certs.
  # No token yet; apply stores what it receives on stdin.
  stub kubectl '
case "$*" in
  *"get --raw /readyz"*) echo ok ;;
  *"get secret bootstrap-token-abcdef -o jsonpath={.metadata.uid}"*) [ -f "$STATE/token-expiration" ] && echo uid-abcdef ;;
  *"get secret"*) [ -f "$STATE/token-expiration" ] && base64 -w0 <"$STATE/token-expiration" || exit 1 ;;
  *"apply -f -"*) cat >"$STATE/applied.yaml"; grep -o "expiration: \"[^\"]*\"" "$STATE/applied.yaml" | cut -d\" -f2 >"$STATE/token-expiration" ;;
  *"patch secret kubeadm-certs"*) grep -o "bootstrap-token-[a-z0-9]*" <<<"$*" >"$STATE/certs-owner" ;;
esac'
  # upload-certs: kubeadm ties the certificates to a 2-hour token of its own (phases/copycerts).
  stub kubeadm '
if [ "$1" = version ]; then echo v1.37.2; exit 0; fi
if [ "$2 $3" = "phase upload-certs" ]; then
  cp "$6" "$STATE/upload-certs-config" # kubeadm init phase upload-certs --upload-certs --config <file>
  echo "bootstrap-token-kubead" >"$STATE/certs-owner"
  date -u -d "+2 hours" +%Y-%m-%dT%H:%M:%SZ >"$STATE/expiration-bootstrap-token-kubead"
fi
echo "[upload-certs] Using certificate key: '"$CERT_KEY"'"'
}

@test "issues the missing token through kubectl's stdin, never a command line" {
  run_script refresh-credentials.sh
  assert_success
  grep -q 'token-secret: "0123456789abcdef"' "$STATE/applied.yaml"
  grep -q 'token-id: "abcdef"' "$STATE/applied.yaml"
  grep -q 'type: bootstrap.kubernetes.io/token' "$STATE/applied.yaml"
  run grep -c "0123456789abcdef" "$CALLS"
  assert_output 0
}

@test "a second run keeps the still-valid token" {
  run_script refresh-credentials.sh
  : >"$CALLS"
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "keeping it"
  [ "$(count_calls 'apply')" -eq 0 ]
}

@test "a token with less than a seventh of its life left is renewed" {
  date -u -d "+20 hours" +%Y-%m-%dT%H:%M:%SZ >"$STATE/token-expiration"
  run_script refresh-credentials.sh
  assert_success
  [ "$(count_calls 'apply -f -')" -eq 1 ]
}

@test "the token is issued for TOKEN_TTL_HOURS (until verification revokes it), not two hours" {
  run_script refresh-credentials.sh
  assert_success
  expires="$(date -u -d "$(cat "$STATE/token-expiration")" +%s)"
  [ "$expires" -gt "$(($(date -u +%s) + 167 * 3600))" ]
  assert_output --partial "issuing it for 168 h"
}

@test "the uploaded certificates are re-tied to our token instead of kubeadm's 2-hour one" {
  JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  assert_call_order "^kubeadm init phase upload-certs" \
    "^kubectl .*get secret bootstrap-token-abcdef -o jsonpath=\{.metadata.uid\}" "^kubectl .*patch secret kubeadm-certs --type=merge"
  grep -q '"name":"bootstrap-token-abcdef","uid":"uid-abcdef","controller":true' "$CALLS"
  assert_equal "$(cat "$STATE/certs-owner")" bootstrap-token-abcdef
}

# The retry scenario of a real deployment: credentials refreshed, the join fails, and a later
# `pulumi up` re-runs only the join (not the refresh) more than 2 hours afterwards. The stub join
# succeeds only if, at that time, our token and the owner of kubeadm-certs are both still alive
# (the token cleaner deletes expired tokens; the garbage collector then deletes what they own).
@test "a control-plane join retried 3 hours after its credentials were refreshed still finds them" {
  JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  export NODE_NAME=c-cp-3 NODE_ROLE=control-plane API_ENDPOINT=10.10.0.2:6443
  printf 'token: %s\n' "$TOKEN" >"$HA_K8S_STAGE/kubeadm-join.yaml"
  stub_systemd
  # The metadata server answers the machine's instance id (join.sh records it on the Node).
  stub curl 'case "$*" in *"/computeMetadata/v1/instance/id"*) echo 7003141592653589793 ;; *) echo ok ;; esac'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) echo "127.0.0.1:2379 is healthy" ;; esac'
  stub kubeadm '
alive() { [ "$(date -u -d "$(cat "$1")" +%s)" -gt "$(date -u -d "+${LATER_HOURS:-0} hours" +%s)" ]; }
[ "$1" = join ] || exit 0
[ -f "$STATE/join-attempted" ] || { touch "$STATE/join-attempted"; echo "error: unrelated failure" >&2; exit 1; }
alive "$STATE/token-expiration" || { echo "token expired" >&2; exit 1; }
owner="$(cat "$STATE/certs-owner")"
expiry="$STATE/expiration-$owner"; [ "$owner" = bootstrap-token-abcdef ] && expiry="$STATE/token-expiration"
alive "$expiry" || { echo "Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace" >&2; exit 1; }
mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf" "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml" \
  "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml" "$STATE/active-kubelet"'
  run_script join.sh
  assert_failure
  LATER_HOURS=3 run_script join.sh
  assert_success
  assert_output --partial "c-cp-3 joined"
}

@test "control planes also get the certificates re-uploaded, key from a file, output redacted" {
  JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  assert_call_order "^kubeadm init phase upload-certs --upload-certs --config $HA_K8S_STAGE/kubeadm-upload-certs.current.yaml"
  [ ! -e "$HA_K8S_STAGE/kubeadm-upload-certs.current.yaml" ] # the copy with the key is gone
  refute_output --partial "$CERT_KEY"
  run grep -c "$CERT_KEY" "$CALLS"
  assert_output 0
}

@test "workers do not touch the certificates" {
  run_script refresh-credentials.sh
  [ "$(count_calls '^kubeadm')" -eq 0 ]
}

@test "a malformed token is refused" {
  echo "not-a-token" >"$HA_K8S_STAGE/bootstrap-token"
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "malformed"
}

@test "an API that does not answer fails the step with the node's name" {
  stub kubectl 'exit 1'
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "cannot prepare the join of c-worker-3"
}

@test "after an upgrade, upload-certs is given kubeadm's own version, not the cluster's first one" {
  JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  grep -q "^kubernetesVersion: v1.37.2$" "$STATE/upload-certs-config"
  grep -q "^certificateKey: $CERT_KEY$" "$STATE/upload-certs-config"
}

# c-cp-3 was lost and its VM created again (pulumi up --refresh): its old member (id 3c3c3c3c3c3c3c3c)
# is still listed. $1: what its Node records (an instance id, "" for no annotation, or "absent").
lost_cp3() {
  export MEMBERS="$MEMBERS
3c3c3c3c3c3c3c3c, started, c-cp-3, https://10.10.0.12:2380, https://10.10.0.12:2379, false"
  export NODE_RECORDS="$1" JOIN_NODE=c-cp-3 JOIN_ROLE=control-plane
  stub kubectl '
case "$*" in
  *"get node c-cp-3 -o jsonpath"*) [ "$NODE_RECORDS" != absent ] || exit 1; printf "%s" "$NODE_RECORDS" ;;
  *"get node c-cp-3 -o name"*) [ "$NODE_RECORDS" != absent ] || { echo "Error from server (NotFound): nodes \"c-cp-3\" not found" >&2; exit 1; } ;;
  *"get --raw /readyz"*) echo ok ;;
  *"get secret bootstrap-token-abcdef -o jsonpath={.metadata.uid}"*) echo uid-abcdef ;;
  *"get secret"*) date -u -d "+100 hours" +%Y-%m-%dT%H:%M:%SZ | base64 -w0 ;;
esac'
  # The lost machine's etcd does not answer its health endpoint (curl fails to connect).
  stub curl 'exit 7'
}

@test "a control plane joining at a fresh address: no etcd member to remove" {
  JOIN_NODE=c-cp-3 JOIN_ROLE=control-plane run_script refresh-credentials.sh
  assert_success
  assert_output --partial "no etcd member at https://10.10.0.12:2380: c-cp-3 joins as a new member"
  [ "$(count_calls 'member remove')" -eq 0 ]
}

@test "a lost control plane rebuilt: its old member (not answering, its Node another instance) is removed before the certificates go up" {
  lost_cp3 5000000000000000001
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "removing etcd member 3c3c3c3c3c3c3c3c of the lost c-cp-3 (instance 5000000000000000001, not answering) before instance 7003141592653589793 joins"
  assert_call_order "^curl .*https://10.10.0.12:2379/health" "^crictl exec etcd-id etcdctl .*member remove 3c3c3c3c3c3c3c3c" \
    "^kubeadm init phase upload-certs"
  # Asked three times before it counts as silent.
  [ "$(count_calls '^curl .*:2379/health')" -eq 3 ]
}

@test "a member that answers only on its second try is not taken for a lost one" {
  lost_cp3 absent
  stub curl 'n=$(($(cat "$STATE/health-tries" 2>/dev/null || echo 0) + 1)); echo "$n" >"$STATE/health-tries"; [ "$n" -ge 2 ] && echo "{\"health\":\"true\"}"'
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "answers and its Node records no other instance: keeping it"
  [ "$(count_calls 'member remove')" -eq 0 ]
}

@test "a lost control plane whose Node is gone too: its member is removed" {
  lost_cp3 absent
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "removing etcd member 3c3c3c3c3c3c3c3c of the lost c-cp-3 (not answering)"
  assert_call_order "^crictl exec etcd-id etcdctl .*member remove 3c3c3c3c3c3c3c3c"
}

@test "a control plane only down (its Node records the instance about to join) keeps its member" {
  lost_cp3 "$JOIN_INSTANCE_ID"
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "etcd member 3c3c3c3c3c3c3c3c is c-cp-3's own"
  [ "$(count_calls 'member remove')" -eq 0 ]
}

@test "a member that answers is never removed, whatever its Node says" {
  lost_cp3 5000000000000000001
  stub curl 'echo "{\"health\":\"true\"}"'
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "etcd member 3c3c3c3c3c3c3c3c at https://10.10.0.12:2380 answers"
  [ "$(count_calls 'member remove')" -eq 0 ]
  [ "$(count_calls '^kubeadm init phase upload-certs')" -eq 0 ]
}

@test "a member that does not answer, its Node recording no instance id: a lost machine or a stopped one, nothing tells; the step stops" {
  lost_cp3 ""
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "records no ha-k8s.io/instance-id"
  [ "$(count_calls 'member remove')" -eq 0 ]
}

@test "etcd refusing the removal (no quorum without it) stops the step, pointing at the restore" {
  lost_cp3 5000000000000000001
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; *"member remove"*) echo "etcdserver: unhealthy cluster" >&2; exit 1 ;; esac ;; esac'
  run_script refresh-credentials.sh
  assert_failure
  assert_output --partial "etcd did not remove the lost member 3c3c3c3c3c3c3c3c of c-cp-3"
  assert_output --partial "Restore etcd"
  [ "$(count_calls '^kubeadm init phase upload-certs')" -eq 0 ]
}

@test "a live member whose Node records no instance id (joined before ids were recorded) is kept: this release's first up on an older cluster" {
  lost_cp3 ""
  stub curl 'echo "{\"health\":\"true\"}"'
  run_script refresh-credentials.sh
  assert_success
  assert_output --partial "etcd member 3c3c3c3c3c3c3c3c at https://10.10.0.12:2380 answers and its Node records no other instance: keeping it"
  [ "$(count_calls 'member remove')" -eq 0 ]
}
