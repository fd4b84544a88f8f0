#!/usr/bin/env bats
# scripts/etcd-backup.sh on a stub machine: crictl (the etcd pod), etcdutl and curl (the metadata
# server and Cloud Storage) are stubs; openssl, df, flock and the file system are real. The same
# script runs against real etcd and a real Cloud Storage API server in tests/backup.

ETCDUTL_PATH=/usr/local/lib/ha-k8s/etcd-v3.6.8/etcdutl
TOKEN_VALUE="ya29.do-not-print-me"

setup() {
  load helpers
  setup_machine
  export BACKUP_BUCKET=c-etcd-backups-0a1b2c3 CLUSTER_NAME=c NODE_NAME=c-cp-2 ETCDUTL="$ETCDUTL_PATH"
  export BACKUP_REASON=scheduled BACKUP_LEADER_ONLY=true TOKEN_VALUE
  export HA_K8S_METADATA_URL=http://metadata.test/computeMetadata/v1 HA_K8S_STORAGE_URL=https://storage.test
  # This member (2) is the leader unless a test says otherwise.
  echo 2 >"$STATE/leader"
  # etcdctl inside the pod: endpoint status as -w fields prints it; snapshot save writes the file at
  # the pod's path, which is the same path on the host (hostPath /var/lib/etcd).
  stub crictl '
case "$1" in
  ps) echo etcd-id ;;
  exec)
    case "$*" in
      *"endpoint status -w fields"*)
        printf "\"ClusterID\" : 1\n\"MemberID\" : 2\n\"Revision\" : 42\n\"DBSize\" : 20480\n\"Leader\" : %s\n" "$(cat "$STATE/leader")" ;;
      *"snapshot save"*)
        [ -f "$STATE/save-fails" ] && { echo "context deadline exceeded" >&2; exit 5; }
        path="${!#}"
        ls "$HA_K8S_ROOT/var/lib/etcd/ha-k8s-snapshot" >"$STATE/dir-before-save"
        head -c 20480 /dev/urandom >"$HA_K8S_ROOT$path"
        cp "$HA_K8S_ROOT$path" "$STATE/written.db"
        echo "Snapshot saved at $path" ;;
    esac ;;
esac'
  mkdir -p "$HA_K8S_ROOT$(dirname "$ETCDUTL_PATH")"
  cat >"$HA_K8S_ROOT$ETCDUTL_PATH" <<'EOF'
#!/usr/bin/env bash
printf 'etcdutl %s\n' "$*" >>"$CALLS"
[ -f "$STATE/etcdutl-rejects" ] && { echo "Error: invalid database" >&2; exit 1; }
echo '{"hash":1016194803,"revision":42,"totalKey":7,"totalSize":20480,"version":"3.6.0"}'
EOF
  chmod +x "$HA_K8S_ROOT$ETCDUTL_PATH"
  # The metadata server and the storage API: the upload answers as Cloud Storage does (the object
  # resource with its size and MD5), records what it received, or fails with 503 when told to.
  stub curl '
args="$*"
case "$args" in
  *"/service-accounts/default/scopes"*)
    if [ -f "$STATE/scopes" ]; then cat "$STATE/scopes"; else echo https://www.googleapis.com/auth/devstorage.read_write; fi ;;
  *"/service-accounts/default/token"*)
    # With rotate-tokens, every request gets a new token (token-1, token-2, ...), as one expires.
    token="$TOKEN_VALUE"
    if [ -f "$STATE/rotate-tokens" ]; then echo x >>"$STATE/tokens-issued"; token="token-$(wc -l <"$STATE/tokens-issued")"; fi
    printf "{\"access_token\":\"%s\",\"expires_in\":3599,\"token_type\":\"Bearer\"}" "$token" ;;
  *"/upload/storage/v1/b/"*)
    cat >"$STATE/curl-config"
    cat "$STATE/curl-config" >>"$STATE/curl-configs"
    while [ $# -gt 0 ]; do
      case "$1" in --upload-file) file="$2" ;; --output) out="$2" ;; esac
      shift
    done
    cp "$file" "$STATE/uploaded.db"
    if [ -f "$STATE/upload-fails" ]; then echo "{\"error\":{\"code\":503,\"message\":\"Backend Error\"}}" >"$out"; exit 22; fi
    # The bucket: ifGenerationMatch=0 refuses a name that exists (412), as Cloud Storage does.
    name="${args##*name=}"
    mkdir -p "$STATE/bucket"
    if [ -e "$STATE/bucket/$name" ]; then
      echo "{\"error\":{\"code\":412,\"message\":\"At least one of the pre-conditions you specified did not hold.\"}}" >"$out"
      exit 22
    fi
    cp "$file" "$STATE/bucket/$name"
    # lose-response: the object is stored, but the answer never arrives (curl: empty reply).
    if [ -f "$STATE/lose-response" ]; then rm "$STATE/lose-response"; echo "curl: (52) Empty reply from server" >&2; exit 52; fi
    md5="$(openssl dgst -md5 -binary "$file" | base64)"
    [ -f "$STATE/wrong-md5" ] && md5="AAAAAAAAAAAAAAAAAAAAAA=="
    printf "{\n  \"kind\": \"storage#object\",\n  \"size\": \"%s\",\n  \"md5Hash\": \"%s\"\n}\n" "$(stat -c %s "$file")" "$md5" >"$out" ;;
  *) exit 6 ;;
