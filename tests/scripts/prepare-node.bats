#!/usr/bin/env bats
# scripts/prepare-node.sh against stub apt/systemd/kernel commands.

setup() {
  load helpers
  setup_machine
  stub_node_machine
  mkdir -p "$HA_K8S_ROOT/etc/cni/net.d"
  printf 'UUID=abc / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n' >"$HA_K8S_ROOT/etc/fstab"
  echo '{"cniVersion":"1.0.0"}' >"$HA_K8S_ROOT/etc/cni/net.d/10-crio-bridge.conflist"
  printf '[crio.image]\npause_image = "registry.k8s.io/pause:3.10.1"\n' >"$HA_K8S_STAGE/crio-1.35.conf"
  printf '[crio.image]\npause_image = "registry.k8s.io/pause:3.10.2"\n' >"$HA_K8S_STAGE/crio-1.36.conf"
  export NODE_ROLE=control-plane K8S_DEFAULT_MINOR=1.36 API_ENDPOINT=10.10.0.2:6443
  export K8S_RELEASES="1.35 1.35.4 1.35.4-1.1 https://pkgs.k8s.io/core:/stable:/v1.35/deb/ https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.35/deb/
1.36 1.36.3 1.36.3-1.1 https://pkgs.k8s.io/core:/stable:/v1.36/deb/ https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.36/deb/"
  export KUBERNETES_APT_REPO=https://pkgs.k8s.io/core:/stable:/v1.36/deb/
  export CRIO_APT_REPO=https://download.opensuse.org/repositories/isv:/cri-o:/stable:/v1.36/deb/
  export REGISTRIES_DROP_IN=/etc/containers/registries.conf.d/50-ha-k8s-mirror.conf
}

@test "first run: the steps in order, one apt-get update, pinned packages held" {
  run_script prepare-node.sh
  assert_success
  assert_call_order "^cloud-init status --wait" "^swapoff -a" "^modprobe overlay" "^modprobe br_netfilter" \
    "^sysctl --system" "^curl .*pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key" \
    "^curl .*isv:/cri-o:/stable:/v1.36/deb/Release.key" "^apt-get .* update" \
    "^apt-get .* install .*cri-o cri-tools kubelet=1.36.3-1.1 kubeadm=1.36.3-1.1 kubectl=1.36.3-1.1" \
    "^apt-mark hold cri-o cri-tools kubelet kubeadm kubectl" "^systemctl enable crio" "^systemctl (start|restart) crio" \
    "^systemctl enable kubelet" "^kubeadm config images pull --kubernetes-version v1.36.3 --cri-socket unix:///var/run/crio/crio.sock"
  [ "$(count_calls '^apt-get .* update')" -eq 1 ]
}

@test "first run: swap off in fstab, modules, sysctls, repositories, CRI-O drop-in, no bridge CNI" {
  run_script prepare-node.sh
  assert_success
  run grep -c '^# disabled by ha-k8s: /swapfile none swap' "$HA_K8S_ROOT/etc/fstab"
  assert_output 1
  assert_equal "$(cat "$HA_K8S_ROOT/etc/modules-load.d/k8s.conf")" $'overlay\nbr_netfilter'
  run grep -c 'net.ipv4.ip_forward *= 1' "$HA_K8S_ROOT/etc/sysctl.d/99-kubernetes.conf"
  assert_output 1
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/sources.list.d/kubernetes.list")" \
    "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $KUBERNETES_APT_REPO /"
  assert_equal "$(cat "$HA_K8S_ROOT/etc/apt/sources.list.d/cri-o.list")" \
    "deb [signed-by=/etc/apt/keyrings/cri-o-apt-keyring.gpg] $CRIO_APT_REPO /"
  cmp "$HA_K8S_STAGE/crio-1.36.conf" "$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
  [ ! -e "$HA_K8S_ROOT/etc/cni/net.d/10-crio-bridge.conflist" ]
  [ -e "$HA_K8S_ROOT/etc/cni/net.d/10-crio-bridge.conflist.disabled" ]
  grep -q 'runtime-endpoint: unix:///var/run/crio/crio.sock' "$HA_K8S_ROOT/etc/crictl.yaml"
}

@test "second run changes nothing: no apt-get update or install, no restart, same files" {
  run_script prepare-node.sh
  assert_success
  before="$(root_fingerprint)"
  : >"$CALLS"
  run_script prepare-node.sh
  assert_success
  assert_equal "$(root_fingerprint)" "$before"
  [ "$(count_calls '^apt-get')" -eq 0 ]
  [ "$(count_calls '^systemctl restart')" -eq 0 ]
  [ "$(count_calls '^sysctl --system')" -eq 0 ]
  assert_output --partial "already installed"
}

