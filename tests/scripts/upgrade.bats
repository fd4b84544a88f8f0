#!/usr/bin/env bats
# The upgrade scripts (upgrade-node.sh, upgrade-drain.sh, upgrade-uncordon.sh; the final check is
# verify.sh with K8S_VERSION, in verify.bats)
# against a stub machine whose state follows what they do: packages, kubeadm's manifests and
# cluster configuration, the Node's kubelet version, cordon state.

setup() {
  load helpers
  setup_machine
  stub_node_machine
  export NODE_NAME=c-cp-1 NODE_ROLE=control-plane UPGRADE_ACTION=apply
  export K8S_MINOR=1.37 K8S_VERSION=v1.37.2 K8S_DEB_VERSION=1.37.2-1.1 DRAIN_TIMEOUT_SECONDS=600
  export KUBERNETES_APT_REPO=https://pkgs.k8s.io/core:/stable:/v1.37/deb/
  export CRIO_APT_REPO=https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.37/deb/
  export KUBECONFIG_PATH=/etc/kubernetes/admin.conf
  printf '[crio.image]\npause_image = "registry.k8s.io/pause:3.10.2"\n' >"$HA_K8S_STAGE/crio.conf"
  # A node at 1.36.3: its packages, kubeadm's manifest, the cluster's configuration, its Node.
  for pkg in kubeadm kubelet kubectl; do echo 1.36.3-1.1 >"$STATE/pkg-$pkg"; done
  echo 1.36.2-1.1 >"$STATE/pkg-cri-o"
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests"
  echo "    image: registry.k8s.io/kube-apiserver:v1.36.3" >"$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  echo "kubernetesVersion: v1.36.3" >"$STATE/cluster-config"
  echo v1.36.3 >"$STATE/node-version"
  # apt installs from the repository configured last: unversioned packages (cri-o) come from its stream.
  stub apt-get '
case " $* " in
  *" install "*)
    for arg in "$@"; do
      case "$arg" in -*|install) ;; *=*) echo "${arg#*=}" >"$STATE/pkg-${arg%%=*}" ;; *) echo "$K8S_MINOR.0-1.1" >"$STATE/pkg-$arg" ;; esac
      case "$arg" in kubelet=*) ln -sfn "/usr/bin/kubelet (deleted)" "$HA_K8S_ROOT/proc/$(cat "$STATE/kubelet-pid")/exe" ;; esac
      case "$arg" in cri-o) ln -sfn "/usr/bin/crio (deleted)" "$HA_K8S_ROOT/proc/$(cat "$STATE/crio-pid")/exe" ;; esac
    done ;;
esac'
  # kubelet restarted: the Node reports the installed kubelet's version, and a new process (MainPID)
  # runs the installed binary. Installing the kubelet package replaces the running one's binary; so
  # does installing CRI-O's for crio.
  mkdir -p "$HA_K8S_ROOT/proc/4241" "$HA_K8S_ROOT/proc/5151"
  ln -s /usr/bin/kubelet "$HA_K8S_ROOT/proc/4241/exe"
  ln -s /usr/bin/crio "$HA_K8S_ROOT/proc/5151/exe"
  echo 4241 >"$STATE/kubelet-pid"
  echo 5151 >"$STATE/crio-pid"
  # CRI-O as its source behaves (server/server.go wipeIfAppropriate): a start with another minor than
  # the one that ran last removes every pod here; the kubelet (when running, or once started) brings
  # the static pods back, the API server answering after 3 polls. A kubelet running through CRI-O's
  # wipe is recorded ($STATE/kubelet-saw-wipe): the order under test never lets that happen.
  echo 1.36 >"$STATE/crio-ran-minor"
  stub systemctl '
