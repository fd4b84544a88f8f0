#!/usr/bin/env bats
# The restore: scripts/etcd-restore.sh's phases on a stub machine, and tools/restore-etcd.sh (npm
# run restore-etcd) against stub pulumi, gcloud and ssh. etcdutl restoring for real, and etcd
# serving the restored keys, are in tests/backup.

setup() {
  load helpers
  setup_machine
  stub_systemd
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/manifests" "$HA_K8S_ROOT/var/lib/etcd/member" "$HA_K8S_ROOT/etc/kubernetes/pki"
  for pod in kube-apiserver kube-scheduler; do echo "kind: Pod # $pod" >"$HA_K8S_ROOT/etc/kubernetes/manifests/$pod.yaml"; done
  # As kubeadm writes it on a joined control plane: the member is named after the node.
  printf '%s\n' "kind: Pod # etcd" "    - --initial-advertise-peer-urls=https://10.10.0.11:2380" "    - --name=c-cp-2" \
    >"$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml"
  mkdir -p "$HA_K8S_ROOT/etc/kubernetes/pki/etcd"
  for f in pki/ca.crt pki/etcd/ca.crt pki/etcd/peer.crt pki/etcd/server.crt kubelet.conf admin.conf; do
    echo x >"$HA_K8S_ROOT/etc/kubernetes/$f"
  done
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

@test "check: a control plane that finished its join, with etcdutl and the snapshot, can be restored onto; nothing changes" {
  before="$(root_fingerprint)"
  KUBECONFIG_PATH=/etc/kubernetes/admin.conf restore_phase check
  assert_success
  assert_output --partial "c-cp-2 can be restored onto"
  assert_equal "$(root_fingerprint)" "$before"
  [ "$(count_calls '^systemctl|^crictl stop|snapshot restore')" -eq 0 ]
  assert_call_order "^etcdutl version" "^etcdutl snapshot status $HA_K8S_ROOT/snapshot.db"
}

@test "check: a control plane that never finished its join is refused, every problem named, nothing changed" {
  rm "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml" "$HA_K8S_ROOT/etc/kubernetes/kubelet.conf"
  rm -r "$HA_K8S_ROOT/var/lib/etcd/member"
  before="$(root_fingerprint)"
  restore_phase check
  assert_failure
  assert_output --partial "no /etc/kubernetes/kubelet.conf: this machine never finished its kubeadm join"
  assert_output --partial "no etcd manifest in /etc/kubernetes/manifests"
  assert_output --partial "no /var/lib/etcd/member: etcd never ran here"
  assert_output --partial "c-cp-2 cannot be restored onto (3 problem(s) above); nothing was changed"
  assert_equal "$(root_fingerprint)" "$before"
}

@test "check: an etcd manifest naming another member, a missing etcdutl, a missing admin kubeconfig are refused" {
  sed -i 's/--name=c-cp-2/--name=c-cp-3/' "$HA_K8S_ROOT/etc/kubernetes/manifests/etcd.yaml"
  rm "$HA_K8S_ROOT/usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl" "$HA_K8S_ROOT/etc/kubernetes/admin.conf"
  KUBECONFIG_PATH=/etc/kubernetes/admin.conf restore_phase check
  assert_failure
  assert_output --partial "the etcd manifest does not name member c-cp-2"
  assert_output --partial "etcdutl does not run at /usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl"
  assert_output --partial "no /etc/kubernetes/admin.conf: the verification runs here"
}

@test "check: manifests held back by an interrupted earlier restore still count (the restore is run again)" {
  restore_phase stop
  restore_phase check
  assert_success
}

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
  assert_output --partial "etcd has 2 started members, 3 expected: run the restore on every control plane it restores onto"
}

# ---- tools/restore-etcd.sh -------------------------------------------------------------------------

