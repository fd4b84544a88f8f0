#!/usr/bin/env bats
# The restore: scripts/etcd-restore.sh's phases on a stub machine, and tools/restore-etcd.sh (npm
# run restore-etcd) against stub pulumi, gcloud and ssh. etcdutl restoring for real, and etcd
# serving the restored keys, are in tests/backup.

setup() {
  load helpers
  setup_machine
  stub_systemd
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests" "$HA_K8S_ROOT/var/lib/etcd/member" "$HA_K8S_ROOT/etc/kubernetes/pki"
  for pod in etcd kube-apiserver kube-scheduler; do echo "kind: Pod # $pod" >"$HA_K8S_ROOT/etc/kubernetes/manifests/$pod.yaml"; done
  echo old-data >"$HA_K8S_ROOT/var/lib/etcd/member/db"
  echo snapshot-bytes >"$HA_K8S_ROOT/snapshot.db"
  mkdir -p "$HA_K8S_ROOT/usr/local/lib/ha-k8s/etcd-v3.6.8" "$HA_K8S_ROOT/etc/ha-k8s"
  echo "ETCDUTL=/usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl" >"$HA_K8S_ROOT/etc/ha-k8s/etcd-backup.env"
  cat >"$HA_K8S_ROOT/usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl" <<'EOF'
#!/usr/bin/env bash
printf 'etcdutl %s\n' "$*" >>"$CALLS"
if [ "$1 $2" = "snapshot restore" ]; then
  while [ $# -gt 0 ]; do [ "$1" = --data-dir ] && mkdir -p "$2/member" && echo restored >"$2/member/db"; shift; done
fi
exit 0
EOF
  chmod +x "$HA_K8S_ROOT/usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl"
  # Containers run while their manifest is in the manifests directory.
  stub crictl '
case "$1" in
  ps)
    for pod in etcd kube-apiserver kube-controller-manager kube-scheduler; do
      [[ "$pod" =~ ${3:-} ]] || continue
      [ -f "$HA_K8S_ROOT/etc/kubernetes/manifests/$pod.yaml" ] && echo "$pod-id"
    done ;;
  exec) case "$*" in *"member list"*) printf "%s\n" "1, started, c-cp-1, https://10.10.0.10:2380, x, false" "2, started, c-cp-2, https://10.10.0.11:2380, x, false" ;; esac ;;
esac
exit 0'
  export SNAPSHOT=/snapshot.db MEMBER_NAME=c-cp-2 MEMBER_PEER_URL=https://10.10.0.11:2380
  export INITIAL_CLUSTER=c-cp-1=https://10.10.0.10:2380,c-cp-2=https://10.10.0.11:2380 CLUSTER_TOKEN=ha-k8s-restore-1
}

restore_phase() { run bash "$SCRIPTS/etcd-restore.sh" "$1"; }
manifests() { ls "$HA_K8S_ROOT/etc/kubernetes/manifests"; }

@test "stop: etcd and the API server are held back (manifests moved), the scheduled snapshots too; again: nothing to do" {
  restore_phase stop
  assert_success
  assert_equal "$(manifests)" "kube-scheduler.yaml"
  [ -f "$HA_K8S_ROOT/etc/kubernetes/manifests-held-for-restore/etcd.yaml" ]
  assert_call_order "^systemctl stop ha-k8s-etcd-backup.timer"
  restore_phase stop
  assert_success
  assert_output --partial "etcd is already held back"
}

@test "restore: refused while etcd runs here" {
  restore_phase restore
  assert_failure
  assert_output --partial "run the stop phase on every control plane first"
  [ "$(count_calls '^etcdutl')" -eq 0 ]
}

@test "restore: etcdutl restores this member of the listed cluster into a new directory, swapped in; the old one kept" {
  restore_phase stop
  restore_phase restore
  assert_success
  assert_call_order "^etcdutl snapshot status $HA_K8S_ROOT/snapshot.db" \
    "^etcdutl snapshot restore $HA_K8S_ROOT/snapshot.db --name c-cp-2 --initial-cluster c-cp-1=https://10.10.0.10:2380,c-cp-2=https://10.10.0.11:2380 --initial-cluster-token ha-k8s-restore-1 --initial-advertise-peer-urls https://10.10.0.11:2380 --data-dir $HA_K8S_ROOT/var/lib/etcd.restore-[0-9TZ]+ --bump-revision 1000000000 --mark-compacted$"
  assert_equal "$(cat "$HA_K8S_ROOT/var/lib/etcd/member/db")" restored
  assert_equal "$(cat "$HA_K8S_ROOT"/var/lib/etcd.before-restore-*/member/db)" old-data
  assert_equal "$(stat -c %a "$HA_K8S_ROOT/var/lib/etcd")" 700
  : >"$CALLS"
  restore_phase restore
  assert_success
  assert_output --partial "already restored"
  [ "$(count_calls 'snapshot restore')" -eq 0 ]
}

