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

@test "the join bundle of a worker stages its JoinConfiguration 0600 and joins through the endpoint" {
  stub kubeadm '[ "$1" = join ] && { mkdir -p "$HA_K8S_ROOT/etc/kubernetes"; touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf" "$STATE/active-kubelet"; }; exit 0'
  run bash -s <"$RENDERED/ha-k8s-dev-worker-2/02-join.sh"
  assert_success
  stage="$HA_K8S_ROOT/var/lib/ha-k8s/steps/ha-k8s-dev-worker-2--join"
  assert_equal "$(stat -c %a "$stage/kubeadm-join.yaml")" 600
  grep -q "apiServerEndpoint: 10.10.0.2:6443" "$stage/kubeadm-join.yaml"
  [ -x "$stage/leave.sh" ] # staged for the delete-time action
  assert_call_order "^kubeadm join --config /.*/ha-k8s-dev-worker-2--join/kubeadm-join.yaml"
}

@test "the delete-time command runs the staged leave script" {
  plan="$RENDERED/plan.json"
  on_delete="$(node -e 'const p=require(process.argv[1]);console.log(p.steps.find(s=>s.id==="ha-k8s-dev-worker-2/join").onDelete)' "$plan")"
  [[ "$on_delete" == "sudo timeout 300 bash /var/lib/ha-k8s/steps/ha-k8s-dev-worker-2--join/leave.sh ||"* ]]
}