setup_tool() {
  PROJECT_COPY="$MACHINE_DIR/project"
  mkdir -p "$PROJECT_COPY/tools" "$PROJECT_COPY/scripts" "$MACHINE_DIR/home"
  cp "$REPO/tools/restore-etcd.sh" "$REPO/tools/pulumi-env.sh" "$PROJECT_COPY/tools/"
  cp "$SCRIPTS/lib.sh" "$SCRIPTS/etcd-restore.sh" "$PROJECT_COPY/scripts/"
  echo ':' >"$PROJECT_COPY/tools/setup.sh"
  export HOME="$MACHINE_DIR/home" PULUMI_BACKEND_URL=file://"$MACHINE_DIR/state" PULUMI_CONFIG_PASSPHRASE=x
  # The cluster CA in the kubeconfig output, made now: the stack's cluster was built today.
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$STATE/ca.key" -out "$STATE/ca.crt" \
    -days 1 -subj /CN=kubernetes 2>/dev/null
  CA_DATA="$(base64 -w0 <"$STATE/ca.crt")"
  export CA_DATA
  stub pulumi '
case "$1 $2" in
  "stack select"|"config get") exit 0 ;;
  "stack output") cat <<EOF
{"clusterName":"c","backupBucket":"c-etcd-backups-0a1b2c3","loadBalancerExternalIp":"203.0.113.9",
 "sshPrivateKey":"-----BEGIN OPENSSH PRIVATE KEY-----\nkey\n-----END OPENSSH PRIVATE KEY-----\n",
 "kubeconfig":"apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: $CA_DATA\n    server: https://203.0.113.9:6443\n",
 "nodes":[{"name":"c-lb-1","role":"loadbalancer","internalIp":"10.10.0.2"},
          {"name":"c-cp-1","role":"control-plane","internalIp":"10.10.0.10"},
          {"name":"c-cp-2","role":"control-plane","internalIp":"10.10.0.11"},
          {"name":"c-cp-3","role":"control-plane","internalIp":"10.10.0.12"},
          {"name":"c-worker-1","role":"worker","internalIp":"10.10.0.20"}]}
EOF
  ;;
esac'
  # Snapshots taken before today: an earlier build's (a bucket kept across builds), unless a test
  # writes its own listing.
  printf "%s\n" gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T100000Z-c-cp-1-scheduled.db \
    gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T120000Z-c-cp-2-pre-change.db \
    gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T110000Z-c-cp-3-scheduled.db >"$STATE/listing"
  stub gcloud '
case "$*" in
  "auth application-default print-access-token") echo token ;;
  "storage ls gs://c-etcd-backups-0a1b2c3/etcd/c/") cat "$STATE/listing" ;;
  "storage cp "*) echo snapshot-bytes >"${!#}" ;;
  *) exit 1 ;;
esac'
  # ssh: records the remote command (its last argument) and what came on stdin. Machines listed in
  # $STATE/unreachable refuse logins (exit 255, as ssh does); machines in $STATE/not-ready fail the
  # check phase; $STATE/fail-phase fails that phase everywhere.
  stub ssh '
cmd="${!#}"
host="${*: -2:1}"
host="${host#*@}"
grep -qx "$host" "$STATE/unreachable" 2>/dev/null && { echo "ssh: connect to host $host port 22: Connection timed out" >&2; exit 255; }
case "$cmd" in *tee*) cat >>"$STATE/ssh-stdin" ;; esac
[[ "$cmd" == *"etcd-restore.sh check" ]] && grep -qx "$host" "$STATE/not-ready" 2>/dev/null && {
  echo "NOT READY: no etcd manifest in /etc/kubernetes/manifests: this machine never finished its kubeadm join as a control plane" >&2
  exit 1
}
[ -f "$STATE/fail-phase" ] && [[ "$cmd" == *"etcd-restore.sh $(cat "$STATE/fail-phase")" ]] && exit 1
exit 0'
}

tool() { run bash "$PROJECT_COPY/tools/restore-etcd.sh" "$@"; }
ssh_commands() { calls_matching '^ssh ' | sed -E 's/.* k8sadmin@([0-9.]+) (.*)$/\1 \2/'; }
# The phases run, in order, as "<phase> <address>".
phases_run() { ssh_commands | grep -oE '^[0-9.]+ .*etcd-restore.sh [a-z]+$' | sed -E 's/^([0-9.]+) .* ([a-z]+)$/\2 \1/'; }