@test "cri-tools (crictl) is installed by name: a machine with everything else installs it" {
  # pkgs.k8s.io's kubeadm has no Depends from 1.32 on (kubernetes/release#4387): nothing pulls it in.
  run_script prepare-node.sh
  rm "$STATE/pkg-cri-tools"
  : >"$CALLS"
  run_script prepare-node.sh
  assert_success
  assert_call_order "^apt-get .* update" "^apt-get .* install .*cri-tools"
}

@test "a changed CRI-O drop-in restarts crio once" {
  run_script prepare-node.sh
  printf '[crio.image]\npause_image = "registry.k8s.io/pause:3.11"\n' >"$HA_K8S_STAGE/crio-1.36.conf"
  : >"$CALLS"
  run_script prepare-node.sh
  assert_success
  [ "$(count_calls '^systemctl restart crio')" -eq 1 ]
  [ "$(count_calls '^apt-get')" -eq 0 ]
}

@test "staged repository keys (kubernetesPackageKey, crioPackageKey): installed, no Release.key downloaded" {
  cp "$REPO/tests/artifacts/fixtures/openpgp-public-key.asc" "$HA_K8S_STAGE/kubernetes-release.key"
  cp "$REPO/tests/artifacts/fixtures/openpgp-public-key.asc" "$HA_K8S_STAGE/cri-o-release.key"
  run_script prepare-node.sh
  assert_success
  [ "$(count_calls 'Release.key')" -eq 0 ]
  assert_call_order "^gpg --batch --yes --dearmor -o .* $HA_K8S_STAGE/kubernetes-release.key$" \
    "^gpg --batch --yes --dearmor -o .* $HA_K8S_STAGE/cri-o-release.key$" "^apt-get .* update"
  [ -f "$HA_K8S_ROOT/etc/apt/keyrings/kubernetes-apt-keyring.gpg" ] && [ -f "$HA_K8S_ROOT/etc/apt/keyrings/cri-o-apt-keyring.gpg" ]
}

@test "one staged key: that repository's key is the staged one, the other's is downloaded" {
  cp "$REPO/tests/artifacts/fixtures/openpgp-public-key.asc" "$HA_K8S_STAGE/cri-o-release.key"
  run_script prepare-node.sh
  assert_success
  assert_call_order "^curl .*pkgs.k8s.io/core:/stable:/v1.36/deb/Release.key" "^gpg .* $HA_K8S_STAGE/cri-o-release.key$"
  [ "$(count_calls 'cri-o.*Release.key')" -eq 0 ]
}

@test "imageRepository: the pre-pull passes --image-repository; unset or empty, it does not" {
  IMAGE_REPOSITORY=192.0.2.10:5000/k8s run_script prepare-node.sh
  assert_success
  assert_call_order "^kubeadm config images pull --kubernetes-version v1.36.3 --cri-socket unix:///var/run/crio/crio.sock --image-repository 192.0.2.10:5000/k8s$"
  for value in unset ""; do
    : >"$CALLS"
    if [ "$value" = unset ]; then run_script prepare-node.sh; else IMAGE_REPOSITORY="" run_script prepare-node.sh; fi
    assert_success
    assert_call_order "^kubeadm config images pull --kubernetes-version v1.36.3 --cri-socket unix:///var/run/crio/crio.sock$"
  done
}

@test "workers do not pre-pull control-plane images" {
  NODE_ROLE=worker run_script prepare-node.sh
  assert_success
  [ "$(count_calls '^kubeadm config images pull')" -eq 0 ]
}

@test "a failing package installation stops the script with a clear message" {
  stub apt-get 'case " $* " in *" install "*) exit 100 ;; esac'
  run_script prepare-node.sh
  assert_failure
  assert_output --partial "package installation failed"
  [ "$(count_calls '^apt-mark hold')" -eq 0 ]
}

@test "an unreachable repository key is retried, then fails naming the URL" {
  stub curl 'exit 7'
  run_script prepare-node.sh
  assert_failure
  [ "$(count_calls '^curl .*pkgs.k8s.io.*Release.key')" -eq 5 ]
  assert_output --partial "cannot download the kubernetes repository key from ${KUBERNETES_APT_REPO}Release.key"
}

@test "a missing input is named" {
  unset K8S_RELEASES
  run_script prepare-node.sh
  assert_failure
  assert_output --partial "environment variable K8S_RELEASES is not set"
}

