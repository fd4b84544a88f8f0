#!/usr/bin/env bats
# scripts/member.sh (wait until a joined node is Ready and, for control planes, a healthy etcd
# voter) and scripts/member-remove.sh (its delete-time counterpart: drain, etcd member removal,
# Node deletion), run on the first control plane.

MEMBERS='8e9e05c52164694d, started, c-cp-1, https://10.10.0.10:2380, https://10.10.0.10:2379, false
91bc3c398fb3c146, started, c-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false'

setup() {
  load helpers
  setup_machine
  export MEMBER_NODE=c-cp-2 MEMBER_ROLE=control-plane MEMBER_IP=10.10.0.11 KUBECONFIG_PATH=/etc/kubernetes/admin.conf
  export MEMBERS
  # The removal was created for instance EXPECTED_INSTANCE_ID; the Node records NODE_INSTANCE
  # (ha-k8s.io/instance-id, what the jsonpath reads), the same machine unless a test says otherwise.
  export EXPECTED_INSTANCE_ID=7003141592653589793 NODE_INSTANCE=7003141592653589793
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *"get node"*"ha-k8s\\.io/instance-id"*) printf "%s" "$NODE_INSTANCE" ;; esac; exit 0'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; esac ;; esac'
}

@test "member: waits for Ready, then for a started etcd voter at the node's address and a healthy cluster" {
  run_script member.sh
  assert_success
  assert_call_order "^kubectl .*wait --for=condition=Ready --timeout=5s node/c-cp-2" "^crictl exec etcd-id etcdctl .*member list" \
    "^crictl exec etcd-id etcdctl .*endpoint health --cluster"
}

@test "member: a learner (not yet promoted) is not enough" {
  MEMBERS="${MEMBERS/c-cp-2, https:\/\/10.10.0.11:2380, https:\/\/10.10.0.11:2379, false/c-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, true}"
  run_script member.sh
  assert_failure
  assert_output --partial "is not a started voting etcd member"
}

@test "member: a node that never becomes Ready fails the step, naming it" {
  stub kubectl 'exit 1'
  MEMBER_ROLE=worker MEMBER_NODE=c-worker-9 run_script member.sh
  assert_failure
  assert_output --partial "c-worker-9 did not become Ready"
}

@test "member: workers need no etcd" {
  MEMBER_ROLE=worker MEMBER_NODE=c-worker-1 run_script member.sh
  assert_success
  [ "$(count_calls '^crictl')" -eq 0 ]
}

@test "remove: drains, removes the etcd member by its peer URL, deletes the Node" {
  run_script member-remove.sh
  assert_success
  assert_call_order "^kubectl .*cordon c-cp-2" "^kubectl .*drain c-cp-2 --ignore-daemonsets --delete-emptydir-data --force --timeout=120s" \
    "^crictl exec etcd-id etcdctl .*member remove 91bc3c398fb3c146" "^kubectl .*delete node c-cp-2 --ignore-not-found"
}

@test "remove: a worker has no etcd member to remove" {
  MEMBER_ROLE=worker MEMBER_NODE=c-worker-2 run_script member-remove.sh
  assert_success
  [ "$(count_calls 'member remove')" -eq 0 ]
  assert_call_order "^kubectl .*drain c-worker-2"
}

@test "remove: succeeds and does nothing more when the node and its member are already gone" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *"get node"*) echo "NotFound" >&2; exit 1 ;; esac; exit 0'
  MEMBER_IP=10.10.0.99 run_script member-remove.sh
  assert_success
  [ "$(count_calls 'drain|member remove')" -eq 0 ]
  assert_output --partial "nothing to drain"
  assert_output --partial "nothing to remove"
}

@test "remove: succeeds when the whole cluster is unreachable" {
  stub kubectl 'echo "The connection to the server was refused" >&2; exit 1'
  stub crictl 'exit 1'
  run_script member-remove.sh
  assert_success
  assert_output --partial "the API does not answer"
}

@test "remove: a drain that fails does not block the removal" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *drain*) exit 1 ;; esac; exit 0'
  run_script member-remove.sh
  assert_success
  assert_output --partial "drain did not complete"
  assert_call_order "member remove 91bc3c398fb3c146" "delete node c-cp-2"
}

@test "remove: the drain gets what the delete command's timeout leaves after etcd's share, so a refusal beats that timeout" {
  # The node's drain hangs (kubectl ignoring its --timeout), etcd refuses: under the delete
  # command's own timeout (here 155 s) the script still ends with its refusal (75), not 124. The
  # drain gets 155 - 90 (etcd) - 40 (final) - 10 = 15 s less the seconds already spent (the Node's
  # instance check first), so 10-15 s.
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *" drain "*) exec sleep 1000 ;; esac; exit 0'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; *"member remove"*) echo "Error: etcdserver: unhealthy cluster" >&2; exit 1 ;; esac ;; esac'
  export DELETE_BUDGET_SECONDS=155
  run timeout 155 bash "$SCRIPTS/member-remove.sh"
  assert_equal "$status" 75
  assert_call_order "^kubectl .*drain c-cp-2 .*--timeout=1[0-5]s" "member remove 91bc3c398fb3c146"
  assert_output --partial "drain did not complete; continuing"
  # A worker has no etcd share; less than 10 s left is no drain at all.
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  : >"$CALLS"
  DELETE_BUDGET_SECONDS=150 MEMBER_ROLE=worker MEMBER_NODE=c-worker-2 run_script member-remove.sh
  assert_call_order "^kubectl .*drain c-worker-2 .*--timeout=(9[0-9]|100)s"
  : >"$CALLS"
  DELETE_BUDGET_SECONDS=140 run_script member-remove.sh
  assert_output --partial "no time left to drain c-cp-2"
  [ "$(count_calls ' drain ')" -eq 0 ]
}