unit="${!#}"
case "$1" in
  show) cat "$STATE/$unit-pid" 2>/dev/null ;;
  restart) touch "$STATE/active-$unit"
    pid=$(( $(cat "$STATE/$unit-pid") + 1 )); mkdir -p "$HA_K8S_ROOT/proc/$pid"
    ln -sfn "/usr/bin/$unit" "$HA_K8S_ROOT/proc/$pid/exe"; echo "$pid" >"$STATE/$unit-pid"
    if [ "$unit" = crio ]; then
      minor="$(cut -d. -f1,2 "$STATE/pkg-cri-o")"
      if [ "$minor" != "$(cat "$STATE/crio-ran-minor")" ]; then
        touch "$STATE/pods-gone"
        [ -f "$STATE/kubelet-stopped" ] || touch "$STATE/kubelet-saw-wipe"
      fi
      echo "$minor" >"$STATE/crio-ran-minor"
    fi
    if [ "$unit" = kubelet ]; then
      echo "v$(cut -d- -f1 "$STATE/pkg-kubelet")" >"$STATE/node-version"
      rm -f "$STATE/kubelet-stopped"
      [ ! -f "$STATE/pods-gone" ] || { rm "$STATE/pods-gone"; echo 3 >"$STATE/pods-starting"; }
    fi ;;
  stop) rm -f "$STATE/active-$unit"; [ "$unit" != kubelet ] || touch "$STATE/kubelet-stopped" ;;
  start|reload) touch "$STATE/active-$unit" ;;
  is-active) [ -f "$STATE/active-$unit" ] ;;
esac; exit 0'
  stub kubeadm '
case "$1 $2" in
  "upgrade plan") [ -f "$STATE/plan-refuses" ] && { printf "[preflight] Some fatal errors occurred:\n\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [c-cp-2]\nerror: [upgrade/health] FATAL: preflight checks failed\n" >&2; exit 1; }; echo "You can now apply the upgrade by executing: kubeadm upgrade apply $3" ;;
  "upgrade apply") [ -f "$STATE/apply-refuses" ] && { printf "error: error execution phase preflight: the version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to \"%s\" is too high; kubeadm can upgrade only 1 minor version at a time\n" "$3" >&2; exit 1; }
    [ -f "$STATE/apply-fails" ] && { echo "error: error execution phase control-plane: couldn'"'"'t complete the static pod upgrade: timed out waiting for the condition" >&2; exit 1; }
    echo "kubernetesVersion: $3" >"$STATE/cluster-config"
    echo "    image: registry.k8s.io/kube-apiserver:$3" >"$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
    # kubeadm'"'"'s later phases (kubelet-config, addon, post-upgrade) run after the manifests are written.
    [ -f "$STATE/addon-fails" ] && { echo "error: error execution phase addon/coredns: unable to update deployment: etcdserver: request timed out" >&2; exit 1; }
    echo "$3" >"$STATE/addons" ;;
  "upgrade node") echo "    image: registry.k8s.io/kube-apiserver:'"$K8S_VERSION"'" >"$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
    [ -f "$STATE/addon-fails" ] && { echo "error: error execution phase addon/kube-proxy: unable to update daemonset: etcdserver: request timed out" >&2; exit 1; }
    echo "'"$K8S_VERSION"'" >"$STATE/addons" ;;
esac'
  stub kubectl '
case "$*" in
  *"get --raw /readyz"*) echo ok ;;
  *"get --raw /version"*) printf "{\n  \"gitVersion\": \"%s\"\n}\n" "$(cat "$STATE/api-version" 2>/dev/null || cat "$STATE/node-version")" ;;
  *"get configmap kubeadm-config"*) cat "$STATE/cluster-config" ;;
  *"jsonpath={.status.nodeInfo.kubeletVersion}"*) node="$(sed -E "s/.*get node ([^ ]+) .*/\1/" <<<"$*")"; cat "$STATE/node-version-$node" 2>/dev/null || cat "$STATE/node-version" ;;
  *"jsonpath={.spec.unschedulable}"*) [ -f "$STATE/cordoned" ] && echo true ;;
  *" drain "*) touch "$STATE/cordoned"; [ -f "$STATE/drain-fails" ] && {
      # kubectl 1.36'"'"'s own lines (tests/control-plane/upgrade.test.ts shows them with the real one).
      echo "error when evicting pods/\"cart-1\" -n \"shop\" (will retry after 5s): Cannot evict pod as it would violate the pod'"'"'s disruption budget." >&2
      echo "error: unable to drain node \"c-cp-1\" due to error: error when evicting pods/\"cart-1\" -n \"shop\": global timeout reached: 600s, continuing command..." >&2
      echo "error when evicting pods/\"cart-1\" -n \"shop\": global timeout reached: 600s" >&2; exit 1; }; exit 0 ;;
  # namespace/name and owner kinds, one pod per line: DaemonSet and mirror (Node-owned) pods stay.
  *"get pods"*) printf "shop/cart-1 ReplicaSet\nkube-system/kube-proxy-x DaemonSet\nkube-system/kube-apiserver-c-cp-1 Node\ndefault/standalone \n" ;;
  *" uncordon "*) rm -f "$STATE/cordoned" ;;