@test "restore-etcd: an earlier build's newest snapshot; checks everywhere, then every phase on every control plane before the next" {
  setup_tool
  tool dev --yes
  assert_success
  assert_output --partial "is from before this cluster was built"
  assert_call_order "^gcloud storage ls gs://c-etcd-backups-0a1b2c3/etcd/c/" \
    "^gcloud storage cp gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T120000Z-c-cp-2-pre-change.db "
  # Reached through the jump host with the stack's key; the jump host's own login is checked first.
  calls_matching '^ssh ' | head -n 1 | grep -qE -- "-i .* k8sadmin@203.0.113.9 true$"
  calls_matching '^ssh ' | sed -n 2p | grep -q -- "-o ProxyCommand=ssh .* -W %h:%p k8sadmin@203.0.113.9"
  assert_equal "$(phases_run)" "$(printf '%s\n' 'check 10.10.0.10' 'check 10.10.0.11' 'check 10.10.0.12' \
    'stop 10.10.0.10' 'stop 10.10.0.11' 'stop 10.10.0.12' 'restore 10.10.0.10' \
    'restore 10.10.0.11' 'restore 10.10.0.12' 'start 10.10.0.10' 'start 10.10.0.11' 'start 10.10.0.12' 'verify 10.10.0.10')"
  grep -qE "^10.10.0.11 sudo env SNAPSHOT=/var/lib/ha-k8s/restore/snapshot.db MEMBER_NAME=c-cp-2 MEMBER_PEER_URL=https://10.10.0.11:2380 INITIAL_CLUSTER=c-cp-1=https://10.10.0.10:2380,c-cp-2=https://10.10.0.11:2380,c-cp-3=https://10.10.0.12:2380 CLUSTER_TOKEN=ha-k8s-restore-[0-9TZ]+ bash" <<<"$(ssh_commands)"
  grep -q "^10.10.0.10 sudo env SNAPSHOT=/var/lib/ha-k8s/restore/snapshot.db MEMBER_NAME=c-cp-1 MEMBER_PEER_URL=https://10.10.0.10:2380 KUBECONFIG_PATH=/etc/kubernetes/admin.conf bash /var/lib/ha-k8s/restore/etcd-restore.sh check$" <<<"$(ssh_commands)"
  grep -q "^10.10.0.10 sudo env EXPECTED_MEMBERS=3 KUBECONFIG_PATH=/etc/kubernetes/admin.conf bash /var/lib/ha-k8s/restore/etcd-restore.sh verify$" <<<"$(ssh_commands)"
  grep -q "^10.10.0.20 sudo systemctl restart kubelet$" <<<"$(ssh_commands)"
  [ "$(grep -c 'sudo rm -f /var/lib/ha-k8s/restore/snapshot.db' <<<"$(ssh_commands)")" -eq 3 ]
  [ "$(grep -c '^snapshot-bytes$' "$STATE/ssh-stdin")" -eq 3 ]
  # The load balancer is left alone (beyond the jump host's login check).
  ! grep -q "^10.10.0.2 " <<<"$(ssh_commands)"
}

@test "restore-etcd: the newest snapshot taken after this stack's cluster was built is not the default; --newest takes it" {
  setup_tool
  printf "%s\n" gs://c-etcd-backups-0a1b2c3/etcd/c/20261201T100000Z-c-cp-1-scheduled.db \
    gs://c-etcd-backups-0a1b2c3/etcd/c/20991231T000000Z-c-cp-1-pre-change.db >"$STATE/listing"
  tool dev --yes
  assert_failure
  assert_output --partial "the newest snapshot, gs://c-etcd-backups-0a1b2c3/etcd/c/20991231T000000Z-c-cp-1-pre-change.db, was taken after stack dev's cluster was built"
  assert_output --partial "npm run restore-etcd -- dev --from gs://<old bucket>/etcd/c/<object>.db"
  assert_output --partial "Not restoring the newest snapshot by default; nothing changed."
  [ "$(count_calls '^ssh |storage cp')" -eq 0 ]
  : >"$CALLS"
  tool dev --yes --newest
  assert_success
  assert_call_order "^gcloud storage cp gs://c-etcd-backups-0a1b2c3/etcd/c/20991231T000000Z-c-cp-1-pre-change.db "
}