@test "apt waits for a lock held by unattended-upgrades, then proceeds" {
  # The lists lock is held for the first two checks (unattended-upgrades on first boot).
  stub fuser 'n=$(cat "$STATE/fuser" 2>/dev/null || echo 0); echo $((n + 1)) >"$STATE/fuser"; [ "$n" -lt 2 ] && echo " 4242" && exit 0; exit 1'
  stub ps 'echo unattended-upgr'
  run_script prepare-node.sh
  assert_success
  assert_output --partial "waiting for apt's locks, held by: 4242/unattended-upgr"
  assert_call_order "^fuser .*/var/lib/apt/lists/lock" "^apt-get .* update"
}

@test "apt still locked after the bound: a clear failure naming the holder" {
  stub fuser 'echo " 4242"'
  stub ps 'echo unattended-upgr'
  APT_LOCK_TIMEOUT=2 run_script prepare-node.sh
  assert_failure
  assert_output --partial "apt is still locked after 2s by: 4242/unattended-upgr"
  [ "$(count_calls '^apt-get')" -eq 0 ]
}

@test "registry mirror: the drop-in is installed and crio restarted; unset, it is removed again" {
  printf '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n' >"$HA_K8S_STAGE/registries-mirror.conf"
  run_script prepare-node.sh
  assert_success
  cmp "$HA_K8S_STAGE/registries-mirror.conf" "$HA_K8S_ROOT$REGISTRIES_DROP_IN"
  rm "$HA_K8S_STAGE/registries-mirror.conf"
  : >"$CALLS"
  run_script prepare-node.sh
  assert_success
  [ ! -e "$HA_K8S_ROOT$REGISTRIES_DROP_IN" ]
  assert_output --partial "removed the registry mirror drop-in"
  assert_call_order "^systemctl restart crio"
}

@test "a new machine gets the version the running cluster reports, not the one it was created with" {
  stub curl '
case "$*" in
  *"/version"*) printf "{\n  \"major\": \"1\",\n  \"gitVersion\": \"v1.35.4\",\n}\n" ;;
  *) out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; [ -n "$out" ] && echo key >"$out" ;;
esac; exit 0'
  run_script prepare-node.sh
  assert_success
  assert_output --partial "the cluster at 10.10.0.2:6443 runs Kubernetes 1.35: this machine gets the same"
  assert_call_order "^curl .*https://10.10.0.2:6443/version" "^curl .*v1.35/deb/Release.key" "^apt-get .* install .*kubelet=1.35.4-1.1"
  grep -q 'pause:3.10.1' "$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
}

@test "a running cluster whose load balancer fails the first two asks is still the version this machine gets" {
  stub curl '
case "$*" in
  *"/version"*) n=$(( $(cat "$STATE/asked" 2>/dev/null || echo 0) + 1 )); echo "$n" >"$STATE/asked"
    [ "$n" -ge 3 ] || exit 35
    echo "{\"gitVersion\": \"v1.35.4\"}" ;;
  *) out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; [ -n "$out" ] && echo key >"$out" ;;
esac; exit 0'
  run_script prepare-node.sh
  assert_success
  assert_equal "$(count_calls '^curl .*/version')" 3
  assert_output --partial "runs Kubernetes 1.35: this machine gets the same"
}

@test "no cluster yet (first deployment): asked 3 times, then the version the cluster is created with" {
  stub curl 'case "$*" in *"/version"*) exit 7 ;; *) out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done; [ -n "$out" ] && echo key >"$out" ;; esac; exit 0'
  run_script prepare-node.sh
  assert_success
  assert_equal "$(count_calls '^curl .*/version')" 3
  assert_output --partial "no cluster answers at 10.10.0.2:6443 yet (asked 3 times): this machine gets Kubernetes 1.36"
}

@test "a cluster on a minor this version does not support stops the preparation, saying so" {
  stub curl 'case "$*" in *"/version"*) echo "{\"gitVersion\": \"v1.31.0\"}" ;; esac; exit 0'
  run_script prepare-node.sh
  assert_failure
  assert_output --partial "Kubernetes 1.31 is not one this version of ha-k8s supports (1.35 1.36)"
}

@test "a machine that has joined keeps its Kubernetes and CRI-O: running this again never moves them" {
  run_script prepare-node.sh
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes" && touch "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  K8S_DEFAULT_MINOR=1.35 run_script prepare-node.sh
  assert_success
  assert_output --partial "its Kubernetes and CRI-O are left as they are"
  assert_equal "$(cat "$STATE/pkg-kubelet")" 1.36.3-1.1
  grep -q 'pause:3.10.2' "$HA_K8S_ROOT/etc/crio/crio.conf.d/20-ha-k8s.conf"
}