esac; exit 0'
  stub curl 'case "$*" in *Release.key*) out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; echo key >"$out" ;;
  *10248/healthz*) [ ! -f "$STATE/kubelet-unhealthy" ] || exit 22; echo ok ;;
  *6443/readyz*) [ ! -f "$STATE/pods-gone" ] || exit 7
    if [ -f "$STATE/pods-starting" ]; then
      left=$(( $(cat "$STATE/pods-starting") - 1 ))
      if [ "$left" -gt 0 ]; then echo "$left" >"$STATE/pods-starting"; exit 7; fi
      rm "$STATE/pods-starting"
    fi
    echo ok ;;
  *) echo ok ;; esac'
  stub crictl 'case "$1" in ps) echo etcd-id ;; exec) echo "127.0.0.1:2379 is healthy" ;; esac'
}

@test "first control plane: repositories, kubeadm, plan, apply, drain, CRI-O, kubelet and kubectl, back, uncordon" {
  run_script upgrade-node.sh
  assert_success
  assert_call_order "^curl .*pkgs.k8s.io/core:/stable:/v1.37/deb/Release.key" "^curl .*isv:/cri-o:/stable:/v1.37/deb/Release.key" \
    "^apt-get .* update" "^apt-get .* install .*kubeadm=1.37.2-1.1" "^kubeadm upgrade plan v1.37.2" \
    "^kubeadm upgrade apply v1.37.2 --yes" "^kubectl .*drain c-cp-1 --ignore-daemonsets --delete-emptydir-data --timeout=600s" \
    "^systemctl stop kubelet" "^apt-get .* install .*cri-o" "^systemctl restart crio" \
    "^apt-get .* install .*kubelet=1.37.2-1.1 kubectl=1.37.2-1.1" "^systemctl daemon-reload" "^systemctl restart kubelet" \
    "^kubectl .*uncordon c-cp-1"
  grep -q 'pause_image = "registry.k8s.io/pause:3.10.2"' "$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/sources.list.d/kubernetes.list")" \
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $KUBERNETES_APT_REPO /"
  assert_output --partial "c-cp-1 runs Kubernetes v1.37.2"
}

@test "staged repository keys: the new minor's repositories get them, no Release.key is downloaded" {
  cp "$REPO/tests/artifacts/fixtures/openpgp-public-key.asc" "$HA_K8S_STAGE/kubernetes-release.key"
  cp "$REPO/tests/artifacts/fixtures/openpgp-public-key.asc" "$HA_K8S_STAGE/cri-o-release.key"
  run_script upgrade-node.sh
  assert_success
  [ "$(count_calls 'Release.key')" -eq 0 ]
  assert_call_order "^gpg --batch --yes --dearmor -o .* $HA_K8S_STAGE/kubernetes-release.key$" \
    "^gpg --batch --yes --dearmor -o .* $HA_K8S_STAGE/cri-o-release.key$" "^apt-get .* update" \
    "^apt-get .* install .*kubeadm=1.37.2-1.1"
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/sources.list.d/cri-o.list")" \
    "deb [signed-by=/etc/apt/keyrings/cri-o-apt-keyring.gpg] $CRIO_APT_REPO /"
}

@test "a second run changes nothing" {
  run_script upgrade-node.sh
  : >"$CALLS"
  before="$(root_fingerprint)"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "already runs Kubernetes v1.37.2; nothing to do"
  [ "$(count_calls '^(apt-get|kubeadm|systemctl restart|kubectl .*drain)')" -eq 0 ]
  assert_equal "$(root_fingerprint)" "$before"
}

@test "resumed after kubeadm upgrade apply recorded its success: no second apply, the node's part goes on" {
  run_script upgrade-node.sh
  assert_success
  # The node's part undone: back to the old kubelet, CRI-O of the old minor, cordoned.
  for pkg in kubelet kubectl; do echo 1.36.3-1.1 >"$STATE/pkg-$pkg"; done
  echo 1.36.2-1.1 >"$STATE/pkg-cri-o"
  touch "$STATE/cordoned"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "kubeadm upgrade apply v1.37.2 already succeeded on c-cp-1"
  [ "$(count_calls '^kubeadm upgrade')" -eq 0 ]
  assert_call_order "^kubectl .*drain c-cp-1" "^systemctl restart kubelet" "^kubectl .*uncordon c-cp-1"
}

