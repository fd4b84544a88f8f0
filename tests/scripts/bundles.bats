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
  [ -x "$stage/on-delete.sh" ] && [ -x "$stage/leave.sh" ] # staged for the delete-time action
  assert_call_order "^kubeadm join --config /.*/ha-k8s-dev-worker-2--join/kubeadm-join.yaml"
}

@test "a failing step still removes its secrets" {
  stub kubeadm '[ "$1" = join ] && exit 1; exit 0'
  run bash -s <"$RENDERED/ha-k8s-dev-worker-2/02-join.sh"
  assert_failure
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s/steps/ha-k8s-dev-worker-2--join/kubeadm-join.yaml" ]
}

# Runs a step's stored delete command exactly as Pulumi does (sudo is a pass-through here).
run_delete_command() {
  local command
  command="$(node -e 'const p=require(process.argv[1]);console.log(p.steps.find(s=>s.id===process.argv[2]).onDelete)' "$RENDERED/plan.json" "$1")"
  stub sudo 'exec "$@"'
  run bash -c "${command//\/var\/lib\/ha-k8s/$HA_K8S_ROOT/var/lib/ha-k8s}"
}

@test "a worker's delete command drains it with the inputs its create step staged" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  run bash -s <"$RENDERED/ha-k8s-dev-cp-1/09-member-ha-k8s-dev-worker-1.sh"
  assert_success
  : >"$CALLS"
  run_delete_command "ha-k8s-dev-worker-1/member"
  assert_success
  assert_call_order "^sudo timeout 300 bash .*/ha-k8s-dev-worker-1--member/on-delete.sh" \
    "^kubectl .*drain ha-k8s-dev-worker-1 --ignore-daemonsets" "^kubectl .*delete node ha-k8s-dev-worker-1 --ignore-not-found"
}

@test "a control plane's delete command removes its etcd member" {
  stub kubectl 'case "$*" in *"get --raw /readyz"*) echo ok ;; esac; exit 0'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) case "$*" in *"member list"*) echo "91bc3c398fb3c146, started, ha-k8s-dev-cp-2, https://10.10.0.11:2380, https://10.10.0.11:2379, false" ;; esac ;; esac'
  run bash -s <"$RENDERED/ha-k8s-dev-cp-1/05-member-ha-k8s-dev-cp-2.sh"
  : >"$CALLS"
  run_delete_command "ha-k8s-dev-cp-2/member"
  assert_success
  assert_call_order "drain ha-k8s-dev-cp-2" "member remove 91bc3c398fb3c146" "delete node ha-k8s-dev-cp-2"
}

@test "a delete command whose step never ran does not fail the teardown" {
  run_delete_command "ha-k8s-dev-worker-2/join"
  assert_success
  assert_output --partial "did not complete; continuing teardown"
}