@test "restore-etcd: without a CA in the outputs it cannot tell the cluster's age, so it names no snapshot itself" {
  setup_tool
  export CA_DATA=""
  tool dev --yes
  assert_failure
  assert_output --partial "Cannot tell when stack dev's cluster was built"
  [ "$(count_calls '^ssh |storage cp')" -eq 0 ]
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

@test "restore-etcd: an unreachable control plane fails the preflight, naming it and the --only that leaves it out; nothing stopped" {
  setup_tool
  printf '%s\n' 10.10.0.11 10.10.0.12 >"$STATE/unreachable"
  tool dev --yes
  assert_failure
  assert_output --partial "cannot log in to c-cp-2 c-cp-3"
  assert_output --partial "npm run restore-etcd -- dev --only cp-1 ..."
  assert_output --partial "Preflight failed"
  [ "$(count_calls 'etcd-restore.sh|storage cp|tee ')" -eq 0 ]
}

@test "restore-etcd: a reachable control plane that never finished its join is refused in the preflight, before any stop" {
  setup_tool
  echo 10.10.0.12 >"$STATE/not-ready"
  tool dev --yes
  assert_failure
  assert_output --partial "never finished its kubeadm join"
  assert_output --partial "c-cp-3 cannot be restored onto"
  assert_output --partial "npm run restore-etcd -- dev --only cp-1,cp-2 ..."
  assert_output --partial "Preflight failed; nothing was stopped."
  # Every target was checked (all problems at once), none stopped.
  [ "$(count_calls 'etcd-restore.sh check')" -eq 3 ]
  [ "$(count_calls 'etcd-restore.sh (stop|restore|start|verify)')" -eq 0 ]
}

@test "restore-etcd --only cp-1: after losing two of three, only the survivor is checked and restored, a cluster of one" {
  setup_tool
  printf '%s\n' 10.10.0.11 10.10.0.12 >"$STATE/unreachable"
  tool dev --yes --only cp-1
  assert_success
  assert_output --partial "left out, not touched, to be rebuilt afterwards: c-cp-2 c-cp-3; etcd will have 1 member(s)"
  assert_equal "$(phases_run)" "$(printf '%s\n' 'check 10.10.0.10' 'stop 10.10.0.10' 'restore 10.10.0.10' 'start 10.10.0.10' 'verify 10.10.0.10')"
  grep -qE "^10.10.0.10 sudo env .* INITIAL_CLUSTER=c-cp-1=https://10.10.0.10:2380 CLUSTER_TOKEN=" <<<"$(ssh_commands)"
  grep -q "EXPECTED_MEMBERS=1 " <<<"$(ssh_commands)"
  # The left-out machines are never contacted.
  ! grep -qE "^10.10.0.1[12] " <<<"$(ssh_commands)"
  assert_output --partial "etcd has 1 member(s); rebuild c-cp-2 c-cp-3 through the program"
}

@test "restore-etcd --only: full names, commas and repeats work; a name that is no control plane is refused" {
  setup_tool
  tool dev --yes --only c-cp-3,cp-1
  assert_success
  # In the stack's order: the first control plane verifies.
  assert_equal "$(phases_run | grep verify)" "verify 10.10.0.10"
  grep -qE "INITIAL_CLUSTER=c-cp-1=https://10.10.0.10:2380,c-cp-3=https://10.10.0.12:2380 " <<<"$(ssh_commands)"
  : >"$CALLS"
  tool dev --yes --only cp-2 --only worker-1
  assert_failure
  assert_output --partial "--only worker-1: not a control plane of stack dev (they are: c-cp-1 c-cp-2 c-cp-3)."
  [ "$(count_calls '^ssh ')" -eq 0 ]
}