# kubeadm's later phases (kubelet-config, addon, post-upgrade) run after the control-plane phase
# wrote the manifests; kubeadm's upgrade is idempotent ("Recovering from a failure state").
@test "interrupted after kubeadm's control-plane phase (manifests and configuration at the target, no success recorded): apply runs again, then the addons are at the target" {
  touch "$STATE/addon-fails"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "error execution phase addon/coredns"
  assert_output --partial "kubeadm upgrade apply v1.37.2 failed (output above); fix the cause and run pulumi up again to resume"
  grep -q "kube-apiserver:v1.37.2" "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  [ ! -f "$STATE/addons" ]
  [ "$(count_calls 'drain|install .*kubelet=')" -eq 0 ]
  # The retry: the same kubeadm step again (not its plan: the cluster has changed already).
  rm "$STATE/addon-fails"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "resuming kubeadm upgrade apply v1.37.2"
  [ "$(count_calls '^kubeadm upgrade plan')" -eq 0 ]
  assert_call_order "^kubeadm upgrade apply v1.37.2 --yes" "^kubectl .*drain c-cp-1" "^systemctl restart kubelet" \
    "^kubectl .*uncordon c-cp-1"
  assert_equal "$(cat "$STATE/addons")" v1.37.2
  [ -f "$HA_K8S_ROOT/var/lib/ha-k8s/upgrade/kubeadm-upgrade-apply-v1.37.2.done" ]
}

@test "a run stopped after kubeadm upgrade apply's control-plane phase (manifest at the target, no marker): apply runs again; a failure there is not called 'unchanged'" {
  echo "kubernetesVersion: v1.37.2" >"$STATE/cluster-config"
  echo "    image: registry.k8s.io/kube-apiserver:v1.37.2" >"$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  echo 1.37.2-1.1 >"$STATE/pkg-kubeadm"
  touch "$STATE/apply-refuses"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "kubeadm upgrade apply refuses v1.37.2 in its preflight checks (its reasons above); an earlier run already moved part of the cluster to v1.37.2"
  refute_output --partial "the cluster is unchanged"
  rm "$STATE/apply-refuses"
  run_script upgrade-node.sh
  assert_success
  assert_equal "$(cat "$STATE/addons")" v1.37.2
}

@test "the last control plane: kubeadm upgrade node interrupted after its control-plane phase runs again, and upgrades the addons" {
  export UPGRADE_ACTION=node NODE_NAME=c-cp-3
  echo 1.37.2-1.1 >"$STATE/pkg-kubeadm"
  touch "$STATE/addon-fails"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "error execution phase addon/kube-proxy"
  assert_output --partial "kubeadm upgrade node failed (output above); fix the cause and run pulumi up again to resume"
  grep -q "kube-apiserver:v1.37.2" "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  rm "$STATE/addon-fails"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "resuming kubeadm upgrade node"
  assert_call_order "^kubeadm upgrade node" "^kubectl .*drain c-cp-3" "^systemctl restart kubelet" "^kubectl .*uncordon c-cp-3"
  assert_equal "$(cat "$STATE/addons")" v1.37.2
  # Recorded now: a third run leaves kubeadm alone.
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "already runs Kubernetes v1.37.2; nothing to do"
  [ "$(count_calls '^kubeadm upgrade')" -eq 0 ]
}

# CRI-O's start after a minor change removes every pod (cri-o server/server.go wipeIfAppropriate,
# internal/version/version.go shouldCrioWipe): the stub CRI-O does the same.
@test "a new CRI-O minor: the kubelet stopped, CRI-O upgraded and restarted, the kubelet upgraded and started, the static pods waited for" {
  run_script upgrade-node.sh
  assert_success
  assert_call_order "^kubectl .*drain c-cp-1" "^systemctl stop kubelet" "^apt-get .* install .*cri-o" "^systemctl restart crio" \
    "^apt-get .* install .*kubelet=1.37.2-1.1" "^systemctl restart kubelet" "^curl .*127.0.0.1:6443/readyz" \
    "^crictl exec .* endpoint health" "^kubectl .*uncordon c-cp-1"
  # Nothing started the kubelet between its stop and CRI-O's restart; CRI-O's wipe met no kubelet.
  [ ! -f "$STATE/kubelet-saw-wipe" ]
  between="$(sed -n '/^systemctl stop kubelet/,/^systemctl restart crio/p' "$CALLS")"
  [ "$(grep -cE '^systemctl (start|restart) kubelet' <<<"$between")" -eq 0 ]
  # The step ended only once the API server answered again (3 polls after the kubelet's start).
  [ "$(count_calls '6443/readyz')" -ge 3 ]
  assert_output --partial "its start removes every pod of c-cp-1"
  refute_output --partial "conmon"
}