esac'
}

snapshot_dir() { echo "$HA_K8S_ROOT/var/lib/etcd/ha-k8s-snapshot"; }
upload_url() { calls_matching '^curl .*/upload/storage/v1/b/' | head -n 1; }

@test "the leader: snapshot in the pod, checked by etcdutl, uploaded by time, cluster and member; the local copy goes" {
  run_script etcd-backup.sh
  assert_success
  assert_call_order "^crictl exec etcd-id etcdctl .*endpoint status -w fields" \
    "^curl .*/service-accounts/default/scopes" \
    "^crictl exec etcd-id etcdctl .*--command-timeout=900s snapshot save /var/lib/etcd/ha-k8s-snapshot/[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled\.db$" \
    "^etcdutl snapshot status $HA_K8S_ROOT/var/lib/etcd/ha-k8s-snapshot/.*-c-cp-2-scheduled\.db -w json" \
    "^curl .*Metadata-Flavor: Google .*/service-accounts/default/token" \
    "^curl .*--max-time 1200 .*--request POST --upload-file .* https://storage\.test/upload/storage/v1/b/c-etcd-backups-0a1b2c3/o\?uploadType=media&ifGenerationMatch=0&name=etcd%2Fc%2F[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled\.db$"
  assert_output --regexp "uploaded gs://c-etcd-backups-0a1b2c3/etcd/c/[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled\.db \(20480 bytes, revision 42, 7 keys\)"
  [ ! -e "$(snapshot_dir)" ] || fail "the local copy is still there: $(ls -la "$(snapshot_dir)")"
  grep -q "gs://c-etcd-backups-0a1b2c3/etcd/c/.*-c-cp-2-scheduled.db revision=42 keys=7 bytes=20480" \
    "$HA_K8S_ROOT/var/lib/ha-k8s/etcd-backup.last-success"
}

@test "a member that is not the leader takes no snapshot and uploads nothing, and succeeds" {
  echo 1 >"$STATE/leader"
  run_script etcd-backup.sh
  assert_success
  assert_output --partial "not the etcd leader (member 2; leader 1)"
  [ "$(count_calls 'snapshot save|^etcdutl|/upload/|/token')" -eq 0 ]
}

@test "the snapshot before a change uploads from a member that is not the leader" {
  echo 1 >"$STATE/leader"
  BACKUP_REASON=pre-change BACKUP_LEADER_ONLY=false CONTROL_PLANE_COUNT=3 KUBERNETES_VERSION=1.36.3 run_script etcd-backup.sh
  assert_success
  assert_output --partial "before a change; 3 control planes, Kubernetes 1.36.3"
  [[ "$(upload_url)" =~ name=etcd%2Fc%2F[0-9]{8}T[0-9]{6}Z-c-cp-2-pre-change\.db$ ]] || fail "upload: $(upload_url)"
}

@test "a failing upload is tried three times, then the run fails saying the next run retries; nothing is left behind" {
  touch "$STATE/upload-fails"
  run_script etcd-backup.sh
  assert_failure
  [ "$(count_calls '/upload/storage/v1/b/')" -eq 3 ]
  assert_output --partial "Backend Error"
  assert_output --partial "the local copy is deleted, the next run tries again"
  [ ! -e "$(snapshot_dir)" ] || fail "the local copy is still there"
  [ ! -e "$HA_K8S_ROOT/var/lib/ha-k8s/etcd-backup.last-success" ]
  # The next run (the timer's next period) takes a fresh snapshot and uploads it.
  rm "$STATE/upload-fails"
  : >"$CALLS"
  run_script etcd-backup.sh
  assert_success
  [ "$(count_calls 'snapshot save')" -eq 1 ]
  [ "$(count_calls '/upload/storage/v1/b/')" -eq 1 ]
  [ ! -e "$(snapshot_dir)" ]
}

@test "a copy left by a run that was killed is removed before the next snapshot, so at most one exists" {
  mkdir -p "$(snapshot_dir)"
  head -c 1000 /dev/zero >"$(snapshot_dir)/20260101T000000Z-c-cp-2-scheduled.db"
  head -c 1000 /dev/zero >"$(snapshot_dir)/20260101T010000Z-c-cp-2-scheduled.db.part"
  run_script etcd-backup.sh
  assert_success
  assert_equal "$(cat "$STATE/dir-before-save")" ""
  [ ! -e "$(snapshot_dir)" ]
}

@test "a failed snapshot uploads nothing and leaves nothing" {
  touch "$STATE/save-fails"
  run_script etcd-backup.sh
  assert_failure
  assert_output --partial "etcdctl snapshot save failed: context deadline exceeded"
  [ "$(count_calls '/upload/|^etcdutl')" -eq 0 ]
  [ ! -e "$(snapshot_dir)" ]
}