@test "start: manifests back, kubelet restarted, controller-manager and scheduler restarted, snapshots scheduled again" {
  restore_phase stop
  echo "kind: Pod" >"$HA_K8S_ROOT/etc/kubernetes/manifests/kube-controller-manager.yaml"
  restore_phase start
  assert_success
  assert_equal "$(manifests | tr '\n' ' ')" "etcd.yaml kube-apiserver.yaml kube-controller-manager.yaml kube-scheduler.yaml "
  assert_call_order "^systemctl restart kubelet" "^crictl stop kube-controller-manager-id" "^crictl stop kube-scheduler-id" \
    "^systemctl start ha-k8s-etcd-backup.timer"
  [ ! -d "$HA_K8S_ROOT/etc/kubernetes/manifests-held-for-restore" ]
}

@test "verify: healthy members and a ready API; kubeadm's cluster-info gets this cluster's CA back" {
  echo "-----BEGIN CERTIFICATE----- new" >"$HA_K8S_ROOT/etc/kubernetes/pki/ca.crt"
  stub kubectl '
case "$*" in
  *"get configmap cluster-info"*) printf "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: T0xE\n    server: https://10.10.0.2:6443\n" ;;
  *"patch configmap cluster-info"*) while [ $# -gt 0 ]; do [ "$1" = --patch-file ] && cp "$2" "$STATE/patch"; shift; done ;;
esac
exit 0'
  EXPECTED_MEMBERS=2 KUBECONFIG_PATH=/etc/kubernetes/admin.conf restore_phase verify
  assert_success
  assert_call_order "endpoint health --cluster" "get --raw /readyz" "patch configmap cluster-info --type merge"
  new="$(base64 -w0 <"$HA_K8S_ROOT/etc/kubernetes/pki/ca.crt")"
  grep -q "^        certificate-authority-data: $new\$" "$STATE/patch" || fail "patch: $(cat "$STATE/patch")"
  grep -q "^        server: https://10.10.0.2:6443\$" "$STATE/patch"
}

@test "verify: fewer members than control planes fails, saying to restore everywhere" {
  stub kubectl 'exit 0'
  EXPECTED_MEMBERS=3 KUBECONFIG_PATH=/etc/kubernetes/admin.conf restore_phase verify
  assert_failure
  assert_output --partial "etcd has 2 started members, 3 expected: run the restore on every control plane"
}

# ---- tools/restore-etcd.sh -------------------------------------------------------------------------

setup_tool() {
  PROJECT_COPY="$MACHINE_DIR/project"
  mkdir -p "$PROJECT_COPY/tools" "$PROJECT_COPY/scripts" "$MACHINE_DIR/home"
  cp "$REPO/tools/restore-etcd.sh" "$REPO/tools/pulumi-env.sh" "$PROJECT_COPY/tools/"
  cp "$SCRIPTS/lib.sh" "$SCRIPTS/etcd-restore.sh" "$PROJECT_COPY/scripts/"
  echo ':' >"$PROJECT_COPY/tools/setup.sh"
  export HOME="$MACHINE_DIR/home" PULUMI_BACKEND_URL=file://"$MACHINE_DIR/state" PULUMI_CONFIG_PASSPHRASE=x
  stub pulumi '
case "$1 $2" in
  "stack select"|"config get") exit 0 ;;
  "stack output") cat <<EOF
{"clusterName":"c","backupBucket":"c-etcd-backups-0a1b2c3","loadBalancerExternalIp":"203.0.113.9",
 "sshPrivateKey":"-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n",
 "nodes":[{"name":"c-lb-1","role":"loadbalancer","internalIp":"10.10.0.2"},
          {"name":"c-cp-1","role":"control-plane","internalIp":"10.10.0.10"},
          {"name":"c-cp-2","role":"control-plane","internalIp":"10.10.0.11"},
          {"name":"c-cp-3","role":"control-plane","internalIp":"10.10.0.12"},
          {"name":"c-worker-1","role":"worker","internalIp":"10.10.0.20"}]}
EOF
  ;;
esac'
  stub gcloud '
case "$*" in
  "auth application-default print-access-token") echo token ;;
  "storage ls gs://c-etcd-backups-0a1b2c3/etcd/c/")
    printf "%s\n" gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T100000Z-c-cp-1-scheduled.db \
      gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T120000Z-c-cp-2-pre-change.db gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T110000Z-c-cp-3-scheduled.db ;;
  "storage cp "*) echo snapshot-bytes >"${!#}" ;;
  *) exit 1 ;;
