#!/usr/bin/env bats
# The bundles exactly as Pulumi pipes them to `sudo bash -s` (rendered by `npm run render` for the
# dev stack), run with bash against stub commands: they stage their files root-only and run their
# script with the right inputs.

setup_file() {
  load helpers
  export RENDERED="$BATS_FILE_TMPDIR/render"
  (cd "$REPO" && node "$REPO/node_modules/ts-node/dist/bin.js" --transpile-only cli/render.ts --stack dev --out "$RENDERED" >/dev/null 2>&1)
}

setup() {
  load helpers
  setup_machine
  stub_node_machine
  unset HA_K8S_STAGE
}

@test "the prepare bundle of a worker stages the CRI-O drop-in and installs the pinned packages" {
  run bash -s <"$RENDERED/ha-k8s-dev-worker-1/01-prepare.sh"
  assert_success
  stage="$HA_K8S_ROOT/var/lib/ha-k8s/steps/ha-k8s-dev-worker-1--prepare"
  assert_equal "$(stat -c %a "$stage")" 700
  grep -q 'pause_image = "registry.k8s.io/pause:3.10.2"' "$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
  assert_call_order "^apt-get .* install .*kubelet=1.36.3-1.1" "^apt-mark hold"
}

@test "the join bundle of a worker stages its JoinConfiguration 0600, joins with it, then removes it" {
  stub curl 'case "$*" in *"/computeMetadata/v1/instance/id"*) echo 7003141592653589793 ;; *) echo ok ;; esac'
  stub kubeadm '
if [ "$1" = join ]; then
  stat -c %a "$3" >"$STATE/join-config-mode"; cp "$3" "$STATE/join-config"
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes"; touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf" "$STATE/active-kubelet"
fi'
  run bash -s <"$RENDERED/ha-k8s-dev-worker-2/02-join.sh"
  assert_success
  stage="$HA_K8S_ROOT/var/lib/ha-k8s/steps/ha-k8s-dev-worker-2--join"
  assert_equal "$(cat "$STATE/join-config-mode")" 600
  grep -q "apiServerEndpoint: 10.10.0.2:6443" "$STATE/join-config"
  [ ! -e "$stage/kubeadm-join.yaml" ] # the token does not stay on the machine
  assert_call_order "^kubeadm join --config /.*/ha-k8s-dev-worker-2--join/kubeadm-join.yaml"
}

@test "a failing step still removes its secrets" {
  stub kubeadm '[ "$1" = join ] && exit 1; exit 0'
  run bash -s <"$RENDERED/ha-k8s-dev-worker-2/02-join.sh"
  assert_failure
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s/steps/ha-k8s-dev-worker-2--join/kubeadm-join.yaml" ]
}

# A step's stored delete command, from plan.json.
delete_command() {
  node -e 'const p=require(process.argv[1]);console.log(p.steps.find(s=>s.id===process.argv[2]).onDelete)' "$RENDERED/plan.json" "$1"
}

# Runs a step's stored delete command exactly as Pulumi does (sudo is a pass-through here).
run_delete_command() {
  local command
  command="$(delete_command "$1")"
  stub sudo 'exec "$@"'
  run bash -c "$command"
}

@test "the ready bundle of a worker waits for its own Node with the kubelet's credentials" {
  run bash -s <"$RENDERED/ha-k8s-dev-worker-1/03-ready.sh"
  assert_success
  assert_call_order "^kubectl --kubeconfig $HA_K8S_ROOT/etc/kubernetes/kubelet.conf .*wait --for=condition=Ready --timeout=5s node/ha-k8s-dev-worker-1"
  [ "$(count_calls '^crictl')" -eq 0 ]
}

@test "a worker's removal drains it from its control plane, needing nothing staged before" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  run_delete_command "ha-k8s-dev-worker-1/removal"
  assert_success
  assert_call_order "^sudo timeout 300 bash -s" \
    "^kubectl --kubeconfig $HA_K8S_ROOT/etc/kubernetes/admin.conf .*drain ha-k8s-dev-worker-1 --ignore-daemonsets" \
    "^kubectl .*delete node ha-k8s-dev-worker-1 --ignore-not-found"
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s" ] # nothing staged, nothing left
}

@test "a control plane's delete command removes its etcd member" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "91bc3c398fb3c146, started, ha-k8s-dev-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false" ;; esac ;; esac'
  run_delete_command "ha-k8s-dev-cp-2/member"
  assert_success
  assert_call_order "drain ha-k8s-dev-cp-2" "member remove 91bc3c398fb3c146" "delete node ha-k8s-dev-cp-2"
}

@test "a join's delete command resets the node it was created for, and no other" {
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  # The offline render names the instance by a placeholder; pulumi up puts the VM's instanceId there.
  local command
  command="$(delete_command "ha-k8s-dev-worker-2/join")"
  command="${command//<instance id of ha-k8s-dev-worker-2>/7003141592653589793}"
  stub sudo 'exec "$@"'
  stub curl 'case "$*" in *"/computeMetadata/v1/instance/id"*) echo 7003141592653589793 ;; *) echo ok ;; esac'
  run bash -c "$command"
  assert_success
  assert_call_order "^kubeadm reset -f"
  # A machine recreated with the same name and address (another instance) is left alone.
  : >"$CALLS"
  stub curl 'case "$*" in *"/computeMetadata/v1/instance/id"*) echo 5550000000000000001 ;; *) echo ok ;; esac'
  run bash -c "$command"
  assert_success
  assert_output --partial "SKIPPED"
  ! grep -q "^kubeadm reset" "$CALLS"
}

@test "a delete command that cannot run its action does not fail the teardown" {
  stub sudo 'exit 1'
  run bash -c "$(delete_command ha-k8s-dev-worker-2/join)"
  assert_success
  assert_output --partial "did not complete; continuing teardown"
}

@test "a control plane's delete command fails (75) when etcd refuses the removal for quorum, so its VM is kept" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "91bc3c398fb3c146, started, ha-k8s-dev-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false" ;; *"member remove"*) echo "Error: etcdserver: unhealthy cluster" >&2; exit 1 ;; esac ;; esac'
  run_delete_command "ha-k8s-dev-cp-2/member"
  assert_equal "$status" 75
  assert_output --partial "REFUSED: etcd will not remove the member of ha-k8s-dev-cp-2"
  refute_output --partial "continuing teardown"
}