@test "a worker with a new CRI-O minor: the same order, no drain of its own" {
  rm "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  UPGRADE_ACTION=node NODE_ROLE=worker NODE_NAME=c-worker-1 run_script upgrade-node.sh
  assert_success
  assert_call_order "^kubeadm upgrade node" "^systemctl stop kubelet" "^apt-get .* install .*cri-o" "^systemctl restart crio" \
    "^apt-get .* install .*kubelet=1.37.2-1.1" "^systemctl restart kubelet" "^curl .*10248/healthz"
  [ ! -f "$STATE/kubelet-saw-wipe" ]
  [ "$(count_calls 'drain|uncordon')" -eq 0 ]
}

@test "CRI-O of the same minor, only its configuration new: crio restarted under the running kubelet (no wipe), the kubelet not stopped" {
  echo 1.37.0-1.1 >"$STATE/pkg-cri-o"
  echo 1.37 >"$STATE/crio-ran-minor"
  mkdir -p "$HA_K8S_ROOT/etc/crio/crio.conf.d"
  printf '[crio.image]
pause_image = "registry.k8s.io/pause:3.10.1"
' >"$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "same minor: running containers stay up"
  [ "$(count_calls '^systemctl stop kubelet|install .*cri-o')" -eq 0 ]
  assert_call_order "^kubectl .*drain c-cp-1" "^systemctl restart crio" "^systemctl restart kubelet"
  [ ! -f "$STATE/kubelet-saw-wipe" ]
}

@test "a run stopped between CRI-O's package and its restart: the old crio still runs, so the kubelet is stopped and crio restarted" {
  run_script upgrade-node.sh
  assert_success
  # CRI-O's package at the target, but the running crio's binary was replaced (not restarted).
  ln -sfn "/usr/bin/crio (deleted)" "$HA_K8S_ROOT/proc/$(cat "$STATE/crio-pid")/exe"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  refute_output --partial "nothing to do"
  assert_call_order "^systemctl stop kubelet" "^systemctl restart crio" "^systemctl restart kubelet"
  [ "$(count_calls '^apt-get .* install|^kubeadm upgrade')" -eq 0 ]
}

# kubeadm's own messages (seen with the real kubeadm 1.37.2, tests/control-plane/upgrade.test.ts):
# the plan checks the cluster's health, apply's preflight the version policy.
@test "kubeadm upgrade plan refusing stops before anything changes on the cluster, with kubeadm's reason" {
  touch "$STATE/plan-refuses"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [c-cp-2]"
  assert_output --partial "kubeadm upgrade plan refuses v1.37.2 (its reasons above); the cluster is unchanged (only this node's package repositories and kubeadm are at 1.37)"
  [ "$(count_calls '^kubeadm upgrade apply|drain')" -eq 0 ]
}

@test "kubeadm upgrade apply refusing in its preflight (the version policy) stops with the cluster unchanged" {
  touch "$STATE/apply-refuses"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial 'Specified version to upgrade to "v1.37.2" is too high; kubeadm can upgrade only 1 minor version at a time'
  assert_output --partial "kubeadm upgrade apply refuses v1.37.2 in its preflight checks (its reasons above); the cluster is unchanged"
  [ "$(count_calls 'drain|install .*kubelet=')" -eq 0 ]
}

@test "kubeadm upgrade apply failing after its preflight stops the upgrade, to be resumed" {
  touch "$STATE/apply-fails"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "error execution phase control-plane"
  assert_output --partial "kubeadm upgrade apply v1.37.2 failed (output above); fix the cause and run pulumi up again to resume"
  refute_output --partial "the cluster is unchanged"
  [ "$(count_calls 'drain|install .*kubelet=')" -eq 0 ]
}