@test "remove: an attempt whose answer was lost went through: the next one's 'member not found' is success" {
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; *"member remove"*)
    if [ -f "$STATE/removed" ]; then echo "Error: etcdserver: member not found" >&2; else touch "$STATE/removed"; echo "Error: context deadline exceeded" >&2; fi; exit 1 ;; esac ;; esac'
  run_script member-remove.sh
  assert_success
  [ "$(count_calls 'member remove 91bc3c398fb3c146')" -eq 2 ]
  assert_call_order "member remove" "delete node c-cp-2"
  refute_output --partial "member removal failed"
}

@test "remove: etcd refusing the removal for quorum is retried, then a refusal naming the member fails it (75), keeping the Node" {
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "$MEMBERS" ;; *"member remove"*) echo "Error: etcdserver: unhealthy cluster" >&2; exit 1 ;; esac ;; esac'
  run_script member-remove.sh
  assert_equal "$status" 75
  [ "$(count_calls 'delete node')" -eq 0 ]
  assert_output --partial "its VM is kept"
  [ "$(count_calls 'member remove 91bc3c398fb3c146')" -eq 4 ]
  assert_output --partial "etcdserver: unhealthy cluster"
  assert_output --partial "REFUSED: etcd will not remove the member of c-cp-2 (91bc3c398fb3c146)"
}

@test "remove: the Node of the instance it was created for is drained, its etcd member removed, the Node deleted" {
  run_script member-remove.sh
  assert_success
  assert_output --partial "node c-cp-2 is instance 7003141592653589793, the machine this step was created for"
  assert_call_order "^kubectl .*get node c-cp-2 -o jsonpath=\{.metadata.annotations\['ha-k8s\\\\.io/instance-id'\]\}" \
    "^kubectl .*drain c-cp-2" "member remove 91bc3c398fb3c146" "^kubectl .*delete node c-cp-2"
}

@test "remove: a replacement machine with the same name and address (another instance) is left alone entirely" {
  NODE_INSTANCE=5550000000000000001 run_script member-remove.sh
  assert_success
  [ "$(count_calls 'cordon|drain|member remove|delete node')" -eq 0 ]
  assert_output --partial "SKIPPED: node c-cp-2 is now instance 5550000000000000001 (ha-k8s.io/instance-id), not instance 7003141592653589793 this step was created for"
  # A worker's removal alike.
  : >"$CALLS"
  NODE_INSTANCE=5550000000000000001 MEMBER_ROLE=worker MEMBER_NODE=c-worker-2 run_script member-remove.sh
  assert_success
  [ "$(count_calls 'cordon|drain|delete node')" -eq 0 ]
  assert_output --partial "SKIPPED: node c-worker-2 is now instance 5550000000000000001"
}

@test "remove: a Node joined before instance ids were recorded (no annotation) is removed as before" {
  NODE_INSTANCE="" run_script member-remove.sh
  assert_success
  assert_output --partial "carries no ha-k8s.io/instance-id"
  assert_call_order "^kubectl .*drain c-cp-2" "member remove 91bc3c398fb3c146" "^kubectl .*delete node c-cp-2"
}

@test "remove: a worker that is not in the cluster is nothing to undo: success at once, nothing touched" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *"get node"*) echo "Error from server (NotFound): nodes \"c-worker-2\" not found" >&2; exit 1 ;; esac; exit 0'
  SECONDS=0
  MEMBER_ROLE=worker MEMBER_NODE=c-worker-2 run timeout 10 bash "$SCRIPTS/member-remove.sh"
  assert_success
  [ "$SECONDS" -lt 5 ]
  [ "$(count_calls 'cordon|drain|delete node|^crictl')" -eq 0 ]
  assert_output --partial "node c-worker-2 is not in the cluster; nothing to drain"
}

@test "remove: an etcd member at the address with no Node proving whose it is is left alone, saying how to remove it" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; *"get node"*) echo "Error from server (NotFound): nodes \"c-cp-2\" not found" >&2; exit 1 ;; esac; exit 0'
  run_script member-remove.sh
  assert_success
  [ "$(count_calls 'member remove|delete node|drain')" -eq 0 ]
  assert_output --partial "SKIPPED: etcd member 91bc3c398fb3c146 (10.10.0.11) has no Node c-cp-2 proving it is instance 7003141592653589793"
  assert_output --partial "etcdctl member remove 91bc3c398fb3c146"
}

@test "remove: while the API does not answer nothing proves which machine it is: its etcd member is left alone too" {
  stub kubectl 'echo "The connection to the server was refused" >&2; exit 1'
  run_script member-remove.sh
  assert_success
  [ "$(count_calls '^crictl')" -eq 0 ]
  assert_output --partial "nothing proves which machine it is now"
}