esac'
  # ssh: records the remote command (its last argument) and what came on stdin; fails a phase on request.
  stub ssh '
cmd="${!#}"
case "$cmd" in *tee*) cat >>"$STATE/ssh-stdin" ;; esac
[ -f "$STATE/fail-phase" ] && [[ "$cmd" == *"etcd-restore.sh $(cat "$STATE/fail-phase")" ]] && exit 1
exit 0'
}

tool() { run bash "$PROJECT_COPY/tools/restore-etcd.sh" "$@"; }

@test "restore-etcd: newest snapshot; every phase on every control plane before the next; workers' kubelets; copies removed" {
  setup_tool
  tool dev --yes
  assert_success
  assert_call_order "^gcloud storage ls gs://c-etcd-backups-0a1b2c3/etcd/c/" \
    "^gcloud storage cp gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T120000Z-c-cp-2-pre-change.db "
  ssh_commands="$(calls_matching '^ssh ' | sed -E 's/.* k8sadmin@([0-9.]+) (.*)$/\1 \2/')"
  # Reached through the jump host with the stack's key.
  calls_matching '^ssh ' | head -n 1 | grep -q -- "-o ProxyCommand=ssh .* -W %h:%p k8sadmin@203.0.113.9"
  order="$(grep -oE '^[0-9.]+ .*etcd-restore.sh [a-z]+$' <<<"$ssh_commands" | sed -E 's/^([0-9.]+) .* ([a-z]+)$/\2 \1/')"
  assert_equal "$order" "$(printf '%s\n' 'stop 10.10.0.10' 'stop 10.10.0.11' 'stop 10.10.0.12' 'restore 10.10.0.10' \
    'restore 10.10.0.11' 'restore 10.10.0.12' 'start 10.10.0.10' 'start 10.10.0.11' 'start 10.10.0.12' 'verify 10.10.0.10')"
  grep -qE "^10.10.0.11 sudo env SNAPSHOT=/var/lib/ha-k8s/restore/snapshot.db MEMBER_NAME=c-cp-2 MEMBER_PEER_URL=https://10.10.0.11:2380 INITIAL_CLUSTER=c-cp-1=https://10.10.0.10:2380,c-cp-2=https://10.10.0.11:2380,c-cp-3=https://10.10.0.12:2380 CLUSTER_TOKEN=ha-k8s-restore-[0-9TZ]+ bash" <<<"$ssh_commands"
  grep -q "^10.10.0.10 sudo env EXPECTED_MEMBERS=3 KUBECONFIG_PATH=/etc/kubernetes/admin.conf bash /var/lib/ha-k8s/restore/etcd-restore.sh verify$" <<<"$ssh_commands"
  grep -q "^10.10.0.20 sudo systemctl restart kubelet$" <<<"$ssh_commands"
  [ "$(grep -c 'sudo rm -f /var/lib/ha-k8s/restore/snapshot.db' <<<"$ssh_commands")" -eq 3 ]
  [ "$(grep -c '^snapshot-bytes$' "$STATE/ssh-stdin")" -eq 3 ]
  # The load balancer is left alone.
  ! grep -q "^10.10.0.2 " <<<"$ssh_commands"
}

@test "restore-etcd --from: that object, from any bucket (e.g. one a destroyed stack left)" {
  setup_tool
  tool dev --yes --from gs://old-etcd-backups-1234567/etcd/c/20261101T000000Z-c-cp-1-scheduled.db
  assert_success
  [ "$(count_calls '^gcloud storage ls')" -eq 0 ]
  assert_call_order "^gcloud storage cp gs://old-etcd-backups-1234567/etcd/c/20261101T000000Z-c-cp-1-scheduled.db "
}

@test "restore-etcd without --yes: anything but the cluster's name changes nothing" {
  setup_tool
  run bash -c "echo prod | bash '$PROJECT_COPY/tools/restore-etcd.sh' dev"
  assert_failure
  assert_output --partial "Not confirmed; nothing changed."
  [ "$(count_calls '^ssh |storage cp')" -eq 0 ]
}

@test "restore-etcd: a phase that fails stops the restore, naming the machine and the phase" {
  setup_tool
  echo restore >"$STATE/fail-phase"
  tool dev --yes
  assert_failure
  assert_output --partial "The restore phase failed on c-cp-1"
  [ "$(count_calls 'etcd-restore.sh start')" -eq 0 ]
}