@test "a snapshot etcdutl rejects is not uploaded and is removed" {
  touch "$STATE/etcdutl-rejects"
  run_script etcd-backup.sh
  assert_failure
  assert_output --partial "the snapshot failed etcdutl snapshot status: Error: invalid database"
  [ "$(count_calls '/upload/')" -eq 0 ]
  [ ! -e "$(snapshot_dir)" ]
}

@test "an object Cloud Storage stored with another MD5 fails the run" {
  touch "$STATE/wrong-md5"
  run_script etcd-backup.sh
  assert_failure
  assert_output --partial "with MD5 AAAAAAAAAAAAAAAAAAAAAA==, the snapshot's is"
  [ ! -e "$(snapshot_dir)" ]
}

@test "not enough disk for the snapshot plus 1 GiB: refused before anything is written" {
  stub df 'printf "Filesystem 1-blocks Used Available Capacity Mounted\n/dev/x 100 50 %s 50%% /\n" $((1024 * 1024 * 1024))'
  run_script etcd-backup.sh
  assert_failure
  assert_output --partial "not enough free disk for a snapshot: 1073741824 bytes free, the database is 20480 bytes"
  [ "$(count_calls 'snapshot save')" -eq 0 ]
  [ ! -e "$(snapshot_dir)" ]
}

@test "a VM without the storage scope is told which scope it lacks and where the fix is, before any snapshot" {
  printf '%s\n' https://www.googleapis.com/auth/logging.write https://www.googleapis.com/auth/monitoring.write >"$STATE/scopes"
  run_script etcd-backup.sh
  assert_failure
  assert_output --partial "its scopes lack https://www.googleapis.com/auth/devstorage.read_write"
  assert_output --partial 'docs/operating.md, "Backups on existing clusters"'
  [ "$(count_calls 'snapshot save')" -eq 0 ]
}

@test "the access token goes to Cloud Storage in a header read from stdin: never on a command line, never printed" {
  run_script etcd-backup.sh
  assert_success
  assert_equal "$(cat "$STATE/curl-config")" "header = \"Authorization: Bearer $TOKEN_VALUE\""
  ! grep -q "$TOKEN_VALUE" "$CALLS" || fail "the token is on a command line"
  refute_output --partial "$TOKEN_VALUE"
}

@test "the bytes etcdctl wrote are the bytes uploaded" {
  run_script etcd-backup.sh
  assert_success
  cmp "$STATE/written.db" "$STATE/uploaded.db"
}

@test "a success response lost on the way: the retry uploads under a name of its own (no 412), and the run succeeds" {
  touch "$STATE/lose-response"
  run_script etcd-backup.sh
  assert_success
  [ "$(count_calls '/upload/storage/v1/b/')" -eq 2 ]
  refute_output --partial "pre-conditions"
  # Both attempts' objects exist, with the same bytes; the log names the second.
  first="$(ls "$STATE/bucket" | grep -E '^etcd%2Fc%2F[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled\.db$')"
  second="$(ls "$STATE/bucket" | grep -E '^etcd%2Fc%2F[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled-attempt2\.db$')"
  cmp "$STATE/bucket/$first" "$STATE/bucket/$second"
  assert_output --regexp "uploaded gs://c-etcd-backups-0a1b2c3/etcd/c/[0-9]{8}T[0-9]{6}Z-c-cp-2-scheduled-attempt2\.db "
  [ ! -e "$(snapshot_dir)" ]
}

@test "every upload attempt asks the metadata server for a token of its own" {
  touch "$STATE/rotate-tokens" "$STATE/upload-fails"
  run_script etcd-backup.sh
  assert_failure
  [ "$(count_calls '/service-accounts/default/token')" -eq 3 ]
  assert_equal "$(cat "$STATE/curl-configs")" "$(printf 'header = "Authorization: Bearer token-%s"\n' 1 2 3)"
  refute_output --partial "token-"
}

@test "the run's bound (BACKUP_RUN_SECONDS): the lock wait, the snapshot and the upload get at most what is left" {
  BACKUP_RUN_SECONDS=300 run_script etcd-backup.sh
  assert_success
  calls_matching 'snapshot save' | grep -qE -- '--command-timeout=(300|29[0-9])s '
  calls_matching '/upload/storage/v1/b/' | grep -qE -- '--max-time (300|29[0-9]) '
  # With no time left for an upload, none starts, and the run says why.
  : >"$CALLS"
  BACKUP_RUN_SECONDS=20 run_script etcd-backup.sh
  assert_failure
  assert_output --partial "no time left for upload attempt"
  [ "$(count_calls '/upload/storage/v1/b/')" -eq 0 ]
  [ ! -e "$(snapshot_dir)" ]
}

@test "another run holding the lock is waited for a third of the run's bound, then this run gives up" {
  mkdir -p "$HA_K8S_ROOT/run/lock"
  exec 8>"$HA_K8S_ROOT/run/lock/ha-k8s-etcd-backup.lock"
  flock 8
  BACKUP_RUN_SECONDS=3 run_script etcd-backup.sh
  exec 8>&-
  assert_failure
  assert_output --partial "another etcd snapshot has been running for 1 s"
  [ "$(count_calls 'snapshot save')" -eq 0 ]
}