@test "a drain blocked by a PodDisruptionBudget stops the upgrade, naming the node and the pods" {
  touch "$STATE/drain-fails"
  run_script upgrade-node.sh
  assert_failure
  assert_output --partial "drain of c-cp-1 failed (at most 600s): error when evicting pods/\"cart-1\" -n \"shop\": global timeout reached: 600s (the API server: Cannot evict pod as it would violate the pod's disruption budget.); pods still on it: shop/cart-1 default/standalone; the upgrade stops here, c-cp-1 stays cordoned"
  [ "$(count_calls 'install .*kubelet=')" -eq 0 ]
}

@test "another control plane: kubeadm upgrade node, not apply" {
  UPGRADE_ACTION=node NODE_NAME=c-cp-2 run_script upgrade-node.sh
  assert_success
  assert_call_order "^kubeadm upgrade node" "^kubectl .*drain c-cp-2" "^systemctl restart kubelet" "^kubectl .*uncordon c-cp-2"
  [ "$(count_calls '^kubeadm upgrade (plan|apply)')" -eq 0 ]
}

@test "a worker: kubeadm upgrade node and its packages; its control plane drains and uncordons it" {
  rm "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  UPGRADE_ACTION=node NODE_ROLE=worker NODE_NAME=c-worker-1 run_script upgrade-node.sh
  assert_success
  assert_call_order "^kubeadm upgrade node" "^systemctl restart crio" "^systemctl restart kubelet"
  [ "$(count_calls 'drain|uncordon|crictl')" -eq 0 ]
}

@test "a worker already upgraded: nothing to do; a second run changes nothing" {
  rm "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  export UPGRADE_ACTION=node NODE_ROLE=worker NODE_NAME=c-worker-1
  run_script upgrade-node.sh
  assert_success
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_output --partial "c-worker-1 already runs Kubernetes v1.37.2; nothing to do"
  [ "$(count_calls '^(apt-get|kubeadm|systemctl restart)')" -eq 0 ]
}

@test "a worker whose run stopped after the kubelet package, before the restart: the old kubelet still runs, so it is restarted" {
  rm "$HA_K8S_ROOT/etc/kubernetes/manifests/kube-apiserver.yaml"
  export UPGRADE_ACTION=node NODE_ROLE=worker NODE_NAME=c-worker-1
  run_script upgrade-node.sh
  assert_success
  # The packages are at the target, but the running kubelet's binary was replaced (not restarted).
  ln -sfn "/usr/bin/kubelet (deleted)" "$HA_K8S_ROOT/proc/$(cat "$STATE/kubelet-pid")/exe"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  refute_output --partial "nothing to do"
  assert_call_order "^systemctl restart kubelet"
  [ "$(count_calls '^apt-get .* install')" -eq 0 ]
  # Not running at all, or running but unhealthy: restarted too.
  echo 0 >"$STATE/kubelet-pid"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_success
  assert_call_order "^systemctl restart kubelet"
  touch "$STATE/kubelet-unhealthy"
  : >"$CALLS"
  run_script upgrade-node.sh
  assert_failure
  assert_call_order "^systemctl restart kubelet"
  assert_output --partial "the kubelet on c-worker-1 did not come back"
}

@test "drain (on a control plane): a worker at the old version is drained; one already upgraded is not" {
  NODE_NAME=c-worker-1 run_script upgrade-drain.sh
  assert_success
  assert_call_order "^kubectl .*drain c-worker-1 --ignore-daemonsets --delete-emptydir-data --timeout=600s"
  : >"$CALLS"
  echo v1.37.2 >"$STATE/node-version-c-worker-2"
  NODE_NAME=c-worker-2 run_script upgrade-drain.sh
  assert_success
  assert_output --partial "already runs kubelet v1.37.2; not draining it"
  [ "$(count_calls 'drain')" -eq 0 ]
}

@test "uncordon waits for the new kubelet version, then uncordons; an old version keeps it cordoned" {
  echo v1.37.2 >"$STATE/node-version-c-worker-1"
  NODE_NAME=c-worker-1 run_script upgrade-uncordon.sh
  assert_success
  assert_call_order "^kubectl .*wait --for=condition=Ready --timeout=5s node/c-worker-1" "^kubectl .*uncordon c-worker-1"
  : >"$CALLS"
  NODE_NAME=c-worker-2 run_script upgrade-uncordon.sh
  assert_failure
  assert_output --partial "c-worker-2 reports kubelet v1.36.3, not v1.37.2; it stays cordoned"
  [ "$(count_calls 'uncordon')" -eq 0 ]
}
